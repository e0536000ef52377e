// Faults glassgate survives with nothing lost, end to end with real processes: `glassgate serve`,
// PostgreSQL 15, sshd, the oidc-provider, psql and ssh.
//   - kill -9 of serve with four sessions open (SSO and break-glass, PostgreSQL and SSH), then a restart
//     on the same state directory: each session is closed as interrupted (proxy_restarted), its recording
//     is authenticated through a checkpoint taken within the writer's flush interval of the kill, the
//     audit has its session.end, break-glass credentials stay consumed and are rotated after the restart.
//   - the state directory (a small tmpfs) fills up under two running sessions: both are ended with a
//     message saying recording storage is full, new sessions are refused with the same message, the audit
//     events and index rows that could not be written wait in memory (metrics show the backlog) and are
//     written in order once space is freed; glassgate serves again without a restart and the audit chain
//     verifies.
// Root is required (mount(8) of a tmpfs); the test fails with a message otherwise.

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/session/recording.hpp"
#include "harness/files.hpp"
#include "harness/net.hpp"
#include "harness/process.hpp"
#include "harness/sshd_peer.hpp"
#include "pg_stack.hpp"

using namespace gg::harness;
using namespace std::chrono_literals;
using SystemClock = std::chrono::system_clock;

namespace {

/// A tmpfs mounted on `dir` for the lifetime of the object (unmounted on every path, lazily if busy).
class TmpfsMount {
 public:
    TmpfsMount(std::filesystem::path dir, const std::string& size) : dir_(std::move(dir)) {
        std::filesystem::create_directories(dir_);
        const auto r = run({"mount", "-t", "tmpfs", "-o", "size=" + size + ",mode=0700", "tmpfs", dir_.string()});
        REQUIRE_MESSAGE(r.exit_code == 0, "this test mounts a tmpfs as the state directory and must run as root: "
                                              << r.describe());
        mounted_ = true;
    }
    ~TmpfsMount() {
        if (mounted_ && ::umount(dir_.c_str()) != 0) (void)::umount2(dir_.c_str(), MNT_DETACH);
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;

 private:
    std::filesystem::path dir_;
    bool mounted_ = false;
};

struct FaultOptions {
    bool state_on_tmpfs = false;  ///< the state directory is a 40 MiB tmpfs
    bool breakglass = false;      ///< a declared-emergency rule for bg-pg (appdb) and bg-ssh (web01)
    std::vector<std::string> postgres_settings{};  ///< the backend's server settings
    std::optional<int> open_file_limit{};           ///< serve runs under prlimit --nofile=N:N
};

/// PostgreSQL + IdP + sshd + glassgate serve with a PostgreSQL target "appdb" and an SSH target "web01".
struct FaultStack : PgStack {
    SshdPeer sshd;
    std::optional<TmpfsMount> state_mount;
    std::uint16_t ssh_port = 0;
    std::string alice_token;
    int calls = 0;

    explicit FaultStack(const FaultOptions& o)
        : PgStack({.postgres = PostgresOptions{.settings = o.postgres_settings}, .dir_prefix = "gg-faults"}) {
        if (o.state_on_tmpfs) state_mount.emplace(dir / "state", "40m");
        if (o.open_file_limit) {
            const auto n = std::to_string(*o.open_file_limit);
            serve_prefix = {"prlimit", "--nofile=" + n + ":" + n, "--"};
        }
        ssh_port = free_port();
        const std::string ssh_target =
            "[[target]]\nname = \"web01\"\nprotocol = \"ssh\"\naddress = \"127.0.0.1:" + std::to_string(sshd.port()) +
            "\"\nhost_key = \"" + sshd.host_public_key() + "\"\nbackend_user = \"" + sshd.user() +
            "\"\nallow = [\"alice\", \"group:dba\"]\nauthorized_keys = \"" + sshd.authorized_keys().string() +
            "\"\nmax_session = \"8h\"\n";
        const std::string fallback =
            o.breakglass ? "[[fallback]]\nname = \"declared-ops\"\ntrigger = \"declared\"\naccounts = [\"bg-pg\", \"bg-ssh\"]\n"
                           "targets = [\"appdb\", \"web01\"]\nmax_session = \"5m\"\nrequire_reason = true\n"
                           "rotate_on_close = true\n"
                         : "";
        write_config({.listen_extra = "ssh = \"127.0.0.1:" + std::to_string(ssh_port) + "\"\n",
                      .tables = "[ssh]\nlogin_grace = \"30s\"\n" + appdb_table() + ssh_target + fallback});
        set_secret("appdb");
        auto set = gg({"secret", "set", "web01", "--from-file", sshd.client_key().string()});
        REQUIRE_MESSAGE(set.exit_code == 0, set.describe());
        write_file(dir / "askpass.sh",
                   "#!/bin/sh\n"
                   "# Plays the user at ssh's keyboard-interactive prompts (see ssh_test.cpp).\n"
                   "printf '%s\\n---\\n' \"$1\" >> \"$GG_ASKPASS_LOG\"\n"
                   "case \"$1\" in *passphrase*) echo \"$GG_PASSPHRASE\"; exit 0;; *Reason*) echo \"$GG_REASON\"; exit 0;; esac\n"
                   "url=$(printf '%s' \"$1\" | grep -o 'http[^ )]*' | head -n1)\n"
                   "if [ -n \"$url\" ] && [ -n \"$GG_APPROVE_AS\" ]; then\n"
                   "  node \"$GG_APPROVE_SCRIPT\" --verification-uri-complete \"$url\" --user \"$GG_APPROVE_AS\""
                   " >> \"$GG_ASKPASS_LOG.approve\" 2>&1\n"
                   "fi\n"
                   "echo\n",
                   0755);
        start();
        auto pub = run({"ssh-keygen", "-y", "-f", (dir / "state" / "ssh_host_ed25519_key").string()});
        REQUIRE_MESSAGE(pub.exit_code == 0, pub.describe());
        write_file(dir / "known_hosts", "[127.0.0.1]:" + std::to_string(ssh_port) + " " + ssh_key_without_comment(pub.out) + "\n");
        alice_token = idp.device_login_token("alice");
    }
    ~FaultStack() { serve.stop(); }  // before the tmpfs goes
    FaultStack(const FaultStack&) = delete;
    FaultStack& operator=(const FaultStack&) = delete;

    /// Starts serve (again) and waits for both listeners.
    void start() {
        start_serve();
        REQUIRE_MESSAGE(wait_until([&] { return can_connect("127.0.0.1", ssh_port); }, 20s), serve_log());
    }

    [[nodiscard]] RunResult gg(std::vector<std::string> args) const {
        args.insert(args.begin(), GG_BINARY);
        args.emplace_back("--config");
        args.push_back(config());
        return run(args, {.timeout = 30s});
    }

    [[nodiscard]] std::string conninfo(const std::string& user) const {
        return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " dbname=appdb sslmode=require";
    }
    [[nodiscard]] EnvChanges pg_env(const std::string& password, const std::string& reason = {}) const {
        EnvChanges env{.set = {{"PGPASSWORD", password}}};
        if (!reason.empty()) env.set.emplace_back("PGOPTIONS", "-c glassgate.reason=" + reason);
        return env;
    }
    /// psql through glassgate, to the end (verbose errors: the SQLSTATE is printed).
    [[nodiscard]] RunResult psql(const std::string& user, const std::string& password, const std::string& sql,
                                 const std::string& reason = {}) const {
        return run({"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", conninfo(user), "-c", sql},
                   {.env = pg_env(password, reason), .timeout = 60s});
    }
    /// psql through glassgate in the background, running `args` (-c ... / -f ...), output in `log`.
    [[nodiscard]] Process psql_background(const std::string& user, const std::string& password,
                                          std::vector<std::string> args, const std::string& log,
                                          const std::string& reason = {}) const {
        std::vector<std::string> argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
                                         conninfo(user)};
        for (auto& a : args) argv.push_back(std::move(a));
        return Process::start({.argv = argv, .env = pg_env(password, reason)}, dir / log);
    }
    /// True when the backend runs a statement containing `tag` (a client's earlier statements are answered).
    [[nodiscard]] bool backend_running(const std::string& tag) const {
        auto r = pg.psql("select count(*) from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() "
                         "and query like '%" + tag + "%'");
        return r.exit_code == 0 && r.out == "1\n";
    }

    /// ssh's environment: askpass approves the device code as `approve_as` (empty: nobody) and answers
    /// break-glass prompts with `passphrase` and `reason`; prompts go to the returned log.
    [[nodiscard]] std::pair<EnvChanges, std::filesystem::path> ssh_env(const std::string& approve_as,
                                                                       const std::string& passphrase = {},
                                                                       const std::string& reason = {}) {
        const auto log = dir / ("ask-" + std::to_string(++calls) + ".log");
        EnvChanges env{.set = {{"SSH_ASKPASS", (dir / "askpass.sh").string()},
                               {"SSH_ASKPASS_REQUIRE", "force"},
                               {"DISPLAY", ":0"},
                               {"GG_ASKPASS_LOG", log.string()},
                               {"GG_APPROVE_AS", approve_as},
                               {"GG_APPROVE_SCRIPT", (IdpPeer::scripts_dir() / "approve.mjs").string()},
                               {"GG_PASSPHRASE", passphrase},
                               {"GG_REASON", reason}}};
        return {env, log};
    }
    [[nodiscard]] std::vector<std::string> ssh_argv(const std::string& login, const std::string& command) const {
        return {"ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=" + (dir / "known_hosts").string(), "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-o", "NumberOfPasswordPrompts=1",
                "-o", "PubkeyAuthentication=no", "-p", std::to_string(ssh_port), login + "@127.0.0.1", "--", command};
    }
    struct SshResult {
        RunResult run;
        std::string prompts;
    };
    SshResult ssh(const std::string& login, const std::string& command, const std::string& approve_as,
                  const std::string& passphrase = {}, const std::string& reason = {}) {
        auto [env, log] = ssh_env(approve_as, passphrase, reason);
        SshResult r{run(ssh_argv(login, command), {.env = env, .timeout = 60s}), {}};
        std::error_code ec;
        if (std::filesystem::exists(log, ec)) r.prompts = read_file(log);
        return r;
    }
    Process ssh_background(const std::string& login, const std::string& command, const std::string& log,
                           const std::string& approve_as, const std::string& passphrase = {},
                           const std::string& reason = {}) {
        auto [env, ask] = ssh_env(approve_as, passphrase, reason);
        return Process::start({.argv = ssh_argv(login, command), .env = env}, dir / log);
    }

    [[nodiscard]] boost::json::array sessions_json() const {
        auto r = gg({"sessions", "list", "--json"});
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        return boost::json::parse(r.out).as_array();
    }
    /// The id of the session of `protocol` and `auth` (one each in these tests).
    [[nodiscard]] std::string session_of(const std::string& protocol, const std::string& auth) const {
        for (const auto& v : sessions_json()) {
            const auto& o = v.as_object();
            if (o.at("protocol").as_string() == protocol && o.at("auth").as_string() == auth) {
                return std::string(o.at("id").as_string());
            }
        }
        return {};
    }
    [[nodiscard]] boost::json::object session_json(const std::string& id) const {
        auto r = gg({"sessions", "show", id, "--json"});
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        return boost::json::parse(r.out).as_object();
    }
    [[nodiscard]] std::string file_text(const std::string& log) const {
        std::error_code ec;
        return std::filesystem::exists(dir / log, ec) ? read_file(dir / log) : std::string();
    }
    [[nodiscard]] std::string account_state(const std::string& account) const {
        auto l = gg({"breakglass", "list"}).out;
        auto a = l.find(account + "  ");
        if (a == std::string::npos) return "";
        a = l.find_first_not_of(' ', a + account.size());
        return l.substr(a, l.find(' ', a) - a);
    }
    [[nodiscard]] std::string stage(const std::string& account) const {
        auto r = gg({"breakglass", "stage", account});
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        return r.out.substr(0, r.out.find('\n'));
    }
};

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

/// What glassgate answers a new PostgreSQL connection (direct TLS, startup packet for alice on appdb)
/// before it asks for a password: the fields of its ErrorResponse joined with '|' ("SFATAL|C53100|M..."),
/// "<asks for a password>" or what went wrong. psql does not show the SQLSTATE of a refused connection.
std::string startup_answer(std::uint16_t port) {
    const int fd = connect_loopback(port);
    if (fd < 0) return "<connect failed>";
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    static const unsigned char proto[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
    SSL_set_alpn_protos(ssl, proto, sizeof proto);
    std::string out = "<closed without an answer>";
    if (SSL_connect(ssl) == 1) {
        const std::string params = std::string("user\0alice\0database\0appdb\0", 26) + '\0';
        const std::string startup = be32(static_cast<std::uint32_t>(8 + params.size())) + be32(196608) + params;
        (void)SSL_write(ssl, startup.data(), static_cast<int>(startup.size()));
        std::string in;
        char buf[4096];
        for (int n; (n = SSL_read(ssl, buf, sizeof buf)) > 0;) {
            in.append(buf, static_cast<std::size_t>(n));
            if (in.size() < 5) continue;
            const auto len = (std::uint32_t(std::uint8_t(in[1])) << 24) | (std::uint32_t(std::uint8_t(in[2])) << 16) |
                             (std::uint32_t(std::uint8_t(in[3])) << 8) | std::uint32_t(std::uint8_t(in[4]));
            if (in.size() < 1 + len) continue;
            if (in[0] == 'R') {
                out = "<asks for a password>";
            } else {
                out.clear();
                for (char c : in.substr(5, len - 4)) out += c == '\0' ? '|' : c;
            }
            break;
        }
    } else {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        out = std::string("<tls: ") + err + ">";
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
    return out;
}

std::int64_t unix_us(SystemClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

/// The recording of `id` is intact (unsealed after a crash), holds `marker` in its authenticated part,
/// and every event older than 200 ms at `killed_at` is authenticated: the last checkpoint is at most the
/// writer's flush interval behind the kill.
void check_recording_through(const FaultStack& s, const std::string& id, const std::string& marker,
                             std::optional<SystemClock::time_point> killed_at) {
    INFO("session " << id);
    const auto row = s.session_json(id);
    gg::proxy::StateDir sd(s.dir / "state");
    const auto bytes = read_file(sd.recordings_dir() / std::string(row.at("recording").as_string()));
    const auto rec = gg::session::read_recording(gg::as_bytes(std::string_view(bytes)), sd.recording_key());
    INFO(rec.report.summary());
    REQUIRE(rec.report.intact);
    CHECK_FALSE(rec.report.sealed);
    CHECK(rec.report.checkpoints > 0);
    std::optional<std::size_t> at;
    for (std::size_t i = 0; i < rec.events.size() && !at; ++i) {
        const auto& p = rec.events[i].payload;
        if (std::string_view(reinterpret_cast<const char*>(p.data()), p.size()).find(marker) != std::string_view::npos) at = i;
    }
    REQUIRE_MESSAGE(at.has_value(), "marker " << marker << " not in the recording");
    CHECK(*at < rec.report.authenticated_events);
    if (!killed_at) return;
    const auto kill_us = unix_us(*killed_at);
    for (std::size_t i = 0; i < rec.events.size(); ++i) {
        const auto wall = rec.header.started_unix_us + static_cast<std::int64_t>(rec.events[i].t_us);
        if (kill_us - wall > 200'000) CHECK_MESSAGE(i < rec.report.authenticated_events, "event " << i << " at " << wall);
    }
}

/// The session.end audit line of `id`, or "".
std::string session_end_line(const FaultStack& s, const std::string& id) {
    const auto audit = s.gg({"audit", "--session", id, "--event", "session.end"}).out;
    return audit;
}

}  // namespace

TEST_SUITE_BEGIN("faults");

TEST_CASE("kill -9 with SSO and break-glass sessions open on PostgreSQL and SSH: interrupted, nothing lost") {
    FaultStack s({.breakglass = true});
    auto d = s.gg({"emergency", "declare", "--reason", "CHG-7 fault drill", "--for", "1h"});
    REQUIRE_MESSAGE(d.exit_code == 0, d.describe());
    const auto pg_pass = s.stage("bg-pg");
    const auto ssh_pass = s.stage("bg-ssh");

    // Four sessions, each answering a marker before it goes quiet.
    auto sso_pg = s.psql_background("alice", s.alice_token, {"-c", "select 'marker-sso-pg'", "-c", "select 'gg-sleep-sso', pg_sleep(300)"},
                                    "sso-pg.log");
    auto bg_pg = s.psql_background("bg-pg", pg_pass, {"-c", "select 'marker-bg-pg'", "-c", "select 'gg-sleep-bg', pg_sleep(300)"},
                                   "bg-pg.log", "INC-77");
    auto sso_ssh = s.ssh_background("web01", "echo marker-sso-ssh; sleep 300", "sso-ssh.log", "alice");
    auto bg_ssh = s.ssh_background("bg-ssh:web01", "echo marker-bg-ssh; sleep 300", "bg-ssh.log", "", ssh_pass, "INC-78");
    // A statement runs on the backend only after psql had the answer to the one before.
    REQUIRE_MESSAGE(wait_until([&] { return s.backend_running("gg-sleep-sso"); }, 60s, 100ms), s.file_text("sso-pg.log") << s.serve_log());
    REQUIRE_MESSAGE(wait_until([&] { return s.backend_running("gg-sleep-bg"); }, 60s, 100ms), s.file_text("bg-pg.log") << s.serve_log());
    REQUIRE_MESSAGE(wait_until([&] { return s.file_text("sso-ssh.log").find("marker-sso-ssh") != std::string::npos; }, 60s, 50ms),
                    s.file_text("sso-ssh.log") << s.serve_log());
    REQUIRE_MESSAGE(wait_until([&] { return s.file_text("bg-ssh.log").find("marker-bg-ssh") != std::string::npos; }, 60s, 50ms),
                    s.file_text("bg-ssh.log") << s.serve_log());
    CHECK(s.account_state("bg-pg") == "in-use");
    CHECK(s.account_state("bg-ssh") == "in-use");

    std::this_thread::sleep_for(300ms);  // more than the writer's flush interval (200 ms)
    const auto killed_at = SystemClock::now();
    s.serve.signal_group(SIGKILL);
    REQUIRE(s.serve.wait_for(10s).has_value());
    for (auto* c : {&sso_pg, &bg_pg, &sso_ssh, &bg_ssh}) CHECK(c->wait_for(30s).has_value());
    CHECK(s.account_state("bg-pg") == "in-use");  // consumed: never usable again
    CHECK(s.account_state("bg-ssh") == "in-use");

    s.start();
    struct Expect {
        std::string protocol, auth, marker;
    };
    std::vector<std::string> ids;
    for (const auto& e : {Expect{"postgres", "sso", "marker-sso-pg"}, Expect{"postgres", "breakglass", "marker-bg-pg"},
                          Expect{"ssh", "sso", "marker-sso-ssh"}, Expect{"ssh", "breakglass", "marker-bg-ssh"}}) {
        const auto id = s.session_of(e.protocol, e.auth);
        INFO(e.protocol << " " << e.auth << " " << id);
        REQUIRE(!id.empty());
        ids.push_back(id);
        const auto row = s.session_json(id);
        CHECK(row.at("state").as_string() == "closed");
        CHECK(row.at("close_reason").as_string() == "proxy_restarted");
        CHECK(std::string(row.at("close_detail").as_string()).find("the proxy stopped while this session was active") !=
              std::string::npos);
        const auto list = s.gg({"sessions", "list"}).out;
        const auto line = list.substr(list.find(id), list.find('\n', list.find(id)) - list.find(id));
        CHECK_MESSAGE(line.find("  interrupted  ") != std::string::npos, line);
        CHECK_MESSAGE(line.find("proxy_restarted") != std::string::npos, line);
        const auto show = s.gg({"sessions", "show", id}).out;
        CHECK_MESSAGE(show.find("interrupted") != std::string::npos, show);
        auto verify = s.gg({"verify", id});
        CHECK_MESSAGE(verify.exit_code == 0, verify.describe());
        CHECK_MESSAGE(verify.out.find("authenticated through checkpoint") != std::string::npos, verify.out);
        CHECK_MESSAGE(verify.out.find("interrupted") != std::string::npos, verify.out);
        check_recording_through(s, id, e.marker, killed_at);
        const auto end = session_end_line(s, id);
        CHECK_MESSAGE(end.find("\"outcome\":\"interrupted\"") != std::string::npos, end);
        CHECK_MESSAGE(end.find("proxy stopped") != std::string::npos, end);
    }
    auto audit = s.gg({"verify", "--audit"});
    CHECK_MESSAGE(audit.exit_code == 0, audit.describe());
    CHECK(audit.out.find("chain intact") != std::string::npos);

    // Break-glass: the credentials stay consumed and are rotated after the restart.
    CHECK(wait_until([&] { return s.account_state("bg-pg") == "used" && s.account_state("bg-ssh") == "used"; }, 20s, 200ms));
    REQUIRE_MESSAGE(wait_until([&] {
        const auto st = s.gg({"emergency", "status", "--json"});
        const auto done = s.gg({"audit", "--event", "rotation.done"}).out;
        return st.out.find("\"rotation_pending\":[]") != std::string::npos && done.find(ids[1]) != std::string::npos &&
               done.find(ids[3]) != std::string::npos;
    }, 60s, 250ms), s.gg({"emergency", "status"}).out << s.serve_log());
    CHECK(s.pg.psql_as("app_owner", s.app_password, "app", "select 1").exit_code != 0);  // the old password is gone
    auto old_key = run(s.sshd.ssh_argv("true"));
    CHECK_MESSAGE(old_key.exit_code == 255, old_key.describe());  // so is the old SSH key
    auto again_pg = s.psql("bg-pg", pg_pass, "select 1", "INC-77");
    CHECK_MESSAGE(again_pg.err.find("already used") != std::string::npos, again_pg.describe());
    auto again_ssh = s.ssh("bg-ssh:web01", "echo should-not-run", "", ssh_pass, "INC-78");
    CHECK(again_ssh.run.exit_code == 255);
    CHECK(again_ssh.run.out.empty());
    // SSO still works, with the rotated backend credentials.
    auto sso = s.psql("alice", s.alice_token, "select 'after-restart'");
    CHECK_MESSAGE(sso.out == "after-restart\n", sso.describe());
    auto sso_ssh_again = s.ssh("web01", "echo after-restart", "alice");
    CHECK_MESSAGE(sso_ssh_again.run.out == "after-restart\n", sso_ssh_again.run.describe());
}

TEST_CASE("SSH backend down at rotation time, serve restarted while it is pending: the key is rotated once sshd is back") {
    FaultStack s({.breakglass = true});
    auto d = s.gg({"emergency", "declare", "--reason", "CHG-8 rotation drill", "--for", "1h"});
    REQUIRE_MESSAGE(d.exit_code == 0, d.describe());
    const auto pass = s.stage("bg-ssh");
    auto bg = s.ssh_background("bg-ssh:web01", "echo marker-down; sleep 300", "bg-down.log", "", pass, "INC-79");
    REQUIRE_MESSAGE(wait_until([&] { return s.file_text("bg-down.log").find("marker-down") != std::string::npos; }, 60s, 50ms),
                    s.file_text("bg-down.log") << s.serve_log());
    s.sshd.stop();  // the backend goes away: the session ends, its key rotation finds no sshd
    CHECK(bg.wait_for(60s).has_value());
    const auto id = s.session_of("ssh", "breakglass");
    REQUIRE(!id.empty());
    auto pending = [&]() -> boost::json::object {
        const auto st = s.gg({"emergency", "status", "--json"});
        boost::system::error_code ec;
        auto v = boost::json::parse(st.out, ec);
        if (ec || !v.is_object()) return {};
        auto* p = v.as_object().if_contains("rotation_pending");
        if (!p || !p->is_array() || p->as_array().empty()) return {};
        return p->as_array()[0].as_object();
    };
    REQUIRE_MESSAGE(wait_until([&] {
        auto j = pending();
        return j.contains("attempts") && j.at("attempts").as_int64() >= 1;
    }, 60s, 250ms), s.serve_log());
    CHECK(!pending().at("last_error").as_string().empty());
    auto list = s.gg({"breakglass", "list"});
    CHECK_MESSAGE(list.out.find("rotation of web01 pending since") != std::string::npos, list.describe());

    s.serve.stop();  // restart while the rotation is pending and sshd is still down
    s.start();
    CHECK(pending().contains("attempts"));
    auto human = s.gg({"status"});
    CHECK_MESSAGE(human.out.find("web01 rotation-pending since") != std::string::npos, human.describe());

    s.sshd.start_again();
    REQUIRE_MESSAGE(wait_until([&] {
        const auto st = s.gg({"emergency", "status", "--json"});
        return st.out.find("\"rotation_pending\":[]") != std::string::npos &&
               s.gg({"audit", "--event", "rotation.done"}).out.find(id) != std::string::npos;
    }, 60s, 250ms), s.gg({"emergency", "status"}).out << s.serve_log());
    auto old_key = run(s.sshd.ssh_argv("true"));
    CHECK_MESSAGE(old_key.exit_code == 255, old_key.describe());  // the key the session used is refused
    auto sso = s.ssh("web01", "echo after-rotation", "alice");  // glassgate uses the new one
    CHECK_MESSAGE(sso.run.out == "after-rotation\n", sso.run.describe() << s.serve_log());
    CHECK(s.account_state("bg-ssh") == "used");
}

TEST_CASE("state directory full: sessions ended with a message, new ones refused, audit kept and written when space returns") {
    FaultStack s({.state_on_tmpfs = true});
    // Two sessions with steady traffic.
    std::string ticks;
    for (int i = 0; i < 1500; ++i) ticks += "select 'gg-tick', pg_sleep(0.2);\n";
    write_file(s.dir / "ticks.sql", ticks);
    auto pg_client = s.psql_background("alice", s.alice_token, {"-f", (s.dir / "ticks.sql").string()}, "full-pg.log");
    auto ssh_client = s.ssh_background("web01", "while :; do echo gg-tick; sleep 0.2; done", "full-ssh.log", "alice");
    REQUIRE_MESSAGE(wait_until([&] { return s.backend_running("gg-tick"); }, 60s, 100ms), s.file_text("full-pg.log") << s.serve_log());
    REQUIRE_MESSAGE(wait_until([&] { return s.file_text("full-ssh.log").find("gg-tick") != std::string::npos; }, 60s, 100ms),
                    s.file_text("full-ssh.log") << s.serve_log());
    const auto pg_id = s.session_of("postgres", "sso");
    const auto ssh_id = s.session_of("ssh", "sso");
    REQUIRE(!pg_id.empty());
    REQUIRE(!ssh_id.empty());
    std::this_thread::sleep_for(500ms);  // some ticks recorded and checkpointed

    // Fill the state directory to the last block.
    const auto filler = s.dir / "state" / "filler";
    auto fill = run({"dd", "if=/dev/zero", "of=" + filler.string(), "bs=1M"}, {.timeout = 60s});
    CHECK_MESSAGE(fill.err.find("No space left on device") != std::string::npos, fill.describe());
    (void)run({"dd", "if=/dev/zero", "of=" + filler.string() + "2", "bs=4096"}, {.timeout = 60s});

    // Both running sessions end with a message saying why.
    REQUIRE_MESSAGE(pg_client.wait_for(60s).has_value(), s.file_text("full-pg.log") << s.serve_log());
    const auto pg_out = s.file_text("full-pg.log");
    CHECK_MESSAGE(pg_out.find("FATAL:  53100: glassgate: recording storage is full; this session is ended") != std::string::npos,
                  pg_out);
    REQUIRE_MESSAGE(ssh_client.wait_for(60s).has_value(), s.file_text("full-ssh.log") << s.serve_log());
    const auto ssh_out = s.file_text("full-ssh.log");
    CHECK_MESSAGE(ssh_out.find("glassgate: recording storage is full; this session is ended") != std::string::npos, ssh_out);

    // New sessions are refused, saying why, without consuming anything.
    const auto answer = startup_answer(s.port);
    CHECK_MESSAGE(answer.find("|C53100|") != std::string::npos, answer);
    CHECK_MESSAGE(answer.find("|Mglassgate: recording storage is full; new sessions are refused until space is freed|") !=
                      std::string::npos,
                  answer);
    auto new_pg = s.psql("alice", s.alice_token, "select 'should-not-run'");
    CHECK(new_pg.exit_code != 0);
    CHECK_MESSAGE(new_pg.err.find("recording storage is full; new sessions are refused") != std::string::npos, new_pg.describe());
    auto new_ssh = s.ssh("web01", "echo should-not-run", "alice");
    CHECK(new_ssh.run.exit_code == 255);
    CHECK(new_ssh.run.out.empty());
    CHECK_MESSAGE(new_ssh.prompts.find("recording storage is full; new sessions are refused") != std::string::npos,
                  new_ssh.prompts << new_ssh.run.describe());

    // The audit events and index rows that could not be written wait in memory: the metrics say so.
    CHECK_MESSAGE(wait_until([&] { return s.metric("glassgate_audit_backlog") > 0; }, 30s, 200ms),
                  http_get("127.0.0.1", s.admin_port, "/metrics").value_or(HttpResponse{}).body << s.serve_log());
    CHECK(s.metric("glassgate_store_write_failures_total") > 0);
    CHECK(s.metric("glassgate_sessions_refused_storage_total{protocol=\"postgres\"}") >= 1);
    CHECK(s.metric("glassgate_sessions_refused_storage_total{protocol=\"ssh\"}") >= 1);
    auto status = s.gg({"status", "--json"});
    CHECK_MESSAGE(status.out.find("\"store_backlog\":{\"queued\":") != std::string::npos, status.describe());
    CHECK_MESSAGE(status.out.find("\"store_backlog\":{\"queued\":0") == std::string::npos, status.describe());

    // Space returns: glassgate serves again without a restart, and writes what waited, in order.
    std::filesystem::remove(filler);
    std::filesystem::remove(filler.string() + "2");
    RunResult again;
    CHECK_MESSAGE(wait_until([&] {
        again = s.psql("alice", s.alice_token, "select 'served-again'");
        return again.exit_code == 0;
    }, 60s, 1s), again.describe() << s.serve_log());
    CHECK(again.out == "served-again\n");
    CHECK(s.metric("glassgate_audit_backlog") == 0);
    auto ssh_again = s.ssh("web01", "echo served-again", "alice");
    CHECK_MESSAGE(ssh_again.run.out == "served-again\n", ssh_again.run.describe());

    auto audit = s.gg({"verify", "--audit"});
    CHECK_MESSAGE(audit.exit_code == 0, audit.describe());
    CHECK(audit.out.find("chain intact") != std::string::npos);
    for (const auto& id : {pg_id, ssh_id}) {
        INFO("session " << id);
        const auto end = session_end_line(s, id);
        CHECK_MESSAGE(end.find("\"event\":\"session.end\"") != std::string::npos, end);
        CHECK_MESSAGE(end.find("recording storage is full") != std::string::npos, end);
        const auto row = s.session_json(id);
        CHECK(row.at("state").as_string() == "closed");
        CHECK(row.at("close_reason").as_string() == "recording_failed");
        CHECK_MESSAGE(std::string(row.at("close_detail").as_string()).find("recording storage is full") != std::string::npos,
                      boost::json::serialize(row));
        auto verify = s.gg({"verify", id});
        CHECK_MESSAGE(verify.exit_code == 0, verify.describe());
        CHECK_MESSAGE(verify.out.find("authenticated through checkpoint") != std::string::npos, verify.out);
        check_recording_through(s, id, "gg-tick", std::nullopt);
    }
    // The audit keeps the order in which things happened: each session's start before its end.
    const auto all = s.gg({"audit"}).out;
    for (const auto& id : {pg_id, ssh_id}) {
        const auto start = all.find("\"event\":\"session.start\",\"session\":\"" + id);
        const auto end = all.find("\"event\":\"session.end\",\"session\":\"" + id);
        CHECK(start != std::string::npos);
        CHECK(end != std::string::npos);
        CHECK(start < end);
    }
}

TEST_CASE("open-file limit 1024: 900 sessions at once; those past capacity are refused naming the limit, never as a backend fault") {
    FaultStack s({.postgres_settings = {"max_connections=500"}, .open_file_limit = 1024});
    const auto log = s.serve_log();
    const auto at = log.find("session capacity: about ");
    REQUIRE_MESSAGE(at != std::string::npos, log);
    const int capacity = std::stoi(log.substr(at + 24));
    MESSAGE("serve reports a capacity of " << capacity << " sessions");
    CHECK(capacity > 250);
    CHECK(capacity < 340);
    CHECK(log.find("open-file limit 1024") != std::string::npos);

    // 900 libpq connections held open at once (one test process, so the clients' own limit is not in play).
    std::vector<PGconn*> open;
    std::map<std::string, int> refusals;
    const std::string conninfo = s.conninfo("alice") + " password=" + s.alice_token + " connect_timeout=20";
    for (int i = 0; i < 900; ++i) {
        PGconn* c = PQconnectdb(conninfo.c_str());
        if (PQstatus(c) == CONNECTION_OK) {
            open.push_back(c);
            continue;
        }
        std::string e = PQerrorMessage(c);
        if (auto f = e.find("FATAL:"); f != std::string::npos) e = e.substr(f);
        if (auto nl = e.find('\n'); nl != std::string::npos) e.resize(nl);
        ++refusals[e];
        PQfinish(c);
    }
    std::string summary;
    for (const auto& [text, n] : refusals) summary += std::to_string(n) + " x " + text + "\n";
    MESSAGE(open.size() << " sessions open at once; refused:\n" << summary);
    CHECK(open.size() >= static_cast<std::size_t>(capacity) - 20);
    CHECK(open.size() + 0 < 900);
    int clear = 0;
    for (const auto& [text, n] : refusals) {
        // Never reported as the backend being unreachable or as a recording fault: the limit is named.
        CHECK_MESSAGE(text.find("too many sessions at once for its open-file limit (1024") != std::string::npos, text);
        clear += n;
    }
    CHECK(clear + static_cast<int>(open.size()) == 900);
    // Every open session works.
    int answered = 0;
    for (auto* c : open) {
        PGresult* r = PQexec(c, "select 1");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) ++answered;
        PQclear(r);
    }
    CHECK(answered == static_cast<int>(open.size()));
    // SSH is refused with the same clarity while PostgreSQL holds the descriptors.
    auto refused = s.ssh("alice:web01", "echo in", "alice");
    CHECK(refused.run.exit_code != 0);
    CHECK_MESSAGE(refused.prompts.find("too many sessions at once for its open-file limit (1024") != std::string::npos,
                  refused.prompts << refused.run.describe());
    CHECK(s.serve_log().find("raise LimitNOFILE") != std::string::npos);
    CHECK(s.metric("glassgate_sessions_refused_capacity_total{protocol=\"postgres\"}") >= 1);

    for (auto* c : open) PQfinish(c);
    // Room again: new sessions are admitted without a restart, every session is closed in the index.
    REQUIRE_MESSAGE(wait_until([&] { return s.psql("alice", s.alice_token, "select 'again'").out == "again\n"; }, 60s, 500ms),
                    s.serve_log());
    REQUIRE(wait_until([&] {
        for (const auto& v : s.sessions_json()) {
            if (v.as_object().at("state").as_string() != "closed") return false;
        }
        return true;
    }, 120s, 500ms));
    CHECK(s.sessions_json().size() >= open.size());
}

TEST_CASE("soak: 150 PostgreSQL clients and 50 SSH sessions at once, then 3000 short sessions: no error, memory and descriptors back") {
    FaultStack s({.postgres_settings = {"max_connections=300"}});
    const auto pid = s.serve.pid();
    auto fds = [&] {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
        return n;
    };
    const auto env = s.pg_env(s.alice_token);
    auto init = run({"pgbench", "-i", "-s", "1", "-q", s.conninfo("alice")}, {.env = env, .timeout = 120s});
    REQUIRE_MESSAGE(init.exit_code == 0, init.describe());
    // Warm: one SSH and one PostgreSQL session, so the baseline has the threads and caches a session needs.
    REQUIRE(s.ssh("alice:web01", "true", "alice").run.exit_code == 0);
    const long rss_before = proc_status_kb(pid, "VmRSS");
    const std::size_t fds_before = fds();

    std::vector<Process> ssh;
    for (int i = 0; i < 50; ++i) {
        ssh.push_back(s.ssh_background("alice:web01", "sleep 25; echo soak-" + std::to_string(i), "ssh-" + std::to_string(i) + ".log",
                                       "alice"));
    }
    long rss_peak = 0;
    std::size_t fds_peak = 0;
    std::atomic<bool> sampling{true};
    std::thread sampler([&] {
        while (sampling) {
            rss_peak = std::max(rss_peak, proc_status_kb(pid, "VmRSS"));
            fds_peak = std::max(fds_peak, fds());
            std::this_thread::sleep_for(200ms);
        }
    });
    auto many = run({"pgbench", "-n", "-S", "-c", "150", "-j", "2", "-T", "20", s.conninfo("alice")},
                    {.env = env, .timeout = 180s});
    int ssh_ok = 0;
    for (std::size_t i = 0; i < ssh.size(); ++i) {
        const auto code = ssh[i].wait_for(120s);
        const auto out = read_file(s.dir / ("ssh-" + std::to_string(i) + ".log"));
        if (code && *code == 0 && out.find("soak-" + std::to_string(i)) != std::string::npos) ++ssh_ok;
    }
    auto shorts = run({"pgbench", "-n", "-S", "-C", "-c", "4", "-j", "2", "-t", "750", s.conninfo("alice")},
                      {.env = env, .timeout = 300s});
    sampling = false;
    sampler.join();
    CHECK_MESSAGE(many.exit_code == 0, many.describe());
    CHECK(many.out.find("number of clients: 150") != std::string::npos);
    CHECK(many.out.find("number of failed transactions: 0") != std::string::npos);
    CHECK(ssh_ok == 50);
    CHECK_MESSAGE(shorts.exit_code == 0, shorts.describe());
    CHECK(shorts.out.find("number of transactions actually processed: 3000/3000") != std::string::npos);

    // Every session is closed in the index; memory and descriptors come back near where they started.
    REQUIRE_MESSAGE(wait_until([&] {
        for (const auto& v : s.sessions_json()) {
            if (v.as_object().at("state").as_string() != "closed") return false;
        }
        return true;
    }, 120s, 500ms), s.serve_log());
    const auto sessions = s.sessions_json();
    std::size_t errors = 0;
    for (const auto& v : sessions) {
        const auto reason = std::string(v.as_object().at("close_reason").as_string());
        if (reason != "client_disconnect" && reason != "backend_disconnect") ++errors;
    }
    CHECK(sessions.size() >= 150 + 50 + 3000);
    CHECK_MESSAGE(errors == 0, boost::json::serialize(sessions.back()));
    CHECK_MESSAGE(wait_until([&] { return fds() <= fds_before + 8; }, 60s, 500ms),
                  "descriptors " << fds_before << " before, " << fds() << " now (sshd port " << s.sshd.port()
                                 << ", PostgreSQL port " << s.pg.port() << ", IdP " << s.idp.issuer() << "): "
                                 << run({"sh", "-c", "ss -tanp | grep pid=" + std::to_string(pid) + ","}).out);
    const long rss_after = proc_status_kb(pid, "VmRSS");
    MESSAGE("serve: RSS " << rss_before / 1024 << " MiB before, peak " << rss_peak / 1024 << " MiB, after "
                          << rss_after / 1024 << " MiB; descriptors " << fds_before << " before, peak " << fds_peak
                          << ", after " << fds() << "; " << sessions.size() << " sessions");
    CHECK(rss_after - rss_before < 64 * 1024);
    auto audit = s.gg({"verify", "--all", "--audit"});
    CHECK_MESSAGE(audit.exit_code == 0, audit.describe());
}

TEST_SUITE_END();
