// The CLI end to end through cli::run (the same function main() calls), against real config files,
// a real state directory and real recordings.

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "glassgate/proxy/cli/cli.hpp"
#include "glassgate/proxy/recording/recording_writer.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/recording.hpp"
#include "cli_run.hpp"
#include "harness/net.hpp"
#include "temp_dir.hpp"

using namespace gg;
using namespace gg::proxy;
using gg::test::TempDir;

namespace {

test::CliResult run(const std::vector<std::string>& argv) { return test::run_cli(argv); }

/// A minimal valid configuration in `dir` (no listeners, so nothing binds).
std::filesystem::path write_config(const TempDir& dir, const std::string& extra = "") {
    auto p = dir / "glassgate.toml";
    std::ofstream(p) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n\n"
                        "[[target]]\nname = \"appdb\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:5432\"\n"
                        "database = \"app\"\nbackend_user = \"app_owner\"\nallow = [\"alice\"]\n"
                     << extra;
    return p;
}

session::TimePoint at(std::int64_t s) { return session::TimePoint(std::chrono::seconds(s)); }

}  // namespace

TEST_SUITE_BEGIN("cli");

TEST_CASE("parse_args: options, values, flags, errors") {
    std::vector<cli::OptionSpec> specs = {{"config", "FILE", ""}, {"json", "", ""}};
    auto a = cli::parse_args({"x", "--config", "f.toml", "--json", "y", "--", "--json"}, specs);
    CHECK(a.get("config").value() == "f.toml");
    CHECK(a.has("json"));
    CHECK(a.positional == std::vector<std::string>{"x", "y", "--json"});
    CHECK(cli::parse_args({"--config=a=b"}, specs).get("config").value() == "a=b");
    CHECK_THROWS_WITH_AS(cli::parse_args({"--nope"}, specs), doctest::Contains("unknown option '--nope'"), cli::UsageError);
    CHECK_THROWS_WITH_AS(cli::parse_args({"--config"}, specs), doctest::Contains("needs a value"), cli::UsageError);
    CHECK_THROWS_WITH_AS(cli::parse_args({"--json=1"}, specs), doctest::Contains("takes no value"), cli::UsageError);
    CHECK_THROWS_AS(cli::parse_args({"--config", "a", "--config", "b"}, specs), cli::UsageError);
    CHECK_THROWS_AS(cli::parse_args({"-x"}, specs), cli::UsageError);
}

TEST_CASE("help, unknown and reserved commands, exit codes") {
    auto h = run({"--help"});
    CHECK(h.code == 0);
    for (auto c : {"serve", "config check", "version", "secret set", "sessions list", "sessions show", "verify"}) {
        CHECK_MESSAGE(h.out.find(c) != std::string::npos, c);
    }
    CHECK(run({}).code == 2);
    CHECK(run({"frobnicate"}).code == 2);
    auto unknown = run({"frobnicate"});
    CHECK(unknown.err.find("not available in this version") == std::string::npos);
    CHECK(run({"sessions"}).code == 2);
    CHECK(run({"sessions", "frob"}).code == 2);
    for (std::vector<std::string> cmd : {std::vector<std::string>{"serve"}, {"config", "check"}, {"version"},
                                         {"secret", "set"}, {"secret", "list"}, {"sessions", "list"},
                                         {"sessions", "show"}, {"verify"}, {"replay"}, {"export"},
                                         {"target", "pin"}}) {
        cmd.push_back("--help");
        auto r = run(cmd);
        CHECK(r.code == 0);
        CHECK(r.out.find("usage: glassgate") != std::string::npos);
        CHECK(r.out.find("--help") != std::string::npos);
    }
    auto bad = run({"sessions", "list", "--bogus"});
    CHECK(bad.code == 2);
    CHECK(bad.err.find("--bogus") != std::string::npos);
    auto v = run({"version", "--json"});
    CHECK(v.code == 0);
    CHECK(boost::json::parse(v.out).as_object().contains("libssh"));
}

TEST_CASE("config check: ok, every error with its location, missing file") {
    TempDir dir;
    auto good = write_config(dir);
    auto r = run({"config", "check", "--config", good.string()});
    CHECK(r.code == 0);
    CHECK(r.out.find(": ok (1 target(s), 0 fallback rule(s))") != std::string::npos);

    auto badp = dir / "bad.toml";
    std::ofstream(badp) << "[server]\nstate_dirr = \"x\"\n[[target]]\nname = \"a\"\nprotocol = \"http\"\n";
    auto b = run({"config", "check", "--config", badp.string()});
    CHECK(b.code == 2);
    CHECK(b.err.find(badp.string() + ":2:") != std::string::npos);  // unknown key, with location
    CHECK(b.err.find("state_dirr") != std::string::npos);
    CHECK(b.err.find("protocol") != std::string::npos);

    auto missing = run({"config", "check", "--config", (dir / "nope.toml").string()});
    CHECK(missing.code == 2);
    CHECK(missing.err.find("nope.toml") != std::string::npos);
}

TEST_CASE("config file discovery: --config, then $GLASSGATE_CONFIG, then ./glassgate.toml") {
    TempDir dir;
    auto cfg = write_config(dir);
    auto cwd = std::filesystem::current_path();
    ::setenv("GLASSGATE_CONFIG", cfg.c_str(), 1);
    CHECK(run({"config", "check"}).code == 0);
    ::unsetenv("GLASSGATE_CONFIG");
    TempDir empty;
    std::filesystem::current_path(empty.path());
    auto none = run({"config", "check"});
    CHECK(none.code == 2);
    CHECK(none.err.find("GLASSGATE_CONFIG") != std::string::npos);
    std::filesystem::current_path(dir.path());
    CHECK(run({"config", "check"}).code == 0);  // ./glassgate.toml
    std::filesystem::current_path(cwd);
}

TEST_CASE("secret set: from a file, validation, audit; secret list") {
    TempDir dir;
    auto cfg = write_config(dir);
    auto sf = dir / "pw";
    std::ofstream(sf) << "hunter2\n";
    auto r = run({"secret", "set", "appdb", "--from-file", sf.string(), "--config", cfg.string()});
    CHECK_MESSAGE(r.code == 0, r.err);
    CHECK(r.out.empty());  // nothing on stdout

    StateDir sd(dir / "state");
    auto store = open_sqlite_store(sd.store_file(), sd.audit_key());
    SecretStore secrets(*store, sd.secrets_key());
    CHECK(secrets.get("appdb").value().reveal() == "hunter2");  // single-line: trailing newline dropped
    auto audit = store->audit_lines(1, 0);
    REQUIRE(audit.size() == 1);
    CHECK(audit[0].find("\"event\":\"secret.set\"") != std::string::npos);
    CHECK(audit[0].find("hunter2") == std::string::npos);

    auto list = run({"secret", "list", "--config", cfg.string()});
    CHECK(list.out == "appdb\n");

    auto unknown = run({"secret", "set", "nodb", "--from-file", sf.string(), "--config", cfg.string()});
    CHECK(unknown.code == 2);
    CHECK(unknown.err.find("no target named 'nodb'") != std::string::npos);
    auto empty = dir / "empty";
    std::ofstream(empty) << "";
    CHECK(run({"secret", "set", "appdb", "--from-file", empty.string(), "--config", cfg.string()}).code == 1);
    CHECK(run({"secret", "set", "appdb", "--from-file", (dir / "missing").string(), "--config", cfg.string()}).code == 1);
    CHECK(run({"secret", "set", "--config", cfg.string()}).code == 2);  // missing TARGET
}

TEST_CASE("an unusable state directory is an operational error naming the path") {
    TempDir dir;
    std::ofstream(dir / "blocker") << "x";
    auto p = dir / "glassgate.toml";
    std::ofstream(p) << "[server]\nstate_dir = \"blocker/state\"\n";
    auto r = run({"sessions", "list", "--config", p.string()});
    CHECK(r.code == 1);
    CHECK(r.err.find("blocker/state") != std::string::npos);
}

TEST_CASE("sessions list/show and verify over real recordings") {
    TempDir dir;
    auto cfg = write_config(dir);
    const std::string c = cfg.string();
    StateDir sd(dir / "state");
    auto store = open_sqlite_store(sd.store_file(), sd.audit_key());

    // Two sessions with recordings written by the real recording service.
    std::vector<std::string> ids = {"01JDQ00000000000000000000A", "01JDQ00000000000000000000B"};
    {
        RecordingService svc(sd.recordings_dir(), sd.recording_key());
        for (std::size_t i = 0; i < ids.size(); ++i) {
            session::RecordingHeader h;
            h.session_id = ids[i];
            h.protocol = "ssh";
            h.target = "web01";
            h.identity = i == 0 ? "alice" : "bob";
            auto handle = svc.open(h);
            for (int k = 0; k < 50; ++k) {
                REQUIRE(handle->append(session::EventKind::term_output, session::Direction::server_to_client,
                                       as_bytes("line " + std::to_string(k) + "\r\n"), static_cast<std::uint64_t>(k) * 1000));
            }
            auto seal = handle->close(60'000);
            REQUIRE(seal.ok);
            session::SessionRecord r;
            r.id = ids[i];
            r.protocol = session::Protocol::ssh;
            r.identity = h.identity;
            r.auth = i == 0 ? session::AuthMethod::sso : session::AuthMethod::breakglass;
            r.target = "web01";
            r.started = at(1'700'000'000 + static_cast<std::int64_t>(i) * 100);
            r.ended = r.started + std::chrono::seconds(75);
            r.state = session::State::closed;
            r.close_reason = session::CloseReason::client_disconnect;
            r.recording = handle->path().filename().string();
            r.sealed_events = seal.events;
            r.sealed_chain_hash = seal.chain_hash_hex;
            store->save_session(r);
        }
    }

    auto l = run({"sessions", "list", "--config", c});
    REQUIRE(l.code == 0);
    std::istringstream lines(l.out);
    std::string first, second;
    std::getline(lines, first);
    std::getline(lines, second);
    CHECK(first.rfind(ids[0] + "  ", 0) == 0);  // one line per item, starting with its id
    CHECK(second.rfind(ids[1] + "  ", 0) == 0);
    CHECK(first.find("1m15s") != std::string::npos);
    CHECK(run({"sessions", "list", "--user", "bob", "--config", c}).out.rfind(ids[1], 0) == 0);
    CHECK(run({"sessions", "list", "--mode", "breakglass", "--config", c}).out.rfind(ids[1], 0) == 0);
    CHECK(run({"sessions", "list", "--since", "2023-11-14T22:14:00Z", "--config", c}).out.rfind(ids[1], 0) == 0);
    CHECK(run({"sessions", "list", "--since", "1h", "--config", c}).out.empty());
    CHECK(run({"sessions", "list", "--since", "yesterday", "--config", c}).code == 2);
    CHECK(run({"sessions", "list", "--mode", "magic", "--config", c}).code == 2);
    auto js = run({"sessions", "list", "--json", "--config", c});
    CHECK(boost::json::parse(js.out).as_array().size() == 2);
    auto show = run({"sessions", "show", ids[0], "--config", c});
    CHECK(show.code == 0);
    CHECK(show.out.find("alice") != std::string::npos);
    CHECK(run({"sessions", "show", "01JDQ0000000000000000000ZZ", "--config", c}).code == 1);

    auto ok = run({"verify", "--all", "--audit", "--config", c});
    CHECK_MESSAGE(ok.code == 0, ok.out << ok.err);
    CHECK(ok.out.find(ids[0] + "  ok") != std::string::npos);
    CHECK(ok.out.find("audit  ok") != std::string::npos);
    CHECK(run({"verify", "--config", c}).code == 2);
    CHECK(run({"verify", ids[0], "--all", "--config", c}).code == 2);

    // One flipped byte in the middle of the first recording: broken, exit 1, the other still ok.
    auto file0 = sd.recordings_dir() / (ids[0] + ".ggrec");
    std::string bytes;
    {
        std::ifstream in(file0, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto flipped = bytes;
    flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x20);
    std::ofstream(file0, std::ios::binary | std::ios::trunc) << flipped;
    auto broken = run({"verify", "--all", "--config", c});
    CHECK(broken.code == 1);
    CHECK(broken.out.find(ids[0] + "  broken") != std::string::npos);
    CHECK(broken.out.find(ids[1] + "  ok") != std::string::npos);

    // Truncated to a whole-record prefix: the index's seal exposes it.
    std::ofstream(file0, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
    auto cut = run({"verify", ids[0], "--config", c});
    CHECK(cut.code == 1);
    CHECK(cut.out.find("broken") != std::string::npos);
}

TEST_CASE("serve: a port in use and a missing TLS file are one-line errors with exit 1") {
    TempDir dir;
    harness::LoopbackListener busy(1);  // occupies a port
    const auto port = std::to_string(busy.port());

    auto cfg = write_config(dir, "\n[listen]\nssh = \"127.0.0.1:" + port + "\"\n");
    // serve logs its start-up error through spdlog to stderr; the exit code is what we check here.
    auto r = run({"serve", "--config", cfg.string()});
    CHECK(r.code == 1);
    busy.close();  // the port is free again: use it for the next case

    auto p = dir / "tls.toml";
    std::ofstream(p) << "[server]\nstate_dir = \"state2\"\nadmin_socket = \"state2/admin.sock\"\n"
                        "[listen]\npostgres = \"127.0.0.1:" + port + "\"\n[tls]\ncert_file = \"missing.crt\"\nkey_file = \"missing.key\"\n";
    CHECK(run({"serve", "--config", p.string()}).code == 1);
}

// ---- signatures: keys show, export --format ggrec, verify --public-key -------------------------

namespace {

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A sealed ssh recording of `n` events written by the real recording service; returns its seal.
RecordingHandle::SealInfo record_session(RecordingService& svc, StateStore& store, const std::string& id, int n) {
    session::RecordingHeader h;
    h.session_id = id;
    h.protocol = "ssh";
    h.target = "web01";
    h.identity = "alice";
    auto handle = svc.open(h);
    for (int k = 0; k < n; ++k) {
        REQUIRE(handle->append(session::EventKind::term_output, session::Direction::server_to_client,
                               as_bytes("line " + std::to_string(k) + "\r\n"), static_cast<std::uint64_t>(k) * 1000));
        if (k == n / 2) std::this_thread::sleep_for(std::chrono::milliseconds(250));  // a checkpoint in between
    }
    auto seal = handle->close(static_cast<std::uint64_t>(n) * 1000);
    REQUIRE(seal.ok);
    session::SessionRecord r;
    r.id = id;
    r.protocol = session::Protocol::ssh;
    r.identity = "alice";
    r.auth = session::AuthMethod::sso;
    r.target = "web01";
    r.started = at(1'700'000'000);
    r.ended = r.started + std::chrono::seconds(75);
    r.state = session::State::closed;
    r.close_reason = session::CloseReason::client_disconnect;
    r.recording = handle->path().filename().string();
    r.sealed_events = seal.events;
    r.sealed_chain_hash = seal.chain_hash_hex;
    store.save_session(r);
    return seal;
}

}  // namespace

TEST_CASE("keys show, export --format ggrec, then verify --public-key elsewhere with no configuration") {
    TempDir dir;
    auto cfg = write_config(dir);
    const std::string c = cfg.string();
    const std::string id = "01JDQ00000000000000000000S";
    const std::string unsigned_id = "01JDQ00000000000000000000U";
    {
        StateDir sd(dir / "state");
        auto store = open_sqlite_store(sd.store_file(), sd.audit_key(), sd.signing_seed());
        RecordingService svc(sd.recordings_dir(), sd.recording_key(), RecordingService::Options{.signing_seed = sd.signing_seed()});
        record_session(svc, *store, id, 40);
        RecordingService old(dir / "old", sd.recording_key());  // no signing key: version 1
        record_session(old, *store, unsigned_id, 5);
        for (int i = 0; i < 4; ++i) {
            session::AuditEvent ev;
            ev.time = at(1'700'000'000 + i);
            ev.type = "session.start";
            ev.session_id = "S" + std::to_string(i);
            store->append_audit(ev);
        }
    }

    auto keys = run({"keys", "show", "--config", c});
    REQUIRE_MESSAGE(keys.code == 0, keys.err);
    const auto key_line = keys.out;
    CHECK(key_line.rfind("ed25519:", 0) == 0);
    CHECK(std::count(key_line.begin(), key_line.end(), '\n') == 1);
    CHECK(keys.err.rfind("fingerprint: SHA256:", 0) == 0);
    CHECK(run({"keys", "show", "--config", c}).out == key_line);  // stable: derived from the master key

    // Export: the recording file as written, and the public key next to it.
    auto ex = run({"export", id, "--format", "ggrec", "--output", (dir / "out.ggrec").string(), "--config", c});
    REQUIRE_MESSAGE(ex.code == 0, ex.err);
    CHECK(slurp(dir / "out.ggrec") == slurp(dir / "state" / "recordings" / (id + ".ggrec")));
    CHECK(slurp(dir / "out.ggrec.pub") == key_line);
    CHECK(run({"export", id, "--format", "ggrec", "--config", c}).code == 2);  // needs --output
    auto audit = run({"audit", "--config", c});
    REQUIRE(audit.code == 0);

    // Another machine: only the copied files, no configuration, no state directory.
    TempDir elsewhere;
    const auto rec = elsewhere / "rec.ggrec";
    const auto pub = elsewhere / "proxy.pub";
    std::filesystem::copy_file(dir / "out.ggrec", rec);
    std::filesystem::copy_file(dir / "out.ggrec.pub", pub);
    std::ofstream(elsewhere / "audit.jsonl") << audit.out;
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(elsewhere.path());
    ::unsetenv("GLASSGATE_CONFIG");

    auto ok = run({"verify", rec.string(), "--public-key", pub.string()});
    CHECK_MESSAGE(ok.code == 0, ok.out << ok.err);
    CHECK(ok.out.find(rec.string() + "  ok  ok: sealed, 40 events\n") == 0);
    CHECK(ok.out.find("session: " + id + " (ssh, alice -> web01)") != std::string::npos);
    CHECK(ok.out.find("checkpoints (the seal included) signed by " + key_line.substr(0, key_line.size() - 1) +
                      ", verified") != std::string::npos);
    CHECK(ok.out.find("MACs: not checked") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(elsewhere / "state"));
    auto js = run({"verify", rec.string(), "--public-key", pub.string(), "--json"});
    CHECK(js.code == 0);
    CHECK(boost::json::parse(js.out).as_array().at(0).as_object().at("status").as_string() == "ok");

    const std::string bytes = slurp(rec);
    auto write = [&](const std::string& content) {
        const auto p = elsewhere / "x.ggrec";
        std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
        return p.string();
    };
    // A flipped byte.
    std::string flipped = bytes;
    flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x20);
    auto broken = run({"verify", write(flipped), "--public-key", pub.string()});
    CHECK(broken.code == 1);
    CHECK(broken.out.find("  broken  BROKEN at") != std::string::npos);
    // Cut short: intact and signed up to its last checkpoint, not sealed.
    auto cut = run({"verify", write(bytes.substr(0, bytes.size() - 100)), "--public-key", pub.string()});
    CHECK_MESSAGE(cut.code == 3, cut.out);
    CHECK(cut.out.find("  incomplete  incomplete: not sealed") != std::string::npos);
    // Another key.
    {
        TempDir other_state;
        StateDir other(other_state.path());
        std::ofstream(elsewhere / "other.pub") << session::ed25519_key_text(other.signing_public_key()) << "\n";
    }
    auto wrong = run({"verify", rec.string(), "--public-key", (elsewhere / "other.pub").string()});
    CHECK(wrong.code == 1);
    CHECK(wrong.out.find("signed by another key") != std::string::npos);
    // An unsigned (version 1) recording.
    auto unsigned_rec = run({"verify", (dir / "old" / (unsigned_id + ".ggrec")).string(), "--public-key", pub.string()});
    CHECK(unsigned_rec.code == 1);
    CHECK(unsigned_rec.out.find("not signed") != std::string::npos);
    // Not a key file; usage errors.
    std::ofstream(elsewhere / "bad.pub") << "ssh-ed25519 AAAA\n";
    CHECK(run({"verify", rec.string(), "--public-key", (elsewhere / "bad.pub").string()}).code == 1);
    CHECK(run({"verify", "--all", "--public-key", pub.string()}).code == 2);
    CHECK(run({"verify", "--public-key", pub.string()}).code == 2);

    // The exported audit log.
    const auto audit_file = (elsewhere / "audit.jsonl").string();
    auto a = run({"verify", "--audit", audit_file, "--public-key", pub.string()});
    CHECK_MESSAGE(a.code == 0, a.out << a.err);
    CHECK(a.out.find("audit  ok  4 entries, chain intact, every entry signed by ") == 0);
    std::vector<std::string> lines;
    {
        std::istringstream in(audit.out);
        for (std::string l; std::getline(in, l);) lines.push_back(l);
    }
    REQUIRE(lines.size() == 4);
    auto write_lines = [&](const std::vector<std::string>& ls) {
        std::ofstream o(elsewhere / "a2.jsonl", std::ios::trunc);
        for (const auto& l : ls) o << l << "\n";
        return (elsewhere / "a2.jsonl").string();
    };
    auto removed = lines;
    removed.erase(removed.begin() + 1);
    auto ra = run({"verify", "--audit", write_lines(removed), "--public-key", pub.string()});
    CHECK(ra.code == 1);
    CHECK(ra.out.find("audit  broken  entry 2") == 0);
    auto edited = lines;
    edited[2][edited[2].find("S2")] = 'T';
    CHECK(run({"verify", "--audit", write_lines(edited), "--public-key", pub.string()}).code == 1);
    CHECK(run({"verify", "--audit", audit_file, "--public-key", (elsewhere / "other.pub").string()}).code == 1);

    // The real binary, in a directory without any configuration.
    const std::string cmd = std::string(GG_BINARY) + " verify '" + rec.string() + "' --public-key '" + pub.string() +
                            "' > '" + (elsewhere / "stdout").string() + "' 2>&1";
    const int status = std::system(cmd.c_str());
    CHECK(WIFEXITED(status));
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, slurp(elsewhere / "stdout"));
    CHECK(slurp(elsewhere / "stdout").find("signed by ed25519:") != std::string::npos);
    std::filesystem::current_path(cwd);
}

TEST_SUITE_END();
