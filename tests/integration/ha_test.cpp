// Several `glassgate serve` instances on one shared PostgreSQL store (docs/ha.md): three instances
// with their own listeners and state directories, a PostgreSQL 15 store, a PostgreSQL 15 backend, the
// IdP, and real psql clients. What one instance does, the others see; what one instance leaves behind
// when it is killed, another finishes.

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness/files.hpp"
#include "harness/glassgate_cli.hpp"
#include "harness/idp_peer.hpp"
#include "harness/net.hpp"
#include "harness/pg_wire.hpp"
#include "harness/postgres_peer.hpp"
#include "harness/process.hpp"
#include "harness/webhook_receiver.hpp"

using namespace gg::harness;
using namespace std::chrono_literals;

namespace {

struct Instance {
    std::string name;
    std::filesystem::path dir;
    std::uint16_t port = 0;
    std::uint16_t admin_port = 0;
    Process serve;
    [[nodiscard]] std::string config() const { return (dir / "glassgate.toml").string(); }
    [[nodiscard]] std::string log() const { return read_file(dir / "serve.log"); }
};

/// The rules of the sso-outage fallback unless a test says otherwise.
constexpr const char* default_rule_extra = "max_session = \"1m\"\nrotate_on_close = false\n";

/// The backend, the store, the IdP, a webhook receiver and instances a, b, c (plus "cli": a
/// configuration with the store and the master key only, as on an auditor's machine). With a standby,
/// the store is a primary with a streaming standby, and every configuration names both servers
/// (target_session_attrs=read-write: libpq uses whichever is writable).
class Cluster {
 public:
    PostgresPeer backend;
    PostgresPeer store;
    std::unique_ptr<PostgresPeer> standby;  ///< a streaming standby of `store`, when asked for
    IdpPeer idp;
    WebhookReceiver hooks;
    TempDir dir{"gg-ha"};
    std::string app_password = random_hex(24);
    std::array<Instance, 3> in;
    Instance cli;

    explicit Cluster(const std::string& rule_extra = default_rule_extra, bool with_standby = false) {
        backend.create_role("app_owner", app_password);
        backend.create_database("app", "app_owner");
        const std::string store_password = random_hex(24);
        store.create_role("glassgate", store_password);
        store.create_database("glassgate", "glassgate");
        std::string pgpass = "127.0.0.1:" + std::to_string(store.port()) + ":glassgate:glassgate:" + store_password + "\n";
        if (with_standby) {
            standby = PostgresPeer::standby_of(store);
            pgpass += "127.0.0.1:" + std::to_string(standby->port()) + ":glassgate:glassgate:" + store_password + "\n";
        }
        write_file(dir / "pgpass", pgpass, 0600);
        const auto cert = make_self_signed_cert(dir.path(), "proxy");
        const std::string names[] = {"a", "b", "c"};
        for (std::size_t i = 0; i < in.size(); ++i) {
            in[i].name = names[i];
            in[i].dir = dir / names[i];
            std::filesystem::create_directories(in[i].dir);
            in[i].port = free_port();
            in[i].admin_port = free_port();
            write_config(in[i], cert, rule_extra, true);
        }
        cli.name = "cli";
        cli.dir = dir / "cli";
        std::filesystem::create_directories(cli.dir);
        write_config(cli, cert, rule_extra, false);
        // The first use creates the deployment's master key; every instance shares the file.
        auto keys = gg(in[0], {"keys", "show"});
        REQUIRE_MESSAGE(keys.exit_code == 0, keys.describe());
        auto set = run({GG_BINARY, "secret", "set", "appdb", "--config", in[0].config()},
                       {.stdin_data = app_password + "\n", .timeout = 30s});
        REQUIRE_MESSAGE(set.exit_code == 0, set.describe());
        for (auto& i : in) start(i);
    }
    ~Cluster() {
        for (auto& i : in) i.serve.stop();  // before the receiver goes
    }
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    void start(Instance& i) {
        i.serve = Process::start({.argv = {GG_BINARY, "serve", "--config", i.config()},
},
                                 i.dir / "serve.log");
        REQUIRE_MESSAGE(wait_until([&] { return can_connect("127.0.0.1", i.port); }, 30s), i.log());
    }

    [[nodiscard]] RunResult gg(const Instance& i, std::vector<std::string> args, const std::string& stdin_data = {}) const {
        args.insert(args.begin(), GG_BINARY);
        args.emplace_back("--config");
        args.push_back(i.config());
        return run(args, {.stdin_data = stdin_data, .timeout = 60s});
    }
    [[nodiscard]] boost::json::object status(const Instance& i) const {
        auto r = gg(i, {"status", "--json"});
        boost::system::error_code ec;
        auto v = boost::json::parse(r.out, ec);
        return ec || !v.is_object() ? boost::json::object{} : v.as_object();
    }
    [[nodiscard]] RunResult psql(const Instance& i, const std::vector<std::string>& sql, const std::string& password,
                                 const std::string& user = "alice", const std::string& reason = {},
                                 std::chrono::milliseconds timeout = 60s) const {
        std::vector<std::string> argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                         "host=127.0.0.1 port=" + std::to_string(i.port) + " user=" + user +
                                             " dbname=appdb sslmode=require"};
        for (const auto& s : sql) {
            argv.emplace_back("-c");
            argv.push_back(s);
        }
        EnvChanges env{.set = {{"PGPASSWORD", password}}};
        if (!reason.empty()) env.set.emplace_back("PGOPTIONS", "-c glassgate.reason=" + reason);
        return run(argv, {.env = env, .timeout = timeout});
    }
    [[nodiscard]] std::string stage(const std::string& account) const {
        auto r = gg(in[0], {"breakglass", "stage", account});
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        REQUIRE(r.out.size() == 40);
        return r.out.substr(0, 39);
    }
    /// `sessions list` of one instance, as lines.
    [[nodiscard]] std::vector<std::string> session_lines(const Instance& i) const {
        std::vector<std::string> out;
        std::istringstream s(gg(i, {"sessions", "list"}).out);
        for (std::string l; std::getline(s, l);) {
            if (!l.empty()) out.push_back(l);
        }
        return out;
    }
    [[nodiscard]] std::string session_line(const Instance& i, const std::string& id) const {
        for (const auto& l : session_lines(i)) {
            if (l.starts_with(id)) return l;
        }
        return {};
    }
    [[nodiscard]] std::string logs() const {
        std::string out;
        for (const auto& i : in) out += "---- " + i.name + "\n" + tail_file(i.dir / "serve.log", 60);
        return out;
    }

 private:
    /// The store's libpq connection string: the primary, or the primary and its standby (the writable one).
    [[nodiscard]] std::string store_conninfo() const {
        const std::string tail = " dbname=glassgate user=glassgate sslmode=require passfile=" + (dir / "pgpass").string();
        if (!standby) return "host=127.0.0.1 port=" + std::to_string(store.port()) + tail;
        return "host=127.0.0.1,127.0.0.1 port=" + std::to_string(store.port()) + "," + std::to_string(standby->port()) +
               tail + " target_session_attrs=read-write";
    }
    void write_config(const Instance& i, const CertFiles& cert, const std::string& rule_extra, bool listeners) const {
        std::ofstream f(i.config());
        f << "[server]\nstate_dir = \"" << (i.dir / "state").string() << "\"\nadmin_socket = \"" << (i.dir / "state/admin.sock").string()
          << "\"\ninstance = \"" << i.name << "\"\ninstance_timeout = \"3s\"\nmaster_key_file = \"" << (dir / "master.key").string() << "\"\n"
          << "[store]\npostgres = \"" << store_conninfo() << "\"\n";
        if (listeners) {
            f << "[listen]\npostgres = \"127.0.0.1:" << i.port << "\"\n"
              << "[admin]\nlisten = \"127.0.0.1:" << i.admin_port << "\"\n";
        }
        f << "[tls]\ncert_file = \"" << cert.cert.string() << "\"\nkey_file = \"" << cert.key.string() << "\"\n"
          << "[idp]\nissuer = \"" << idp.issuer() << "\"\nclient_id = \"glassgate\"\n"
          << "probe_interval = \"1s\"\nprobe_timeout = \"500ms\"\nunreachable_after = 2\nhealthy_after = 1\n"
          << "[[target]]\nname = \"appdb\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:" << backend.port()
          << "\"\ndatabase = \"app\"\nbackend_user = \"app_owner\"\ntls = \"require\"\nallow = [\"alice\"]\n"
          << "[[fallback]]\nname = \"sso-outage\"\ntrigger = \"idp_unreachable\"\naccounts = [\"bg-oncall-1\"]\n"
          << "targets = [\"appdb\"]\nrequire_reason = true\nnotify = [\"" << hooks.url() << "\"]\n" << rule_extra
          << "[[fallback]]\nname = \"declared-ops\"\ntrigger = \"declared\"\naccounts = [\"bg-dba\"]\n"
          << "targets = [\"appdb\"]\nmax_session = \"2m\"\nrotate_on_close = false\nnotify = [\"" << hooks.url() << "\"]\n";
    }
};

/// A TCP load balancer on loopback, as behind a real one: connection i goes to ports[i % n]. Each
/// connection is copied both ways by a thread of its own until either side closes.
class RoundRobin {
 public:
    explicit RoundRobin(std::vector<std::uint16_t> ports) : ports_(std::move(ports)) {
        thread_ = std::thread([this] { accept_loop(); });
    }
    ~RoundRobin() {
        stop_ = true;
        listener_.close();
        thread_.join();
        for (auto& t : pipes_) t.join();
    }
    RoundRobin(const RoundRobin&) = delete;
    RoundRobin& operator=(const RoundRobin&) = delete;
    [[nodiscard]] std::uint16_t port() const noexcept { return listener_.port(); }
    [[nodiscard]] int connections() const noexcept { return count_.load(); }

 private:
    void accept_loop() {
        while (!stop_) {
            pollfd p{listener_.fd(), POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const int c = ::accept(listener_.fd(), nullptr, nullptr);
            if (c < 0) continue;
            const int i = count_++;
            const int b = connect_loopback(ports_[static_cast<std::size_t>(i) % ports_.size()]);
            if (b < 0) {
                ::close(c);
                continue;
            }
            pipes_.emplace_back([this, c, b] { pipe(c, b); });
        }
    }
    void pipe(int a, int b) {
        char buf[65536];
        pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        while (!stop_) {
            if (::poll(p, 2, 100) <= 0) continue;
            bool done = false;
            for (int k = 0; k < 2 && !done; ++k) {
                if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                const auto n = ::read(p[k].fd, buf, sizeof buf);
                if (n <= 0) {
                    done = true;
                    break;
                }
                for (ssize_t off = 0; off < n;) {
                    const auto w = ::write(p[1 - k].fd, buf + off, static_cast<std::size_t>(n - off));
                    if (w <= 0) {
                        done = true;
                        break;
                    }
                    off += w;
                }
            }
            if (done) break;
        }
        ::close(a);
        ::close(b);
    }
    std::vector<std::uint16_t> ports_;
    LoopbackListener listener_;
    std::atomic<bool> stop_{false};
    std::atomic<int> count_{0};
    std::vector<std::thread> pipes_;
    std::thread thread_;
};

/// True when `status --json` of an instance lists `name` with `status`.
bool instance_status_is(const boost::json::object& st, const std::string& name, const std::string& status) {
    auto* in = st.if_contains("instances");
    if (!in || !in->is_array()) return false;
    for (const auto& v : in->as_array()) {
        if (!v.is_object()) continue;
        const auto& o = v.as_object();
        if (o.at("instance").as_string() == name) return o.at("status").as_string() == status;
    }
    return false;
}

/// One entry of the deployment's audit log.
struct AuditEntry {
    std::int64_t seq = 0;
    std::string event;
    std::string line;
};

/// `glassgate audit` (every entry, in order) through the bare CLI configuration.
std::vector<AuditEntry> audit_entries(const Cluster& c) {
    const auto r = c.gg(c.cli, {"audit"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    std::vector<AuditEntry> out;
    std::istringstream s(r.out);
    for (std::string l; std::getline(s, l);) {
        if (l.empty()) continue;
        boost::system::error_code ec;
        const auto v = boost::json::parse(l, ec);
        REQUIRE_MESSAGE((!ec && v.is_object()), l);
        const auto& o = v.as_object();
        AuditEntry e;
        if (const auto* seq = o.if_contains("seq"); seq && seq->is_int64()) e.seq = seq->as_int64();
        if (const auto* ev = o.if_contains("event"); ev && ev->is_string()) e.event = std::string(ev->as_string());
        e.line = l;
        out.push_back(std::move(e));
    }
    return out;
}

std::int64_t ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_SUITE_BEGIN("ha");

TEST_CASE("a session through instance a is listed, replayed, exported and verified from b and from a bare CLI") {
    Cluster c;
    const auto token = c.idp.device_login_token("alice");
    // Every instance sees the three, up, with its own view of the IdP.
    REQUIRE_MESSAGE(wait_until([&] {
                        auto st = c.status(c.in[1]);
                        return instance_status_is(st, "a", "up") && instance_status_is(st, "b", "up") &&
                               instance_status_is(st, "c", "up");
                    }, 20s), c.logs());
    auto human = c.gg(c.in[2], {"status"}).out;
    CHECK_MESSAGE(human.find("instance    a up, heartbeat ") != std::string::npos, human);

    auto r = c.psql(c.in[0], {"select 'via-a-' || 42"}, token);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe() << c.logs());
    CHECK(r.out == "via-a-42\n");
    const auto id = wait_newest_sealed_session(GG_BINARY, c.in[1].config(), 60s);
    REQUIRE_MESSAGE(id.has_value(), c.logs());
    // Listed everywhere with the instance that carried it.
    for (const auto* i : {&c.in[1], &c.in[2], &c.cli}) {
        const auto line = c.session_line(*i, *id);
        CHECK_MESSAGE(line.ends_with("  a"), line);
    }
    // Shipped whole within a few seconds; then b and the bare CLI read it from the store.
    REQUIRE_MESSAGE(wait_until([&] {
                        return c.gg(c.cli, {"sessions", "show", *id}).out.find("(in the state store: ") != std::string::npos &&
                               c.gg(c.cli, {"sessions", "show", *id}).out.find(", complete)") != std::string::npos;
                    }, 20s), c.gg(c.cli, {"sessions", "show", *id}).out << c.logs());
    for (const auto* i : {&c.in[1], &c.cli}) {
        auto replay = c.gg(*i, {"replay", *id});
        CHECK_MESSAGE(replay.exit_code == 0, replay.describe());
        CHECK_MESSAGE(replay.out.find("select 'via-a-' || 42") != std::string::npos, replay.out);
        auto verify = c.gg(*i, {"verify", *id});
        CHECK_MESSAGE(verify.exit_code == 0, verify.describe());
        CHECK(verify.out.find(*id + "  ok  ") == 0);
        const auto file = (c.dir / ("export-" + i->name + ".ggrec")).string();
        auto exp = c.gg(*i, {"export", *id, "--format", "ggrec", "--output", file});
        CHECK_MESSAGE(exp.exit_code == 0, exp.describe());
        auto offline = run({GG_BINARY, "verify", file, "--public-key", file + ".pub"});
        CHECK_MESSAGE(offline.exit_code == 0, offline.describe());
    }
    // One audit chain for the deployment, clean from any instance.
    for (const auto& i : c.in) {
        auto all = c.gg(i, {"verify", "--all", "--audit"});
        CHECK_MESSAGE(all.exit_code == 0, i.name << ": " << all.describe());
        CHECK(all.out.find("audit  ok  ") != std::string::npos);
    }
}

TEST_CASE("emergency declared through a applies on b within 2 s; ended through b, refused on a") {
    Cluster c;
    const std::string pass = c.stage("bg-dba");
    auto d = c.gg(c.in[0], {"emergency", "declare", "--reason", "CHG-7 failover", "--for", "1h"});
    REQUIRE_MESSAGE(d.exit_code == 0, d.describe());
    const auto t0 = std::chrono::steady_clock::now();
    RunResult r;
    REQUIRE_MESSAGE(wait_until([&] {
                        r = c.psql(c.in[1], {"select 'bg-in'"}, pass, "bg-dba", "CHG-7");
                        return r.exit_code == 0;
                    }, 10s, 100ms), r.describe() << c.logs());
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK_MESSAGE(took < 2s, std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    MESSAGE("declared through a, break-glass session through b after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(r.out == "bg-in\n");
    auto e = c.gg(c.in[1], {"emergency", "end"});
    REQUIRE_MESSAGE(e.exit_code == 0, e.describe());
    const std::string again = c.stage("bg-dba");
    auto refused = c.psql(c.in[0], {"select 1"}, again, "bg-dba", "CHG-7");
    CHECK(refused.exit_code != 0);
    CHECK_MESSAGE(refused.err.find("single sign-on is available") != std::string::npos, refused.describe());
}

TEST_CASE("one passphrase, 100 concurrent attempts over 3 instances: exactly one session") {
    Cluster c;
    const std::string pass = c.stage("bg-dba");
    auto d = c.gg(c.in[0], {"emergency", "declare", "--reason", "RACE-1", "--for", "1h"});
    REQUIRE_MESSAGE(d.exit_code == 0, d.describe());
    constexpr int n = 100;
    std::vector<RunResult> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            results[static_cast<std::size_t>(i)] =
                c.psql(c.in[static_cast<std::size_t>(i % 3)], {"select 'won'"}, pass, "bg-dba", "RACE-" + std::to_string(i), 120s);
        });
    }
    for (auto& t : threads) t.join();
    int ok = 0, used = 0;
    std::string other;
    for (const auto& r : results) {
        if (r.exit_code == 0 && r.out == "won\n") {
            ++ok;
        } else if (r.err.find("already used") != std::string::npos) {
            ++used;
        } else {
            other += r.describe() + "\n";
        }
    }
    CHECK_MESSAGE(ok == 1, other << c.logs());
    CHECK_MESSAGE(used == n - 1, other);
    // One breakglass.login in the deployment's audit trail, one login alert sequence.
    auto logins = c.gg(c.cli, {"audit", "--event", "breakglass.login"}).out;
    CHECK(std::count(logins.begin(), logins.end(), '\n') == 1);
    REQUIRE(wait_until([&] {
        const auto names = c.hooks.names();
        return std::count(names.begin(), names.end(), "breakglass.login") == 1;
    }, 20s));
    auto all = c.gg(c.in[2], {"verify", "--all", "--audit"});
    CHECK_MESSAGE(all.exit_code == 0, all.describe());
}

TEST_CASE("instance a killed mid-session: b closes it as interrupted, replays it to its last checkpoint, rotates") {
    Cluster c("max_session = \"5m\"\nrotate_on_close = true\n");
    const std::string pass = c.stage("bg-oncall-1");
    c.idp.stop();
    for (const auto& i : c.in) {
        REQUIRE_MESSAGE(wait_until([&] { return c.status(i).at("mode").as_string() == "emergency"; }, 20s), c.logs());
    }
    const std::string old_secret = c.app_password;
    // A break-glass session through a that is still running when a is killed.
    auto victim = Process::start({.argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                           "host=127.0.0.1 port=" + std::to_string(c.in[0].port) +
                                               " user=bg-oncall-1 dbname=appdb sslmode=require",
                                           "-c", "select 'marker-before-kill'", "-c", "select pg_sleep(60)"},
                                  .env = {.set = {{"PGPASSWORD", pass}, {"PGOPTIONS", "-c glassgate.reason=INC-9"}}}},
                                 c.dir / "victim.log");
    std::string id;
    REQUIRE_MESSAGE(wait_until([&] {
                        for (const auto& l : c.session_lines(c.in[1])) {
                            if (l.find(" active ") != std::string::npos && l.find("breakglass") != std::string::npos) {
                                id = l.substr(0, l.find(' '));
                            }
                        }
                        return !id.empty();
                    }, 20s), c.logs());
    // The marker is shipped within a heartbeat or two; then a dies without a word.
    std::this_thread::sleep_for(3s);
    ::kill(c.in[0].serve.pid(), SIGKILL);
    REQUIRE_MESSAGE(wait_until([&] { return c.session_line(c.in[1], id).find(" interrupted ") != std::string::npos; }, 30s),
                    c.session_line(c.in[1], id) << c.logs());
    CHECK(instance_status_is(c.status(c.in[1]), "a", "down"));
    auto show = c.gg(c.in[1], {"sessions", "show", id}).out;
    CHECK_MESSAGE(show.find("instance a stopped sending heartbeats") != std::string::npos, show);
    auto replay = c.gg(c.in[1], {"replay", id});
    CHECK_MESSAGE(replay.out.find("marker-before-kill") != std::string::npos, replay.describe());
    // The rotation of the break-glass credential, queued by b for a's session, is done by b or c.
    REQUIRE_MESSAGE(wait_until([&] {
                        return c.gg(c.cli, {"audit", "--event", "rotation.done"}).out.find(id) != std::string::npos;
                    }, 60s), c.gg(c.cli, {"audit"}).out << c.logs());
    auto old_login = c.backend.psql_as("app_owner", old_secret, "app", "select 1");
    CHECK(old_login.exit_code != 0);
    auto all = c.gg(c.in[2], {"verify", "--all", "--audit"});
    CHECK_MESSAGE(all.out.find("audit  ok  ") != std::string::npos, all.describe());
    // a comes back: it takes its name back and serves again.
    c.start(c.in[0]);
    REQUIRE(wait_until([&] { return instance_status_is(c.status(c.in[1]), "a", "up"); }, 20s));
    // ... and ships what it had not shipped: the store then holds the victim's whole file (unsealed, as
    // kill -9 left it), byte for byte what a has on disk.
    REQUIRE_MESSAGE(wait_until([&] { return c.gg(c.cli, {"sessions", "show", id}).out.find(", complete)") != std::string::npos; },
                               30s),
                    c.gg(c.cli, {"sessions", "show", id}).out << c.in[0].log());
    const auto exported = (c.dir / "victim-from-store.ggrec").string();
    REQUIRE(c.gg(c.cli, {"export", id, "--format", "ggrec", "--output", exported}).exit_code == 0);
    const auto local = c.in[0].dir / "state" / "recordings" / (id + ".ggrec");
    CHECK(read_file(exported) == read_file(local));
}

TEST_CASE("the store stopped for 10 s: new sessions refused with a clear message, running ones continue, nothing lost") {
    Cluster c;
    const auto token = c.idp.device_login_token("alice");
    auto running = Process::start({.argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                            "host=127.0.0.1 port=" + std::to_string(c.in[0].port) +
                                                " user=alice dbname=appdb sslmode=require",
                                            "-c", "select pg_sleep(14)", "-c", "select 'still-here'"},
                                   .env = {.set = {{"PGPASSWORD", token}}}},
                                  c.dir / "running.log");
    REQUIRE(wait_until([&] { return c.gg(c.in[1], {"sessions", "list"}).out.find(" active ") != std::string::npos; }, 20s));
    c.store.stop();
    const auto stopped = std::chrono::steady_clock::now();
    RunResult refused;
    REQUIRE_MESSAGE(wait_until([&] {
                        refused = c.psql(c.in[1], {"select 1"}, token);
                        return refused.exit_code != 0 &&
                               refused.err.find("the state store is unreachable") != std::string::npos;
                    }, 8s, 200ms), refused.describe() << c.logs());
    std::this_thread::sleep_until(stopped + 10s);
    c.store.start_again();
    // The running session finished normally.
    REQUIRE(wait_until([&] { return !running.running(); }, 30s));
    CHECK_MESSAGE(read_file(c.dir / "running.log").find("still-here") != std::string::npos, read_file(c.dir / "running.log"));
    // New sessions work again, and the index and the audit trail have every session and its end.
    RunResult after;
    REQUIRE_MESSAGE(wait_until([&] {
                        after = c.psql(c.in[2], {"select 'back'"}, token);
                        return after.exit_code == 0;
                    }, 30s, 500ms), after.describe() << c.logs());
    REQUIRE(wait_until([&] {
        auto l = c.gg(c.cli, {"sessions", "list"}).out;
        return l.find(" active ") == std::string::npos && l.find(" connecting ") == std::string::npos;
    }, 30s));
    const auto ends = c.gg(c.cli, {"audit", "--event", "session.end"}).out;
    for (const auto& l : c.session_lines(c.cli)) {
        const auto sid = l.substr(0, l.find(' '));
        CHECK_MESSAGE(ends.find(sid) != std::string::npos, "no session.end for " << l);
    }
    // Recordings that could not be shipped while the store was down are shipped once it is back.
    REQUIRE_MESSAGE(wait_until([&] {
                        for (const auto& i : c.in) {
                            const auto st = c.status(i);
                            auto* u = st.if_contains("recordings_unshipped");
                            if (!u || !u->is_object() || u->as_object().at("count").as_int64() != 0) return false;
                        }
                        return true;
                    }, 60s), c.logs());
    auto all = c.gg(c.in[0], {"verify", "--all", "--audit"});
    CHECK_MESSAGE(all.exit_code == 0, all.describe());
    CHECK_MESSAGE(all.out.find("  broken  ") == std::string::npos, all.out);
    CHECK_MESSAGE(all.out.find("  unshipped  ") == std::string::npos, all.out);
}

TEST_CASE("behind a load balancer: psql connected through a, its Ctrl-C cancel lands on b and cancels the query") {
    Cluster c;
    const auto token = c.idp.device_login_token("alice");
    // The session's connection goes to a, the cancel request's new connection to b.
    RoundRobin lb({c.in[0].port, c.in[1].port});
    auto p = Process::start({.argv = {"psql", "-X", "-q", "-A", "-t",
                                      "host=127.0.0.1 port=" + std::to_string(lb.port()) + " user=alice dbname=appdb sslmode=require",
                                      "-c", "select pg_sleep(60)"},
                             .env = {.set = {{"PGPASSWORD", token}}}},
                            c.dir / "psql-cancel.log");
    REQUIRE_MESSAGE(wait_until([&] {
                        return c.backend.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' "
                                              "and state = 'active'").out == "1\n";
                    }, 20s), c.logs());
    const auto t0 = std::chrono::steady_clock::now();
    p.signal_group(SIGINT);  // what Ctrl-C does: psql sends a CancelRequest on a new connection
    REQUIRE(wait_until([&] { return !p.running(); }, 20s, 20ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    const auto out = read_file(c.dir / "psql-cancel.log");
    CHECK_MESSAGE(out.find("canceling statement due to user request") != std::string::npos, out << c.logs());
    CHECK(lb.connections() == 2);
    CHECK_MESSAGE(took < 2s, std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    MESSAGE("Ctrl-C to psql's exit through b and a: " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                                      << " ms");
    CHECK(c.in[1].log().find("cancel request relayed to instance a") != std::string::npos);
    CHECK(c.in[0].log().find("cancel request forwarded for session") != std::string::npos);
    // A wrong key cancels nothing anywhere: a session of a, a CancelRequest with its pid and a wrong key
    // sent straight to b.
    auto q = Process::start({.argv = {"psql", "-X", "-q", "-A", "-t",
                                      "host=127.0.0.1 port=" + std::to_string(c.in[0].port) + " user=alice dbname=appdb sslmode=require",
                                      "-c", "select pg_sleep(4)", "-c", "select 'survived'"},
                             .env = {.set = {{"PGPASSWORD", token}}}},
                            c.dir / "psql-wrongkey.log");
    std::string pid;
    REQUIRE(wait_until([&] {
        pid = c.backend.psql("select pid from pg_stat_activity where query = 'select pg_sleep(4)' and state = 'active'").out;
        return !pid.empty();
    }, 20s));
    const int fd = connect_loopback(c.in[1].port);
    REQUIRE(fd >= 0);
    const std::string cancel = be32(16) + be32(80877102) + be32(static_cast<std::uint32_t>(std::stoul(pid))) + be32(0x5eed5eed);
    CHECK(::write(fd, cancel.data(), cancel.size()) == static_cast<ssize_t>(cancel.size()));
    ::close(fd);
    REQUIRE(wait_until([&] { return !q.running(); }, 30s));
    CHECK_MESSAGE(read_file(c.dir / "psql-wrongkey.log").find("survived") != std::string::npos, read_file(c.dir / "psql-wrongkey.log"));
}

TEST_CASE("standby promoted (primary stopped): glassgate resumes, audit chain continuous") {
    Cluster c(default_rule_extra, /*with_standby=*/true);
    REQUIRE(c.standby);
    const auto token = c.idp.device_login_token("alice");
    REQUIRE_MESSAGE(wait_until([&] {
                        auto st = c.status(c.in[1]);
                        return instance_status_is(st, "a", "up") && instance_status_is(st, "b", "up") &&
                               instance_status_is(st, "c", "up");
                    }, 20s), c.logs());
    // Sessions through every instance, written to the primary.
    for (const auto& i : c.in) {
        auto r = c.psql(i, {"select 'before-" + i.name + "'"}, token);
        REQUIRE_MESSAGE(r.exit_code == 0, i.name << ": " << r.describe() << c.logs());
        CHECK(r.out == "before-" + i.name + "\n");
    }
    // One more through a that is still running when the store fails over.
    auto across = Process::start({.argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                           "host=127.0.0.1 port=" + std::to_string(c.in[0].port) +
                                               " user=alice dbname=appdb sslmode=require",
                                           "-c", "select 'across-start'", "-c", "select pg_sleep(8)", "-c",
                                           "select 'after'"},
                                  .env = {.set = {{"PGPASSWORD", token}}}},
                                 c.dir / "across.log");
    REQUIRE_MESSAGE(wait_until([&] { return c.gg(c.in[1], {"sessions", "list"}).out.find(" active ") != std::string::npos; }, 20s),
                    c.logs());
    const auto before = audit_entries(c);
    REQUIRE(!before.empty());
    // Nothing committed on the primary is missing on the standby; then the primary goes (fast shutdown,
    // which also sends the standby the WAL written meanwhile) and the standby takes over.
    REQUIRE_MESSAGE(c.standby->wait_replayed(c.store, 30s), tail_file(c.standby->log_file()));
    c.store.stop();
    const auto t0 = std::chrono::steady_clock::now();
    // Asynchronous replication, but a clean stop: the standby has the primary's last WAL record (its
    // shutdown checkpoint), so no commit is lost.
    CHECK_MESSAGE(c.standby->wait_replayed(c.store, 10s),
                  "the standby lacks WAL of the stopped primary: replayed " << c.standby->wal_lsn() << ", primary's last "
                  << c.store.checkpoint_lsn() << "\n" << tail_file(c.standby->log_file()));
    const auto t1 = std::chrono::steady_clock::now();
    c.standby->promote();
    const auto promoted_ms = ms_since(t1);
    // New sessions through every instance succeed again.
    const auto deadline = t0 + 60s;
    for (const auto& i : c.in) {
        RunResult r;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        REQUIRE_MESSAGE(wait_until([&] {
                            r = c.psql(i, {"select 'after-failover-" + i.name + "'"}, token, "alice", {}, 30s);
                            return r.exit_code == 0;
                        }, std::max(left, std::chrono::milliseconds(1)), 250ms),
                        i.name << ": " << r.describe() << c.logs());
        CHECK(r.out == "after-failover-" + i.name + "\n");
        MESSAGE("instance " << i.name << ": a new session succeeded " << ms_since(t0)
                            << " ms after the primary stopped (promotion took " << promoted_ms << " ms)");
    }
    // The session running across the failover completed.
    REQUIRE_MESSAGE(wait_until([&] { return !across.running(); }, 30s), c.logs());
    const auto across_out = read_file(c.dir / "across.log");
    CHECK(across.exit_code() == 0);
    CHECK_MESSAGE(across_out.find("across-start") != std::string::npos, across_out);
    CHECK_MESSAGE(across_out.find("\nafter\n") != std::string::npos, across_out);
    // Audit writes after the failover land after everything written before it.
    auto d = c.gg(c.in[1], {"emergency", "declare", "--reason", "CHG-12 store failover", "--for", "1h"});
    CHECK_MESSAGE(d.exit_code == 0, d.describe() << c.logs());
    auto e = c.gg(c.in[2], {"emergency", "end"});
    CHECK_MESSAGE(e.exit_code == 0, e.describe() << c.logs());
    // Every session is closed, with its session.end in the audit trail.
    REQUIRE_MESSAGE(wait_until([&] {
                        auto l = c.gg(c.cli, {"sessions", "list"}).out;
                        return l.find(" active ") == std::string::npos && l.find(" connecting ") == std::string::npos;
                    }, 30s), c.gg(c.cli, {"sessions", "list"}).out << c.logs());
    const auto sessions = c.session_lines(c.cli);
    // 3 before, 1 across, 3 after (attempts refused while the store was unreachable may add more).
    CHECK_MESSAGE(sessions.size() >= 7, c.gg(c.cli, {"sessions", "list"}).out);
    MESSAGE("sessions:\n" << c.gg(c.cli, {"sessions", "list"}).out);
    const auto ends = c.gg(c.cli, {"audit", "--event", "session.end"}).out;
    for (const auto& l : sessions) {
        const auto sid = l.substr(0, l.find(' '));
        CHECK_MESSAGE(ends.find(sid) != std::string::npos, "no session.end for " << l);
    }
    // One chain: what was written before the failover is all there, unchanged; the numbering goes on
    // without a gap or a repeat; the entries written after the promotion come after it.
    const auto after = audit_entries(c);
    REQUIRE(after.size() > before.size());
    for (std::size_t k = 0; k < before.size(); ++k) {
        CHECK_MESSAGE(after[k].line == before[k].line, "entry " << k << " changed or lost:\n" << before[k].line);
    }
    for (std::size_t k = 0; k < after.size(); ++k) {
        CHECK_MESSAGE(after[k].seq == static_cast<std::int64_t>(k) + 1, after[k].line);
    }
    std::int64_t declared = 0, ended = 0;
    for (const auto& a : after) {
        if (a.event == "emergency.declare") declared = a.seq;
        if (a.event == "emergency.end") ended = a.seq;
    }
    CHECK(declared > before.back().seq);
    CHECK(ended > declared);
    // Recordings are all shipped to the new primary.
    CHECK_MESSAGE(wait_until([&] {
                      for (const auto& i : c.in) {
                          const auto st = c.status(i);
                          auto* u = st.if_contains("recordings_unshipped");
                          if (!u || !u->is_object() || u->as_object().at("count").as_int64() != 0) return false;
                      }
                      return true;
                  }, 60s), c.logs());
    for (const auto& i : c.in) {
        auto all = c.gg(i, {"verify", "--all", "--audit"});
        CHECK_MESSAGE(all.exit_code == 0, i.name << ": " << all.describe());
        CHECK_MESSAGE(all.out.find("audit  ok  ") != std::string::npos, all.out);
        CHECK_MESSAGE(all.out.find("  broken  ") == std::string::npos, all.out);
    }
    MESSAGE("audit entries: " << before.size() << " before the failover, " << after.size() << " after");
}

TEST_CASE("a rotation instance a queued while the backend was down is completed by another instance after a dies") {
    Cluster c("max_session = \"5m\"\nrotate_on_close = true\n");
    const std::string pass = c.stage("bg-oncall-1");
    c.idp.stop();
    for (const auto& i : c.in) {
        REQUIRE_MESSAGE(wait_until([&] { return c.status(i).at("mode").as_string() == "emergency"; }, 20s), c.logs());
    }
    // A break-glass session through a whose backend goes away under it: a queues the rotation at the
    // close and cannot run it.
    auto session = Process::start({.argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                            "host=127.0.0.1 port=" + std::to_string(c.in[0].port) +
                                                " user=bg-oncall-1 dbname=appdb sslmode=require",
                                            "-c", "select pg_sleep(30)"},
                                   .env = {.set = {{"PGPASSWORD", pass}, {"PGOPTIONS", "-c glassgate.reason=INC-11"}}}},
                                  c.dir / "bg-session.log");
    REQUIRE(wait_until([&] {
        return c.backend.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)'").out == "1\n";
    }, 20s));
    c.backend.stop();
    REQUIRE(wait_until([&] { return !session.running(); }, 30s));
    std::string last_error;
    REQUIRE_MESSAGE(wait_until([&] {
                        const auto st = c.status(c.in[1]);
                        auto* p = st.if_contains("rotation_pending");
                        if (!p || !p->is_array() || p->as_array().empty()) return false;
                        last_error = std::string(p->as_array()[0].as_object().at("last_error").as_string());
                        return !last_error.empty();
                    }, 30s), c.logs());
    MESSAGE("pending rotation, last error: " << last_error);
    // a dies; the backend returns; b or c completes the rotation a queued.
    ::kill(c.in[0].serve.pid(), SIGKILL);
    c.backend.start_again();
    REQUIRE_MESSAGE(wait_until([&] {
                        return c.gg(c.cli, {"audit", "--event", "rotation.done"}).out.find("\"target\":\"appdb\"") !=
                               std::string::npos;
                    }, 60s), c.gg(c.cli, {"audit", "--event", "rotation.failed"}).out << c.logs());
    const bool done_elsewhere = c.in[1].log().find("rotation of appdb done") != std::string::npos ||
                                c.in[2].log().find("rotation of appdb done") != std::string::npos;
    CHECK_MESSAGE(done_elsewhere, c.logs());
    CHECK(c.in[0].log().find("rotation of appdb done") == std::string::npos);
    CHECK(c.backend.psql_as("app_owner", c.app_password, "app", "select 1").exit_code != 0);  // the old password
    // Exactly once: one rotation.done for the job.
    const auto done = c.gg(c.cli, {"audit", "--event", "rotation.done"}).out;
    CHECK(std::count(done.begin(), done.end(), '\n') == 1);
}
