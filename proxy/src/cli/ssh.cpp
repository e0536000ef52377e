// CLI commands for terminal sessions and SSH targets: `export` (asciicast v2), terminal `replay`,
// `target pin`.

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "internal.hpp"
#include "glassgate/proxy/ssh/host_key.hpp"
#include "glassgate/session/asciicast.hpp"
#include "glassgate/session/recording.hpp"

namespace gg::proxy::cli {

namespace {

std::string read_all(std::istream& in) {
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

session::DecodedRecording load_recording(const config::Config& cfg, const std::string& id, Io& io) {
    auto st = open_state(cfg);
    auto r = st.store->find_session(id);
    if (!r) throw OperationalError("no session with id '" + id + "'");
    if (r->recording.empty()) throw OperationalError("session " + id + " has no recording (it ended before recording started)");
    auto path = st.dir->recordings_dir() / r->recording;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw OperationalError("cannot read " + path.string() + ": " + std::strerror(errno));
    std::string bytes = read_all(in);
    auto rec = session::read_recording(as_bytes(bytes), st.dir->recording_key());
    if (!rec.report.intact) {
        io.err << "WARNING: the recording fails verification: " << rec.report.summary() << "\n";
    }
    return rec;
}

int cmd_export(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const auto format = args.get("format").value_or("asciicast");
    if (format != "asciicast") throw UsageError("unknown --format '" + format + "' (asciicast)");
    auto rec = load_recording(cfg, args.positional.at(0), io);
    if (rec.header.protocol != "ssh") {
        throw OperationalError("only terminal (ssh) sessions export as asciicast; use `glassgate replay` for " +
                               rec.header.protocol + " sessions");
    }
    const auto doc = session::to_asciicast_v2(rec);
    if (auto file = args.get("output")) {
        std::ofstream out(*file, std::ios::binary | std::ios::trunc);
        out << doc;
        out.flush();
        if (!out) throw OperationalError("cannot write " + *file + ": " + std::strerror(errno));
        io.err << "wrote " << *file << "\n";
    } else {
        io.out << doc;
    }
    return rec.report.intact ? exit_ok : exit_failure;
}

int replay_terminal(const session::DecodedRecording& rec, const Args& args, Io& io) {
    double speed = 1.0;
    if (auto s = args.get("speed")) {
        try {
            speed = std::stod(*s);
        } catch (const std::exception&) {
            speed = 0;
        }
        if (!(speed > 0) || speed > 1000) throw UsageError("--speed takes a number in (0, 1000]");
    }
    const bool skip_idle = args.has("skip-idle");
    const auto& h = rec.header;
    io.err << "# glassgate ssh session " << h.session_id << ": " << h.identity << " -> " << h.target << "\n";
    std::uint64_t last = 0;
    for (const auto& ev : rec.events) {
        if (ev.t_us > last) {
            auto gap = std::chrono::microseconds(static_cast<std::int64_t>(static_cast<double>(ev.t_us - last) / speed));
            if (skip_idle) gap = std::min<std::chrono::microseconds>(gap, std::chrono::seconds(1));
            io.out.flush();
            std::this_thread::sleep_for(gap);
            last = ev.t_us;
        }
        switch (ev.kind) {
            case session::EventKind::term_output:
                io.out << as_chars(ev.payload);
                break;
            case session::EventKind::term_stderr:
                io.out.flush();
                io.err << as_chars(ev.payload);
                io.err.flush();
                break;
            case session::EventKind::exec:
                io.err << "$ " << as_chars(ev.payload) << "\n";
                break;
            case session::EventKind::subsystem:
                io.err << "# subsystem " << as_chars(ev.payload) << "\n";
                break;
            case session::EventKind::sftp:
                io.err << "# sftp " << as_chars(ev.payload) << "\n";
                break;
            case session::EventKind::exit_status:
                if (auto s = session::decode_exit_status(ev.payload)) io.err << "# exit status " << *s << "\n";
                break;
            case session::EventKind::exit_signal:
                if (auto s = session::decode_exit_signal(ev.payload)) io.err << "# killed by signal " << s->signal << "\n";
                break;
            case session::EventKind::annotation:
                io.err << "# " << as_chars(ev.payload) << "\n";
                break;
            default:
                break;
        }
    }
    io.out.flush();
    return rec.report.intact ? exit_ok : exit_failure;
}

int cmd_target_pin(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const auto& name = args.positional.at(0);
    const auto* t = cfg.find_target(name);
    if (!t) throw OperationalError("no target '" + name + "' in " + cfg.source.string());
    if (t->protocol != config::Protocol::ssh) throw OperationalError("target '" + name + "' is not an ssh target");
    const auto line = ssh::fetch_host_key(*t, std::chrono::seconds(10));
    io.out << line << "\n";
    if (ssh::host_key_matches(line, t->host_key)) {
        io.err << "target " << name << " (" << t->address.to_string() << ") presents the pinned host key\n";
    } else {
        io.err << "target " << name << " (" << t->address.to_string() << ") presents the key above; the pinned key is "
               << t->host_key << "\nConfirm the key with the host's owner, then set host_key in the configuration.\n";
    }
    return exit_ok;
}

}  // namespace gg::proxy::cli
