// Break-glass end to end on the PostgreSQL path: real oidc-provider (stopped to cause the emergency),
// real PostgreSQL 15, real psql through `glassgate serve`, a webhook receiver on loopback. The story:
// stage -> refused while the IdP is healthy (alert) -> IdP stopped -> status says emergency -> psql with the
// passphrase and a reason works on the allowed target, is refused on another and without a reason -> time
// cap after the warning -> the backend password is rotated (old refused, new works) -> the same passphrase
// is refused -> the webhook got the events in order -> the audit log tells the story -> IdP back -> refused
// again with an alert. Then: several psql at once with one passphrase, exactly one gets in; faults around
// it: a webhook receiver failing during a session (alerts delivered later, in order), the backend down at
// rotation time with serve restarted meanwhile (the rotation resumes when the backend is back), and the
// IdP flapping every second for a minute (no emergency; forged tokens are no IdP evidence).

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "harness/files.hpp"
#include "harness/idp_peer.hpp"
#include "harness/net.hpp"
#include "harness/postgres_peer.hpp"
#include "harness/process.hpp"
#include "harness/webhook_receiver.hpp"
#include "pg_stack.hpp"

using namespace gg::harness;
using namespace std::chrono_literals;

namespace {


/// PostgreSQL + IdP + glassgate serve; targets "appdb" (in the fallback rule) and "otherdb" (not).
struct Stack : PgStack {
    WebhookReceiver hooks;

    explicit Stack(const std::string& rule_extra = "max_session = \"6s\"\nwarn_before = \"3s\"\nrotate_on_close = true\n",
                   const std::string& idp_extra =
                       "probe_interval = \"1s\"\nprobe_timeout = \"500ms\"\nunreachable_after = 2\nhealthy_after = 1\n")
        // Every statement logged, so the test can check that the new password never reaches the server's log.
        : PgStack({.postgres = PostgresOptions{.settings = {"log_statement=all"}}}) {
        const std::string target_common = "protocol = \"postgres\"\naddress = \"127.0.0.1:" + std::to_string(pg.port()) +
                                          "\"\ndatabase = \"app\"\nbackend_user = \"app_owner\"\ntls = \"require\"\n"
                                          "allow = [\"alice\"]\n";
        write_config(
            {.idp_extra = idp_extra,
             .tables = "[[target]]\nname = \"appdb\"\n" + target_common + "[[target]]\nname = \"otherdb\"\n" + target_common +
                       "pool_size = 2\n"
                       "[[fallback]]\nname = \"sso-outage\"\ntrigger = \"idp_unreachable\"\naccounts = [\"bg-oncall-1\"]\n"
                       "targets = [\"app*\"]\nrequire_reason = true\nnotify = [\"" + hooks.url() + "\"]\n" + rule_extra +
                       "[[fallback]]\nname = \"declared-ops\"\ntrigger = \"declared\"\naccounts = [\"bg-dba\"]\n"
                       "targets = [\"otherdb\"]\nmax_session = \"2m\"\nrotate_on_close = false\nnotify = [\"" + hooks.url() +
                       "\"]\n"});
        for (const auto* t : {"appdb", "otherdb"}) set_secret(t);
        start_serve();
    }
    ~Stack() { serve.stop(); }  // before the webhook receiver goes: glassgate may still post events
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;
    /// The IdP goes away: glassgate is in emergency mode within 20 s.
    void idp_outage() {
        idp.stop();
        REQUIRE_MESSAGE(wait_until([&] { return mode() == "emergency"; }, 20s, 200ms), serve_log());
    }
    /// Waits until bg-oncall-1's credential is held by a session.
    void wait_in_use() const { REQUIRE(wait_until([&] { return account_state() == "in-use"; }, 20s, 200ms)); }
    [[nodiscard]] bool rotation_done_for(const std::string& session) const {
        auto st = status();
        auto* p = st.if_contains("rotation_pending");
        return p && p->is_array() && p->as_array().empty() &&
               gg({"audit", "--event", "rotation.done"}).out.find(session) != std::string::npos;
    }
    [[nodiscard]] std::string account_state() const {
        auto l = gg({"breakglass", "list"}).out;
        auto a = l.find("bg-oncall-1  ");
        if (a == std::string::npos) return "";
        a += 13;
        return l.substr(a, l.find(' ', a) - a);
    }
    [[nodiscard]] std::string newest_breakglass_session() const {
        auto l = gg({"sessions", "list", "--mode", "breakglass"}).out;
        auto last = l.rfind('\n', l.size() >= 2 ? l.size() - 2 : 0);
        auto line = last == std::string::npos || l.size() < 2 ? l : l.substr(last + 1);
        return line.substr(0, line.find(' '));
    }

    [[nodiscard]] RunResult gg(std::vector<std::string> args, const std::string& stdin_data = {}) const {
        args.insert(args.begin(), GG_BINARY);
        args.emplace_back("--config");
        args.push_back(config());
        return run(args, {.stdin_data = stdin_data, .timeout = 30s});
    }
    [[nodiscard]] boost::json::object status() const {
        auto r = gg({"status", "--json"});
        boost::system::error_code ec;
        auto v = boost::json::parse(r.out, ec);
        return ec || !v.is_object() ? boost::json::object{} : v.as_object();
    }
    [[nodiscard]] std::string mode() const {
        auto s = status();
        auto* m = s.if_contains("mode");
        return m && m->is_string() ? std::string(m->as_string()) : "";
    }
    [[nodiscard]] RunResult psql(const std::vector<std::string>& sql, const std::string& password,
                                 const std::string& reason = "INC-1", const std::string& db = "appdb",
                                 const std::string& user = "bg-oncall-1") const {
        std::vector<std::string> argv = {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                         "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " dbname=" + db +
                                             " sslmode=require"};
        for (const auto& s : sql) {
            argv.emplace_back("-c");
            argv.push_back(s);
        }
        EnvChanges env{.set = {{"PGPASSWORD", password}}};
        if (!reason.empty()) env.set.emplace_back("PGOPTIONS", "-c glassgate.reason=" + reason);
        return run(argv, {.env = env, .timeout = 60s});
    }
    [[nodiscard]] std::string stage(const std::string& account = "bg-oncall-1") const {
        auto r = gg({"breakglass", "stage", account});
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        REQUIRE(r.out.size() == 40);
        return r.out.substr(0, 39);
    }
    [[nodiscard]] std::string backend_secret() const {
        gg::proxy::StateDir sd(dir / "state");
        auto store = gg::proxy::open_sqlite_store(sd.store_file(), sd.audit_key());
        auto s = gg::proxy::SecretStore(*store, sd.secrets_key()).get("appdb");
        REQUIRE(s.has_value());
        return std::string(s->reveal());
    }
};

/// True if `want` appears in `seq` in this order (other events may come between).
bool in_order(const std::vector<std::string>& seq, const std::vector<std::string>& want) {
    std::size_t i = 0;
    for (const auto& s : seq) {
        if (i < want.size() && s == want[i]) ++i;
    }
    return i == want.size();
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += s + " ";
    return out;
}

}  // namespace

TEST_SUITE_BEGIN("breakglass");

TEST_CASE("the emergency story on PostgreSQL: gate, rule, reason, time cap, rotation, single use, alerts, audit") {
    Stack s;
    const std::string pass = s.stage();
    REQUIRE(wait_until([&] { return s.mode() == "normal" && s.status().at("idp").as_object().at("state").as_string() == "healthy"; }, 15s));

    // IdP healthy: refused, with the hint that SSO works, and an alert. The credential is not consumed.
    auto healthy = s.psql({"select 1"}, pass);
    CHECK(healthy.exit_code != 0);
    CHECK_MESSAGE(healthy.err.find("single sign-on is available") != std::string::npos, healthy.describe());

    // The IdP goes away: the monitor declares it unreachable and status says emergency.
    s.idp_outage();
    auto human = s.gg({"status"});
    CHECK(human.out.find("mode        emergency (identity provider unreachable)") != std::string::npos);

    // Not allowed on another target, not without a reason: refused, credential still staged.
    auto other = s.psql({"select 1"}, pass, "INC-1", "otherdb");
    CHECK(other.exit_code != 0);
    CHECK_MESSAGE(other.err.find("may not use target \"otherdb\"") != std::string::npos, other.describe());
    auto noreason = s.psql({"select 1"}, pass, "");
    CHECK(noreason.exit_code != 0);
    CHECK_MESSAGE(noreason.err.find("needs a reason") != std::string::npos, noreason.describe());
    auto wrong = s.psql({"select 1"}, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA");
    CHECK(wrong.exit_code != 0);
    CHECK(s.gg({"breakglass", "list"}).out.find("bg-oncall-1  staged") == 0);

    // The emergency session: works, the reason never reaches the backend, warned, then cut at 6 s.
    const auto t0 = std::chrono::steady_clock::now();
    auto r = s.psql({"select current_user || ' ' || coalesce(current_setting('glassgate.reason', true), '<none>')",
                     "select pg_sleep(30)"},
                    pass, "INC-1");
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK_MESSAGE(r.out.find("app_owner <none>") == 0, r.describe() << s.serve_log());
    CHECK(r.exit_code != 0);
    const auto warn = r.err.find("this session ends in 3s (emergency access limit of rule \"sso-outage\")");
    const auto cut = r.err.find("session time limit reached");
    CHECK_MESSAGE(warn != std::string::npos, r.describe());
    CHECK(cut != std::string::npos);
    CHECK(warn < cut);
    CHECK(took < 15s);

    // Session recorded and marked break-glass.
    std::string id;
    REQUIRE(wait_until([&] {
        auto l = s.gg({"sessions", "list", "--mode", "breakglass"});
        if (l.out.empty()) return false;
        id = l.out.substr(0, l.out.find(' '));
        return s.gg({"sessions", "show", id}).out.find("state           closed") != std::string::npos;
    }, 15s));
    auto show = s.gg({"sessions", "show", id});
    CHECK(show.out.find("breakglass") != std::string::npos);
    CHECK(show.out.find("INC-1") != std::string::npos);
    CHECK(show.out.find("time_cap") != std::string::npos);

    // Rotation: the backend role's old password no longer works, the proxy's new one does.
    REQUIRE_MESSAGE(wait_until([&] {
        auto st = s.status();
        auto* p = st.if_contains("rotation_pending");
        return p && p->is_array() && p->as_array().empty() &&
               s.gg({"audit", "--event", "rotation.done"}).out.find(id) != std::string::npos;
    }, 30s, 250ms), s.serve_log());
    const auto fresh = s.backend_secret();
    CHECK(fresh != s.app_password);
    auto old_pw = s.pg.psql_as("app_owner", s.app_password, "app", "select 1");
    CHECK(old_pw.exit_code != 0);
    auto new_pw = s.pg.psql_as("app_owner", fresh, "app", "select 1");
    CHECK_MESSAGE(new_pw.exit_code == 0, new_pw.describe());
    // Only a SCRAM verifier travelled: the new password is not in the server's statement log.
    const auto pglog = read_file(s.pg.log_file());
    CHECK(pglog.find("ALTER ROLE \"app_owner\" PASSWORD 'SCRAM-SHA-256$") != std::string::npos);
    CHECK(pglog.find(fresh) == std::string::npos);

    // The same passphrase again: refused (single use).
    auto replay = s.psql({"select 1"}, pass);
    CHECK(replay.exit_code != 0);
    CHECK_MESSAGE(replay.err.find("already used") != std::string::npos, replay.describe());
    CHECK(s.gg({"breakglass", "list"}).out.find("bg-oncall-1  used") == 0);

    // The IdP comes back: emergency over, a freshly staged credential is refused with an alert.
    s.idp.restart();
    REQUIRE(wait_until([&] { return s.mode() == "normal"; }, 20s, 200ms));
    const std::string pass2 = s.stage();
    auto after = s.psql({"select 1"}, pass2);
    CHECK(after.exit_code != 0);
    CHECK(after.err.find("single sign-on is available") != std::string::npos);

    // Webhooks, in order.
    REQUIRE(wait_until([&] {
        auto n = s.hooks.names();
        return std::count(n.begin(), n.end(), "breakglass.outside_emergency") >= 2 &&
               std::find(n.begin(), n.end(), "emergency.left") != n.end();
    }, 20s));
    const auto names = s.hooks.names();
    MESSAGE("webhook events: " << joined(names));
    CHECK(in_order(names, {"breakglass.outside_emergency", "emergency.entered", "breakglass.refused", "breakglass.login",
                           "breakglass.session_end", "rotation.done", "breakglass.replay", "emergency.left",
                           "breakglass.outside_emergency"}));
    for (const auto& e : s.hooks.events()) {
        if (e.at("event").as_string() != "breakglass.login") continue;
        CHECK(e.at("account").as_string() == "bg-oncall-1");
        CHECK(e.at("target").as_string() == "appdb");
        CHECK(e.at("reason").as_string() == "INC-1");
        CHECK(e.at("session").as_string() == id);
        CHECK(e.at("mode").as_string() == "emergency");
        CHECK(e.at("source").as_string().starts_with("127.0.0.1:"));
        CHECK(!e.at("time").as_string().empty());
    }

    // The audit log tells the story of the incident.
    auto story = s.gg({"audit", "--session", id});
    std::vector<std::string> events;
    std::istringstream lines(story.out);
    for (std::string l; std::getline(lines, l);) events.emplace_back(boost::json::parse(l).as_object().at("event").as_string());
    MESSAGE("audit --session: " << joined(events));
    CHECK(in_order(events, {"breakglass.login", "session.start", "session.end", "breakglass.used", "rotation.queued",
                            "rotation.done"}));
    auto all = s.gg({"audit"}).out;
    CHECK(all.find("emergency account used outside an emergency") != std::string::npos);
    CHECK(all.find("\"emergency.entered\"") != std::string::npos);
    auto verify = s.gg({"verify", "--all", "--audit"});
    CHECK_MESSAGE(verify.exit_code == 0, verify.describe());
}

TEST_CASE("several psql at once with one passphrase: exactly one session") {
    Stack s("max_session = \"1m\"\nrotate_on_close = false\n");
    const std::string pass = s.stage();
    s.idp_outage();
    constexpr int n = 12;
    std::vector<RunResult> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] { results[static_cast<std::size_t>(i)] = s.psql({"select 'in'"}, pass, "INC-" + std::to_string(i)); });
    }
    for (auto& t : threads) t.join();
    int ok = 0, used = 0;
    for (const auto& r : results) {
        if (r.exit_code == 0 && r.out == "in\n") ++ok;
        if (r.err.find("already used") != std::string::npos) ++used;
    }
    CHECK_MESSAGE(ok == 1, s.serve_log());
    CHECK(used == n - 1);
}

TEST_CASE("a declared emergency with the IdP healthy: CLI and serve share it; metrics say breakglass") {
    Stack s("max_session = \"1m\"\nrotate_on_close = false\n");
    const std::string pass = s.stage("bg-dba");
    REQUIRE(wait_until([&] { return s.status().at("idp").as_object().at("state").as_string() == "healthy"; }, 15s));
    CHECK(s.psql({"select 1"}, pass, "CHG-1", "otherdb", "bg-dba").err.find("single sign-on is available") != std::string::npos);

    auto d = s.gg({"emergency", "declare", "--reason", "CHG-1 planned failover", "--for", "1h"});
    REQUIRE_MESSAGE(d.exit_code == 0, d.describe());
    auto st = s.status();
    CHECK(st.at("mode").as_string() == "emergency");
    CHECK(st.at("declaration").as_object().at("reason").as_string() == "CHG-1 planned failover");
    CHECK(s.gg({"status"}).out.find("declared    by cli:") != std::string::npos);
    // The declared rule covers otherdb only; the idp_unreachable rule is not armed by a declaration.
    // Other settings in `options` still reach the backend; glassgate.reason does not. A backslash
    // escapes a space, as the server splits options.
    auto r = s.psql({"select current_database(), current_setting('statement_timeout'), "
                     "coalesce(current_setting('glassgate.reason', true), '<none>')"},
                    pass, "CHG-1\\ failover -c statement_timeout=4321", "otherdb", "bg-dba");
    CHECK_MESSAGE(r.exit_code == 0, r.describe() << s.serve_log());
    CHECK(r.out == "app|4321ms|<none>\n");
    CHECK(s.gg({"audit", "--event", "breakglass.login"}).out.find("\"reason\":\"CHG-1 failover\"") != std::string::npos);
    const std::string oncall = s.stage();
    CHECK(s.psql({"select 1"}, oncall, "CHG-1").err.find("may not use target") != std::string::npos);

    std::optional<HttpResponse> m;
    // The session's close (seal, index, metrics) finishes just after psql has gone.
    CHECK(wait_until([&] {
        m = http_get("127.0.0.1", s.admin_port, "/metrics");
        return m && m->body.find("auth=\"breakglass\"") != std::string::npos;
    }, 30s));
    REQUIRE(m.has_value());
    CHECK(m->body.find("glassgate_breakglass_logins_total{protocol=\"postgres\",outcome=\"granted\"} 1") != std::string::npos);
    CHECK(m->body.find("auth=\"breakglass\"") != std::string::npos);
    CHECK(m->body.find("glassgate_emergency_mode 1") != std::string::npos);
    // otherdb keeps idle backend connections (pool_size = 2), but never one of a break-glass session.
    CHECK(m->body.find("glassgate_postgres_pool_idle{target=\"otherdb\"}") == std::string::npos);
    CHECK(m->body.find("glassgate_postgres_backend_connections_total{target=\"otherdb\",how=\"opened\"} 1") !=
          std::string::npos);
    // An SSO session on the same target does leave its connection.
    const auto token = s.idp.device_login_token("alice");
    auto sso = run({"psql", "-X", "-q", "-A", "-t", "-c", "select 1",
                    "host=127.0.0.1 port=" + std::to_string(s.port) + " user=alice dbname=otherdb sslmode=require"},
                   {.env = {.set = {{"PGPASSWORD", token}}}, .timeout = 60s});
    CHECK_MESSAGE(sso.exit_code == 0, sso.describe());
    CHECK(wait_until([&] {
        m = http_get("127.0.0.1", s.admin_port, "/metrics");
        return m && m->body.find("glassgate_postgres_pool_idle{target=\"otherdb\"} 1") != std::string::npos;
    }, 30s));

    CHECK(s.gg({"emergency", "end"}).exit_code == 0);
    REQUIRE(wait_until([&] { return s.mode() == "normal"; }, 5s));
    const std::string pass2 = s.stage("bg-dba");
    CHECK(s.psql({"select 1"}, pass2, "CHG-1", "otherdb", "bg-dba").err.find("single sign-on is available") != std::string::npos);
    REQUIRE(wait_until([&] {
        auto n = s.hooks.names();
        return std::find(n.begin(), n.end(), "emergency.left") != n.end();
    }, 30s));
    CHECK(in_order(s.hooks.names(), {"breakglass.outside_emergency", "emergency.entered", "breakglass.login",
                                     "breakglass.session_end", "emergency.left"}));
}

// kill -9 during an emergency session (credential stays consumed, recording authenticated through the
// kill, rotation after the restart) is part of the fault suite: faults_test.cpp.

TEST_CASE("the backend refuses logins when the session closes: rotation-pending, retried until it works") {
    Stack s("max_session = \"5m\"\nrotate_on_close = true\n");
    const std::string pass = s.stage();
    s.idp_outage();
    RunResult r;
    std::thread client([&] { r = s.psql({"select pg_sleep(3)"}, pass, "INC-10"); });
    s.wait_in_use();
    // The backend stops accepting this role's logins before the session closes.
    REQUIRE(s.pg.psql("ALTER ROLE app_owner NOLOGIN").exit_code == 0);
    client.join();
    CHECK_MESSAGE(r.exit_code == 0, r.describe());
    const auto id = s.newest_breakglass_session();
    REQUIRE(wait_until([&] {
        auto st = s.status();
        auto& p = st["rotation_pending"];
        return p.is_array() && !p.as_array().empty() && p.as_array()[0].as_object().at("attempts").as_int64() >= 1;
    }, 20s, 250ms));
    auto human = s.gg({"status"});
    CHECK(human.out.find("appdb rotation-pending since") != std::string::npos);
    CHECK(human.out.find("last error") != std::string::npos);
    CHECK(s.backend_secret() == s.app_password);  // the proxy keeps the secret that is still valid
    REQUIRE(wait_until([&] {
        auto n = s.hooks.names();
        return std::find(n.begin(), n.end(), "rotation.failed") != n.end();
    }, 30s));
    // The backend accepts logins again: the next retry completes the rotation.
    REQUIRE(s.pg.psql("ALTER ROLE app_owner LOGIN").exit_code == 0);
    REQUIRE_MESSAGE(wait_until([&] { return s.rotation_done_for(id); }, 40s, 250ms), s.serve_log());
    CHECK(s.backend_secret() != s.app_password);
    CHECK(s.pg.psql_as("app_owner", s.app_password, "app", "select 1").exit_code != 0);
    CHECK(s.pg.psql_as("app_owner", s.backend_secret(), "app", "select 1").exit_code == 0);
}

TEST_CASE("webhook receiver failing during a break-glass session: the session is unaffected, alerts arrive later in order") {
    Stack s("max_session = \"5m\"\nrotate_on_close = true\n");
    s.hooks.set_failing(true);
    const std::string pass = s.stage();
    s.idp_outage();
    auto r = s.psql({"select 'during-' || 'outage'"}, pass, "INC-11");
    CHECK_MESSAGE(r.exit_code == 0, r.describe());
    CHECK(r.out == "during-outage\n");
    const auto id = s.newest_breakglass_session();
    REQUIRE_MESSAGE(wait_until([&] { return s.rotation_done_for(id); }, 40s, 250ms), s.serve_log());
    CHECK(s.hooks.names().empty());
    CHECK(s.hooks.refused() >= 1);
    CHECK(s.metric("glassgate_alerts_pending") >= 4);  // entered, login, session_end, rotation.done
    s.hooks.set_failing(false);
    const std::vector<std::string> story = {"emergency.entered", "breakglass.login", "breakglass.session_end",
                                            "rotation.done"};
    REQUIRE_MESSAGE(wait_until([&] { return in_order(s.hooks.names(), story); }, 90s, 250ms),
                    joined(s.hooks.names()) << s.serve_log());
    // Delivered in the order they were raised, each once: seq 1, 2, 3, ... without a gap or a repeat.
    std::int64_t expect = 1;
    for (const auto& e : s.hooks.events()) CHECK(e.at("seq").as_int64() == expect++);
    CHECK(wait_until([&] { return s.metric("glassgate_alerts_pending") == 0; }, 30s, 250ms));
    // Only the first alert was retried: the others waited behind it and went through at their first attempt.
    CHECK(s.metric("glassgate_alerts_total{event=\"emergency.entered\",outcome=\"retry\"}") >= 1);
    CHECK(s.metric("glassgate_alerts_total{event=\"breakglass.login\",outcome=\"retry\"}") <= 0);
}

TEST_CASE("backend down at rotation time and serve restarted while it is pending: the rotation resumes when the backend is back") {
    Stack s("max_session = \"5m\"\nrotate_on_close = true\n");
    const std::string pass = s.stage();
    s.idp_outage();
    RunResult r;
    std::thread client([&] { r = s.psql({"select pg_sleep(120)"}, pass, "INC-12"); });
    s.wait_in_use();
    s.pg.stop();  // the backend goes away: the session ends, its rotation finds no backend
    client.join();
    CHECK(r.exit_code != 0);
    const auto id = s.newest_breakglass_session();
    auto attempts = [&]() -> std::int64_t {
        auto st = s.status();
        auto* p = st.if_contains("rotation_pending");
        if (!p || !p->is_array() || p->as_array().empty()) return -1;
        return p->as_array()[0].as_object().at("attempts").as_int64();
    };
    REQUIRE_MESSAGE(wait_until([&] { return attempts() >= 1; }, 30s, 250ms), s.serve_log());
    auto list = s.gg({"breakglass", "list"});
    CHECK_MESSAGE(list.out.find("rotation of appdb pending since") != std::string::npos, list.describe());
    CHECK(list.out.find("last error: ") != std::string::npos);

    // serve restarts while the rotation is pending and the backend is still down.
    s.serve.stop();
    s.start_serve();
    auto human = s.gg({"status"});
    CHECK_MESSAGE(human.out.find("appdb rotation-pending since") != std::string::npos, human.describe());
    CHECK(human.out.find("last error") != std::string::npos);
    // Retries back off (5 s, 10 s, 20 s, ...): wait until the next one is far away, so that only noticing
    // the backend's return can explain a rotation done soon after it.
    REQUIRE_MESSAGE(wait_until([&] { return attempts() >= 3; }, 60s, 250ms), s.serve_log());
    std::int64_t next_us = 0;
    {
        auto st = s.status();
        next_us = st.at("rotation_pending").as_array()[0].as_object().at("next_attempt_us").as_int64();
    }
    s.pg.start_again();
    const auto back_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
    REQUIRE_MESSAGE(wait_until([&] { return s.rotation_done_for(id); }, 60s, 250ms), s.serve_log());
    const auto done_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
    MESSAGE("backend back " << (next_us - back_us) / 1000 << " ms before the next scheduled attempt; rotation done "
                            << (done_us - back_us) / 1000 << " ms after the backend came back");
    CHECK(done_us < next_us);  // done before the backoff would have retried
    CHECK(s.serve_log().find("accepts connections; retrying now") != std::string::npos);
    CHECK(s.pg.psql_as("app_owner", s.app_password, "app", "select 1").exit_code != 0);
    CHECK(s.pg.psql_as("app_owner", s.backend_secret(), "app", "select 1").exit_code == 0);
    CHECK(s.account_state() == "used");
}

TEST_CASE("IdP flapping every second for a minute: no emergency; client-caused failures are no IdP evidence") {
    // 500 ms probes, 12 failures in a row (6 s) before unreachable: far longer than one flap's outage.
    Stack s("max_session = \"5m\"\nrotate_on_close = false\n",
            "probe_interval = \"500ms\"\nprobe_timeout = \"300ms\"\nunreachable_after = 12\nhealthy_after = 1\n");
    const std::string pass = s.stage();
    REQUIRE(wait_until([&] { return s.mode() == "normal" && s.status().at("idp").as_object().at("state").as_string() == "healthy"; }, 20s));
    const std::string token = s.idp.device_login_token("alice");
    auto flip = [](std::string t) {
        t[t.size() - 3] = t[t.size() - 3] == 'A' ? 'B' : 'A';
        return t;
    };
    auto unknown_kid = [&](int n) {
        const auto parts = token.substr(token.find('.'));
        const std::string header = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"unknown-" + std::to_string(n) + "\"}";
        return gg::oidc::base64url_encode(gg::as_bytes(header)) + parts;
    };
    std::atomic<bool> done{false};
    std::atomic<int> emergency_seen{0}, client_failures{0}, bg_refused{0};
    std::thread clients([&] {
        for (int n = 0; !done; ++n) {
            // Forged signature, unknown kid, and a break-glass attempt outside an emergency: all refused.
            for (const auto& bad : {flip(token), unknown_kid(n)}) {
                auto r = s.psql({"select 1"}, bad, "", "appdb", "alice");
                if (r.exit_code != 0) ++client_failures;
            }
            auto bg = s.psql({"select 1"}, pass, "INC-13");
            if (bg.exit_code != 0) ++bg_refused;
            std::this_thread::sleep_for(200ms);
        }
    });
    std::thread watcher([&] {
        while (!done) {
            if (s.mode() == "emergency") ++emergency_seen;
            std::this_thread::sleep_for(250ms);
        }
    });
    const auto until = std::chrono::steady_clock::now() + 60s;
    int flaps = 0;
    while (std::chrono::steady_clock::now() < until) {
        s.idp.stop();
        std::this_thread::sleep_for(1s);
        s.idp.restart();
        ++flaps;
        std::this_thread::sleep_for(1s);
    }
    done = true;
    clients.join();
    watcher.join();
    MESSAGE(flaps << " flaps, " << client_failures.load() << " refused forged tokens, " << bg_refused.load()
                  << " refused break-glass attempts");
    CHECK(flaps >= 10);
    CHECK(client_failures.load() >= 10);
    CHECK(emergency_seen.load() == 0);
    CHECK(bg_refused.load() >= 5);
    auto audit = s.gg({"audit", "--event", "idp.health"}).out;
    CHECK_MESSAGE(audit.find("unreachable") == std::string::npos, audit);
    CHECK(s.gg({"audit", "--event", "breakglass.login"}).out.find("\"outcome\":\"ok\"") == std::string::npos);
    // The same counting does declare the emergency when the outage lasts.
    s.idp.stop();
    REQUIRE_MESSAGE(wait_until([&] { return s.mode() == "emergency"; }, 30s, 200ms), s.serve_log());
    auto bg = s.psql({"select 'in'"}, pass, "INC-13");
    CHECK_MESSAGE(bg.exit_code == 0, bg.describe());
}

TEST_SUITE_END();
