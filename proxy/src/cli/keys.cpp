// `keys show` and verification by public key (`verify PATH --public-key KEYFILE`, with `--audit` for
// an exported audit log): what someone without the proxy's secrets uses to check its records.

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include "internal.hpp"
#include "glassgate/proxy/recording/recording_file.hpp"
#include "glassgate/session/audit_chain.hpp"
#include "glassgate/session/recording.hpp"

namespace gg::proxy::cli {
namespace {

/// The public key in a key file: its first non-blank line, as `keys show` prints it.
crypto::Ed25519PublicKey read_public_key(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw OperationalError("cannot read " + path + ": " + std::strerror(errno));
    std::string line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (auto key = session::parse_ed25519_key_text(line)) return *key;
        break;
    }
    throw OperationalError(path + " does not hold a public key (expected one line \"ed25519:<base64>\", as "
                                  "`glassgate keys show` prints it)");
}

int verify_recording_file(const std::string& path, const crypto::Ed25519PublicKey& key, const Args& args, Io& io) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw OperationalError("cannot read " + path + ": " + std::strerror(errno));
    // No HMAC key: the MACs need the proxy's secret; the signatures carry the proof here.
    session::RecordingReader reader({}, key);
    if (!feed_recording(reader, in)) throw OperationalError("cannot read " + path + ": " + std::strerror(errno));
    const auto rep = reader.finish();
    const std::string status = !rep.intact ? "broken" : rep.sealed ? "ok" : "incomplete";
    const auto key_text = session::ed25519_key_text(key);
    const std::string signatures =
        rep.intact ? std::to_string(rep.signatures) + " checkpoints (the seal included) signed by " + key_text + ", verified"
                   : std::to_string(rep.signatures) + " checkpoints verified with " + key_text + " before the problem";
    const auto& h = reader.header();
    if (args.has("json")) {
        boost::json::object o{{"path", path},
                              {"status", status},
                              {"message", rep.summary()},
                              {"session", h.session_id},
                              {"events", rep.events},
                              {"authenticated_events", rep.authenticated_events},
                              {"signatures", rep.signatures},
                              {"public_key", key_text},
                              {"chain", rep.final_chain_hex}};
        io.out << boost::json::serialize(boost::json::array{o}) << "\n";
    } else {
        io.out << path << "  " << status << "  " << rep.summary() << "\n";
        if (rep.has_header) {
            io.out << "session: " << h.session_id << " (" << (h.protocol.empty() ? "-" : h.protocol) << ", "
                   << (h.identity.empty() ? "-" : h.identity) << " -> " << (h.target.empty() ? "-" : h.target) << ")\n";
        }
        io.out << "signatures: " << signatures << "\n";
        if (!rep.final_chain_hex.empty()) io.out << "chain: " << rep.final_chain_hex << "\n";
        io.out << "MACs: not checked (they need the proxy's recording key)\n";
    }
    if (!rep.intact) return exit_failure;
    return rep.sealed ? exit_ok : exit_incomplete;
}

int verify_audit_file(const std::string& path, const crypto::Ed25519PublicKey& key, const Args& args, Io& io) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw OperationalError("cannot read " + path + ": " + std::strerror(errno));
    session::AuditVerifier verifier({}, key);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        if (!verifier.feed(line)) break;
    }
    if (in.bad()) throw OperationalError("cannot read " + path + ": " + std::strerror(errno));
    const auto key_text = session::ed25519_key_text(key);
    bool ok = verifier.ok() && verifier.entries() > 0;
    std::string msg = !verifier.ok() ? verifier.problem()
                      : ok ? std::to_string(verifier.entries()) + " entries, chain intact, every entry signed by " +
                                 key_text + " (MACs not checked: they need the proxy's audit key)"
                           : "no audit entries in " + path;
    if (args.has("json")) {
        io.out << boost::json::serialize(boost::json::array{boost::json::object{
                      {"id", "audit"}, {"path", path}, {"status", ok ? "ok" : "broken"}, {"message", msg},
                      {"entries", verifier.entries()}, {"public_key", key_text}}})
               << "\n";
    } else {
        io.out << "audit  " << (ok ? "ok" : "broken") << "  " << msg << "\n";
        if (ok) io.out << "head: " << to_hex(verifier.head()) << " (compare with a copy kept elsewhere: lines removed at the end cannot be seen)\n";
    }
    return ok ? exit_ok : exit_failure;
}

}  // namespace

int cmd_keys_show(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const StateDir dir(cfg.server.state_dir, cfg.server.master_key_path());
    const auto& key = dir.signing_public_key();
    io.out << session::ed25519_key_text(key) << "\n";
    // The fingerprint goes to standard error, so `glassgate keys show > proxy.pub` writes only the key.
    io.err << "fingerprint: " << session::ed25519_key_fingerprint(key) << "\n";
    return exit_ok;
}

int cmd_verify_public_key(const Args& args, Io& io) {
    if (args.has("all") || args.has("config")) {
        throw UsageError("--public-key verifies one file (PATH) and needs no configuration: drop --all/--config");
    }
    if (args.positional.size() != 1) {
        throw UsageError("--public-key needs the PATH of a recording (.ggrec), or of an audit log with --audit");
    }
    const auto key = read_public_key(*args.get("public-key"));
    const auto& path = args.positional[0];
    return args.has("audit") ? verify_audit_file(path, key, args, io) : verify_recording_file(path, key, args, io);
}

}  // namespace gg::proxy::cli
