// `sessions list`, `sessions show`, `audit`, `replay` (transcript or terminal), `verify`, `export`
// (asciicast): what security reads afterwards.

#include <cerrno>
#include <charconv>
#include <chrono>
#include <thread>
#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "internal.hpp"
#include "glassgate/proxy/recording/recording_file.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/session/asciicast.hpp"
#include "glassgate/session/pg_transcript.hpp"
#include "glassgate/session/recording.hpp"

namespace gg::proxy::cli {
namespace {

using session::SessionRecord;

std::string fmt_duration(std::chrono::microseconds d) {
    auto secs = d.count() / 1'000'000;
    if (secs < 0) secs = 0;
    char buf[32];
    if (secs >= 3600) {
        std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", static_cast<long long>(secs / 3600),
                      static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
    } else if (secs >= 60) {
        std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(secs / 60), static_cast<long long>(secs % 60));
    } else {
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(secs));
    }
    return buf;
}

/// "2026-11-23", "2026-11-23T10:00", "2026-11-23T10:00:00Z", or an age like "2h".
std::optional<session::TimePoint> parse_since(std::string_view s) {
    if (auto d = config::parse_duration(s); d.value) return now() - std::chrono::duration_cast<std::chrono::microseconds>(*d.value);
    std::tm tm{};
    int n = 0;
    std::string str(s);
    if (!str.empty() && (str.back() == 'Z' || str.back() == 'z')) str.pop_back();
    int matched = std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n);
    if (matched != 3) return std::nullopt;
    std::size_t pos = static_cast<std::size_t>(n);
    if (pos < str.size()) {
        if (str[pos] != 'T' && str[pos] != ' ') return std::nullopt;
        int m = 0;
        tm.tm_sec = 0;
        int got = std::sscanf(str.c_str() + pos + 1, "%2d:%2d%n:%2d%n", &tm.tm_hour, &tm.tm_min, &m, &tm.tm_sec, &m);
        if (got < 2 || pos + 1 + static_cast<std::size_t>(m) != str.size()) return std::nullopt;
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60) {
        return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    std::time_t t = timegm(&tm);
    return session::TimePoint(std::chrono::seconds(t));
}

/// Calls `f` for every audit line in order, paging through the store; stops early when `f` returns false.
template <typename F>
void for_each_audit_line(StateStore& store, F&& f) {
    constexpr std::size_t page = 1000;
    for (std::uint64_t from = 1;;) {
        auto lines = store.audit_lines(from, page);
        for (const auto& l : lines) {
            if (!f(l)) return;
        }
        if (lines.size() < page) return;
        from += lines.size();
    }
}

/// The state column: a session closed because the proxy stopped under it reads "interrupted".
std::string state_text(const SessionRecord& r) {
    return r.close_reason == session::CloseReason::proxy_restarted ? "interrupted" : std::string(session::to_string(r.state));
}

std::string session_line(const SessionRecord& r) {
    std::ostringstream os;
    auto end = r.ended.value_or(now());
    os << r.id << "  " << fmt_time(r.started) << "  " << state_text(r) << "  "
       << session::to_string(r.protocol) << "  " << session::to_string(r.auth) << "  "
       << (r.identity.empty() ? "-" : r.identity) << "  " << (r.target.empty() ? "-" : r.target) << "  "
       << fmt_duration(std::chrono::duration_cast<std::chrono::microseconds>(end - r.started)) << "  "
       << (r.close_reason == session::CloseReason::none ? "-" : std::string(session::to_string(r.close_reason))) << "  "
       << (r.instance.empty() ? "-" : r.instance);
    return os.str();
}

}  // namespace

int cmd_sessions_list(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    SessionFilter f;
    f.identity = args.get("user");
    f.target = args.get("target");
    if (auto s = args.get("since")) {
        f.since = parse_since(*s);
        if (!f.since) throw UsageError("--since: cannot read '" + *s + "' as a time (2026-11-23T10:00:00Z) or an age (2h)");
    }
    if (auto m = args.get("mode")) {
        auto a = session::auth_method_from_string(*m);
        if (!a || *a == session::AuthMethod::none) throw UsageError("--mode must be sso or breakglass");
        f.auth = a;
    }
    if (auto l = args.get("limit")) {
        char* end = nullptr;
        auto v = std::strtoull(l->c_str(), &end, 10);
        if (l->empty() || *end || v == 0) throw UsageError("--limit must be a positive number");
        f.limit = static_cast<std::size_t>(v);
    }
    auto st = open_state(cfg);
    auto rows = st.store->list_sessions(f);
    if (args.has("json")) {
        boost::json::array a;
        for (const auto& r : rows) a.push_back(session::to_json(r));
        io.out << boost::json::serialize(a) << "\n";
        return exit_ok;
    }
    for (const auto& r : rows) io.out << session_line(r) << "\n";
    return exit_ok;
}

int cmd_sessions_show(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const auto& id = args.positional.at(0);
    auto st = open_state(cfg);
    auto r = st.store->find_session(id);
    if (!r) throw OperationalError("no session with id '" + id + "'");
    if (args.has("json")) {
        io.out << boost::json::serialize(session::to_json(*r)) << "\n";
        return exit_ok;
    }
    auto line = [&](std::string_view k, const std::string& v) { io.out << k << std::string(16 - k.size(), ' ') << v << "\n"; };
    line("id", r->id);
    line("protocol", std::string(session::to_string(r->protocol)));
    line("identity", r->identity.empty() ? "-" : r->identity);
    line("auth", std::string(session::to_string(r->auth)));
    line("target", r->target.empty() ? "-" : r->target);
    line("client", r->client_address);
    line("reason", r->reason.empty() ? "-" : r->reason);
    line("state", state_text(*r));
    line("started", session::format_utc(r->started));
    line("deadline", r->deadline ? session::format_utc(*r->deadline) : "-");
    line("ended", r->ended ? session::format_utc(*r->ended) : "-");
    line("bytes in", std::to_string(r->bytes_client_to_server) + " (client to server)");
    line("bytes out", std::to_string(r->bytes_server_to_client) + " (server to client)");
    line("close reason", std::string(session::to_string(r->close_reason)) +
                             (r->close_detail.empty() ? "" : ": " + r->close_detail));
    line("instance", r->instance.empty() ? "-" : r->instance);
    std::string where = "-";
    if (!r->recording.empty()) {
        std::error_code fec;
        const auto local = st.dir->recordings_dir() / r->recording;
        where = local.string();
        if (!std::filesystem::exists(local, fec)) {
            const auto shipped = st.store->shipped_recording(r->id);
            where = shipped.bytes == 0 ? r->recording + " (not on this machine, not in the state store)"
                                       : r->recording + " (in the state store: " + std::to_string(shipped.bytes) + " bytes, " +
                                             (shipped.complete ? "complete" : "incomplete") + ")";
        }
    }
    line("recording", where);
    line("sealed", r->sealed_events ? std::to_string(*r->sealed_events) + " events, chain " + r->sealed_chain_hash : "-");
    return exit_ok;
}

namespace {

struct VerifyOutcome {
    std::string status;  // ok | incomplete | unshipped | broken | missing
    std::string message;
};

VerifyOutcome verify_one(const SessionRecord& r, const StateDir& dir, StateStore& store, const std::string& self_instance) {
    if (r.recording.empty()) return {"missing", "no recording (the session ended before recording started)"};
    session::RecordingReader reader(dir.recording_key());
    RecordingSource source;
    try {
        source = proxy::read_session_recording(dir.recordings_dir(), store, r,
                                               [&](std::string_view b) { reader.feed(as_bytes(b)); });
    } catch (const OperationalError& e) {
        // Recorded by another instance that has not shipped it yet (its shipping retries): not proof of damage.
        std::error_code fec;
        if (!r.instance.empty() && r.instance != self_instance && !std::filesystem::exists(dir.recordings_dir() / r.recording, fec) &&
            store.shipped_recording(r.id).bytes == 0) {
            return {"unshipped", "instance " + r.instance + " has not shipped this recording into the state store yet (it "
                                 "retries until it has); run verify again later, or on instance " + r.instance};
        }
        return {"broken", e.what()};
    }
    const auto rep = reader.finish();
    if (source.from_store && !source.complete && rep.intact && r.sealed_events) {
        // Sealed on its instance, not all shipped yet: what the store has is checked, the rest is due.
        return {"incomplete", rep.summary() + " (read from " + source.where + "; the rest is still being shipped)"};
    }
    if (!rep.intact) return {"broken", rep.summary()};
    if (reader.header().session_id != r.id) {
        return {"broken", "recording belongs to session '" + reader.header().session_id + "', not '" + r.id + "'"};
    }
    if (r.sealed_events) {
        if (!rep.sealed || rep.events != *r.sealed_events || rep.final_chain_hex != r.sealed_chain_hash) {
            return {"broken", "the index records a seal of " + std::to_string(*r.sealed_events) +
                                  " events but the file " +
                                  (rep.sealed ? "has a different seal (" + std::to_string(rep.events) + " events)"
                                              : "ends unsealed after " + std::to_string(rep.events) +
                                                    " events: it was truncated") };
        }
        return {"ok", rep.summary()};
    }
    if (!rep.sealed) {
        return {r.state == session::State::closed ? "incomplete" : "ok",
                rep.summary() + (r.state != session::State::closed ? " (session still open)"
                                 : r.close_reason == session::CloseReason::proxy_restarted
                                     ? " (interrupted: the proxy stopped while the session was open)"
                                 : r.close_reason == session::CloseReason::recording_failed
                                     ? " (the recording could not be written further: " + r.close_detail + ")"
                                     : " (the proxy stopped before sealing it)")};
    }
    return {"ok", rep.summary()};
}

}  // namespace

int cmd_audit(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto st = open_state(cfg);
    const auto session_id = args.get("session");
    const auto event = args.get("event");
    for_each_audit_line(*st.store, [&](const std::string& l) {
        if (session_id || event) {
            boost::system::error_code ec;
            auto v = boost::json::parse(l, ec);
            if (ec || !v.is_object()) return true;
            const auto& o = v.as_object();
            auto field = [&](const char* k) {
                auto* x = o.if_contains(k);
                return x && x->is_string() ? std::string(x->as_string()) : std::string();
            };
            if (session_id && field("session") != *session_id) return true;
            if (event && field("event") != *event) return true;
        }
        io.out << l << "\n";
        return true;
    });
    return exit_ok;
}

int cmd_replay(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto rec = load_recording(cfg, args.positional.at(0), io);
    if (rec.header.protocol == "ssh") return replay_terminal(rec, args, io);
    if (rec.header.protocol != "postgres") {
        throw OperationalError("replay of " + rec.header.protocol + " sessions is not available in this version");
    }
    session::TranscriptOptions o;
    o.rows = !args.has("no-rows");
    io.out << session::render_pg_transcript(rec, o);
    return rec.report.intact ? exit_ok : exit_failure;
}

int cmd_verify(const Args& args, Io& io) {
    if (args.has("public-key")) return cmd_verify_public_key(args, io);
    auto cfg = load_config_or_throw(args, io);
    const bool all = args.has("all");
    const bool audit = args.has("audit");
    if (all == !args.positional.empty() && !(audit && !all && args.positional.empty())) {
        throw UsageError(all ? "give a session ID or --all, not both" : "give a session ID, --all or --audit");
    }
    auto st = open_state(cfg);
    std::vector<SessionRecord> rows;
    if (all) {
        rows = st.store->list_sessions({});
    } else if (!args.positional.empty()) {
        auto r = st.store->find_session(args.positional[0]);
        if (!r) throw OperationalError("no session with id '" + args.positional[0] + "'");
        rows.push_back(*r);
    }
    bool broken = false;
    boost::json::array results;
    for (const auto& r : rows) {
        auto v = verify_one(r, *st.dir, *st.store, cfg.store.postgres ? cfg.server.instance : std::string());
        broken = broken || v.status == "broken";
        if (args.has("json")) {
            results.emplace_back(boost::json::object{{"id", r.id}, {"status", v.status}, {"message", v.message}});
        } else {
            io.out << r.id << "  " << v.status << "  " << v.message << "\n";
        }
    }
    if (audit) {
        session::AuditVerifier verifier(st.dir->audit_key());
        const auto& pub = st.dir->signing_public_key();
        verifier.also_check_signatures(ByteView(pub.data(), pub.size()));
        for_each_audit_line(*st.store, [&](const std::string& l) { return verifier.feed(l); });
        broken = broken || !verifier.ok();
        std::string msg = verifier.ok() ? std::to_string(verifier.entries()) + " entries, chain intact, " +
                                              std::to_string(verifier.signed_entries()) + " signatures verified"
                                        : verifier.problem();
        if (args.has("json")) {
            results.emplace_back(boost::json::object{{"id", "audit"}, {"status", verifier.ok() ? "ok" : "broken"}, {"message", msg}});
        } else {
            io.out << "audit  " << (verifier.ok() ? "ok" : "broken") << "  " << msg << "\n";
        }
    }
    if (args.has("json")) io.out << boost::json::serialize(results) << "\n";
    return broken ? exit_failure : exit_ok;
}

namespace {

/// The whole recording file of session `id`, with the state it was found in.
std::pair<std::string, State> read_session_recording(const config::Config& cfg, const std::string& id) {
    auto st = open_state(cfg);
    auto r = st.store->find_session(id);
    if (!r) throw OperationalError("no session with id '" + id + "'");
    if (r->recording.empty()) throw OperationalError("session " + id + " has no recording (it ended before recording started)");
    std::string bytes;
    (void)proxy::read_session_recording(st.dir->recordings_dir(), *st.store, *r,
                                        [&](std::string_view b) { bytes.append(b); });
    return {bytes, std::move(st)};
}

}  // namespace

session::DecodedRecording load_recording(const config::Config& cfg, const std::string& id, Io& io) {
    const auto [bytes, st] = read_session_recording(cfg, id);
    auto rec = session::read_recording(as_bytes(bytes), st.dir->recording_key());
    if (!rec.report.intact) {
        io.err << "WARNING: the recording fails verification: " << rec.report.summary() << "\n";
    }
    return rec;
}

namespace {

/// `export ID --format ggrec --output FILE`: the recording file as written (signed) and FILE.pub.
int export_recording_file(const config::Config& cfg, const std::string& id, const std::string& file, Io& io) {
    const auto [bytes, st] = read_session_recording(cfg, id);
    const auto rep = session::verify_recording(as_bytes(bytes), st.dir->recording_key());
    if (!rep.intact) io.err << "WARNING: the recording fails verification: " << rep.summary() << "\n";
    if (rep.format_version == session::recording_format_version) {
        io.err << "WARNING: this recording is not signed (written without a signing key): only the proxy can verify it\n";
    }
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
    out.flush();
    if (!out) throw OperationalError("cannot write " + file + ": " + std::strerror(errno));
    const std::string pub = file + ".pub";
    std::ofstream key(pub, std::ios::binary | std::ios::trunc);
    key << session::ed25519_key_text(st.dir->signing_public_key()) << "\n";
    key.flush();
    if (!key) throw OperationalError("cannot write " + pub + ": " + std::strerror(errno));
    io.err << "wrote " << file << " and its public key " << pub << " (check anywhere: glassgate verify " << file
           << " --public-key " << pub << ")\n";
    return rep.intact ? exit_ok : exit_failure;
}

}  // namespace

int cmd_export(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const auto format = args.get("format").value_or("asciicast");
    if (format == "ggrec") {
        const auto file = args.get("output");
        if (!file || file->empty() || *file == "-") throw UsageError("--format ggrec needs --output FILE");
        return export_recording_file(cfg, args.positional.at(0), *file, io);
    }
    if (format != "asciicast") throw UsageError("unknown --format '" + format + "' (asciicast, ggrec)");
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
        const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), speed);
        if (ec != std::errc() || end != s->data() + s->size()) speed = 0;
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

}  // namespace gg::proxy::cli
