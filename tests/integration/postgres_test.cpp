// The PostgreSQL path end to end: real psql and pgbench through `glassgate serve` to a real
// PostgreSQL 15, with SSO tokens from the real oidc-provider; recordings replayed afterwards.

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "harness/files.hpp"
#include "harness/idp_peer.hpp"
#include "harness/glassgate_cli.hpp"
#include "harness/net.hpp"
#include "harness/pg_wire.hpp"
#include "harness/postgres_peer.hpp"
#include "harness/process.hpp"
#include "pg_stack.hpp"

using namespace gg::harness;
using namespace std::chrono_literals;

namespace {

/// PostgreSQL + IdP + glassgate serve with one target "appdb".
struct Stack : PgStack {
    std::string alice_token;

    explicit Stack(const std::string& target_extra = "max_session = \"8h\"\nredact_params_for = [\"glassgate_redact_me\"]\n") {
        write_config({.listen_extra = "postgres_auth_timeout = \"6s\"\n", .tables = appdb_table() + target_extra});
        set_secret("appdb");
        start_serve();
        alice_token = idp.device_login_token("alice");
    }

    [[nodiscard]] std::string conninfo(const std::string& user = "alice", const std::string& db = "appdb",
                                       const std::string& sslmode = "require") const {
        return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " dbname=" + db + " sslmode=" + sslmode;
    }
    /// psql through the proxy (unaligned, tuples only, stop on error).
    [[nodiscard]] RunResult psql(const std::string& sql, const std::string& password, const std::string& user = "alice",
                                 const std::string& db = "appdb", const std::string& sslmode = "require",
                                 std::chrono::milliseconds timeout = 60s) const {
        return run({"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo(user, db, sslmode), "-c", sql},
                   {.env = {.set = {{"PGPASSWORD", password}}}, .timeout = timeout});
    }
    /// psql directly to the backend as app_owner.
    [[nodiscard]] RunResult direct(const std::string& sql) const {
        return pg.psql_as("app_owner", app_password, "app", sql);
    }
};

Stack& shared() {
    static Stack s;
    return s;
}

/// Raw bytes to the proxy; returns what came back before the proxy closed (or `wait` passed).
std::string raw_exchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds wait = 3s) {
    const int fd = connect_loopback(port);
    if (fd < 0) return "<connect failed>";
    (void)!::write(fd, bytes.data(), bytes.size());
    timeval tv{static_cast<time_t>(wait.count() / 1000), static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[4096];
    for (;;) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0) out += "<timeout>";
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}


/// A PostgreSQL 17 style client with `sslnegotiation=direct`: TLS from the first byte (optionally
/// with ALPN "postgresql"), then the startup packet, the token as password and one query. Returns
/// what the server sent after the handshake (message types and text), or "<tls: ...>" when the
/// handshake itself failed.
std::string direct_tls_session(std::uint16_t port, bool alpn, const std::string& token, const std::string& sql) {
    const int fd = connect_loopback(port);
    if (fd < 0) return "<connect failed>";
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    static const unsigned char proto[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
    if (alpn) SSL_set_alpn_protos(ssl, proto, sizeof proto);
    std::string out;
    auto finish = [&] {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        ::close(fd);
        return out;
    };
    if (SSL_connect(ssl) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        out = std::string("<tls: ") + err + ">";
        return finish();
    }
    auto send = [&](const std::string& b) { return SSL_write(ssl, b.data(), static_cast<int>(b.size())) > 0; };
    std::string params = std::string("user\0alice\0database\0appdb\0", 26) + '\0';
    send(be32(static_cast<std::uint32_t>(8 + params.size())) + be32(196608) + params);
    // Read messages; answer the password request with the token and ReadyForQuery with the query.
    std::string in;
    bool queried = false;
    for (;;) {
        char buf[4096];
        const int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        while (in.size() >= 5) {
            const std::uint32_t len = (std::uint32_t(std::uint8_t(in[1])) << 24) | (std::uint32_t(std::uint8_t(in[2])) << 16) |
                                      (std::uint32_t(std::uint8_t(in[3])) << 8) | std::uint32_t(std::uint8_t(in[4]));
            if (in.size() < 1 + len) break;
            const char type = in[0];
            const std::string body = in.substr(5, len - 4);
            in.erase(0, 1 + len);
            out += type;
            if (type == 'E' || type == 'C') {
                for (char c : body) out += (c == '\0' ? '|' : c);
            } else if (type == 'D') {
                // Column count, then per column a length (-1: NULL) and the text value.
                std::size_t at = 2;
                for (bool first = true; at + 4 <= body.size(); first = false) {
                    const auto b = [&](std::size_t i) { return std::uint32_t(std::uint8_t(body[at + i])); };
                    const std::uint32_t clen = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
                    at += 4;
                    if (!first) out += '|';
                    if (clen == 0xFFFFFFFFu) continue;
                    out += body.substr(at, clen);
                    at += clen;
                }
            }
            out += '\n';
            if (type == 'R' && body.size() >= 4 && body[3] == 3) {
                send("p" + be32(static_cast<std::uint32_t>(4 + token.size() + 1)) + token + std::string(1, '\0'));
            } else if (type == 'Z' && !queried) {
                queried = true;
                send("Q" + be32(static_cast<std::uint32_t>(4 + sql.size() + 1)) + sql + std::string(1, '\0'));
            } else if (type == 'Z') {
                send("X" + be32(4));
            }
        }
    }
    return finish();
}
}  // namespace

TEST_SUITE_BEGIN("postgres");

TEST_CASE("query results through the proxy are identical to a direct connection") {
    auto& s = shared();
    const std::string sql =
        "select g, md5(g::text), now() is not null, repeat('x', g % 7) from generate_series(1, 500) g order by g";
    auto via = s.psql(sql, s.alice_token);
    REQUIRE_MESSAGE(via.exit_code == 0, via.describe() << s.serve_log());
    auto direct = s.direct(sql);
    REQUIRE(direct.exit_code == 0);
    CHECK(via.out == direct.out);
    CHECK(via.out.size() > 10000);
    // The connection reaches the configured database as the backend user, whatever the client's name.
    CHECK(s.psql("select current_user || ' ' || current_database()", s.alice_token).out == "app_owner app\n");
    // target/database picks another database the target allows.
    CHECK(s.psql("select current_database()", s.alice_token, "alice", "appdb/postgres").out == "postgres\n");
}

TEST_CASE("a multi-statement transaction, COPY in and out") {
    auto& s = shared();
    auto r = s.psql("create table if not exists t_tx (id int primary key, v text); truncate t_tx;"
                    "begin; insert into t_tx values (1, 'a'); insert into t_tx values (2, 'b'); commit;"
                    "select count(*) from t_tx", s.alice_token);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    CHECK(r.out == "2\n");
    auto rollback = s.psql("begin; insert into t_tx values (3, 'c'); rollback; select count(*) from t_tx", s.alice_token);
    CHECK(rollback.out == "2\n");

    std::string rows;
    for (int i = 100; i < 1100; ++i) rows += std::to_string(i) + "\tvalue " + std::to_string(i) + "\n";
    auto in = run({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", s.conninfo(), "-c", "\\copy t_tx from stdin"},
                  {.env = {.set = {{"PGPASSWORD", s.alice_token}}}, .stdin_data = rows, .timeout = 60s});
    REQUIRE_MESSAGE(in.exit_code == 0, in.describe());
    CHECK(s.direct("select count(*) from t_tx").out == "1002\n");
    auto out = s.psql("\\copy (select * from t_tx where id >= 100 order by id) to stdout", s.alice_token);
    REQUIRE(out.exit_code == 0);
    CHECK(out.out == rows);
}

TEST_CASE("pgbench: initialise (COPY), simple, extended and prepared protocol") {
    auto& s = shared();
    auto env = EnvChanges{.set = {{"PGPASSWORD", s.alice_token}}};
    auto init = run({"pgbench", "-i", "-s", "1", "-q", s.conninfo()}, {.env = env, .timeout = 120s});
    REQUIRE_MESSAGE(init.exit_code == 0, init.describe());
    for (std::string mode : {"simple", "extended", "prepared"}) {
        auto b = run({"pgbench", "-S", "-M", mode, "-c", "2", "-t", "100", "-n", s.conninfo()}, {.env = env, .timeout = 120s});
        CHECK_MESSAGE(b.exit_code == 0, mode << ": " << b.describe());
        CHECK(b.out.find("number of transactions actually processed: 200/200") != std::string::npos);
    }
    auto tpcb = run({"pgbench", "-c", "2", "-t", "50", "-n", s.conninfo()}, {.env = env, .timeout = 120s});
    CHECK_MESSAGE(tpcb.exit_code == 0, tpcb.describe());
}

TEST_CASE("psql's cancel (SIGINT during pg_sleep) reaches the backend through glassgate") {
    auto& s = shared();
    auto start = std::chrono::steady_clock::now();
    auto r = run({"timeout", "-s", "INT", "2", "psql", "-X", s.conninfo(), "-c", "select pg_sleep(30)"},
                 {.env = {.set = {{"PGPASSWORD", s.alice_token}}}, .timeout = 40s});
    CHECK(std::chrono::steady_clock::now() - start < 15s);
    CHECK_MESSAGE(r.err.find("canceling statement due to user request") != std::string::npos, r.describe());
}

TEST_CASE("direct TLS (PostgreSQL 17 sslnegotiation=direct): with ALPN served, without ALPN refused") {
    auto& s = shared();
    // One line per message: its type, then the text of E/D/C bodies.
    auto has = [](const std::string& out, const std::string& line_start) {
        return out.rfind(line_start, 0) == 0 || out.find("\n" + line_start) != std::string::npos;
    };
    const auto served = direct_tls_session(s.port, true, s.alice_token, "select 40 + 2 as answer");
    CHECK_MESSAGE(has(served, "D42"), served);
    CHECK_MESSAGE(has(served, "CSELECT 1"), served);
    CHECK_MESSAGE(!has(served, "E"), served);
    // Without ALPN the connection could have been meant for another protocol: refused, as PostgreSQL 17 does.
    const auto refused = direct_tls_session(s.port, false, s.alice_token, "select 1");
    CHECK_MESSAGE(has(refused, "E"), refused);
    CHECK_MESSAGE(refused.find("without ALPN") != std::string::npos, refused);
    CHECK_MESSAGE(!has(refused, "D"), refused);
    CHECK(s.serve_log().find("direct TLS without ALPN") != std::string::npos);
}

TEST_CASE("a cancel request with a wrong key does nothing") {
    auto& s = shared();
    std::thread bogus([&] {
        std::this_thread::sleep_for(700ms);
        for (std::uint32_t pid = 1; pid < 20; ++pid) {
            (void)raw_exchange(s.port, be32(16) + be32(80877102) + be32(pid) + be32(0xdeadbeef), 200ms);
        }
    });
    auto r = s.psql("select pg_sleep(2); select 'survived'", s.alice_token);
    bogus.join();
    CHECK_MESSAGE(r.out == "\nsurvived\n", r.describe());
}

TEST_CASE("refusals: bad token, unknown target, identity not allowed, plaintext, replication") {
    auto& s = shared();
    auto bad = s.psql("select 1", "not-a-token");
    CHECK(bad.exit_code != 0);
    CHECK(bad.err.find("password authentication failed") != std::string::npos);
    auto forged = s.alice_token;
    forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
    CHECK(s.psql("select 1", forged).err.find("password authentication failed") != std::string::npos);
    auto unknown = s.psql("select 1", s.alice_token, "alice", "nodb");
    CHECK(unknown.err.find("no PostgreSQL target \"nodb\"") != std::string::npos);
    auto bob = s.psql("select 1", s.idp.device_login_token("bob"), "bob");
    CHECK(bob.err.find("\"bob\" is not allowed to use target \"appdb\"") != std::string::npos);
    auto mismatch = s.psql("select 1", s.alice_token, "bob");
    CHECK(mismatch.err.find("is for \"alice\", not \"bob\"") != std::string::npos);
    auto plain = s.psql("select 1", s.alice_token, "alice", "appdb", "disable");
    CHECK(plain.err.find("TLS required") != std::string::npos);
    auto repl = run({"psql", "-X", s.conninfo() + " replication=database", "-c", "IDENTIFY_SYSTEM"},
                    {.env = {.set = {{"PGPASSWORD", s.alice_token}}}, .timeout = 20s});
    CHECK(repl.err.find("replication connections are not allowed") != std::string::npos);
    auto db = s.psql("select 1", s.alice_token, "alice", "appdb/template1");
    CHECK(db.err.find("does not allow database \"template1\"") != std::string::npos);
    // Every refusal is audited.
    auto audit = run({GG_BINARY, "audit", "--event", "auth.denied", "--config", s.config()});
    REQUIRE(audit.exit_code == 0);
    CHECK(std::count(audit.out.begin(), audit.out.end(), '\n') >= 7);
    CHECK(audit.out.find("not in the target's allow list") != std::string::npos);
}

TEST_CASE("bad startup packets are refused without harming the proxy") {
    auto& s = shared();
    // 7-byte length, 10001-byte length, 2^31 length, missing terminator, protocol 2.0.
    CHECK(raw_exchange(s.port, be32(7) + be32(196608)).find("invalid startup packet") != std::string::npos);
    CHECK(raw_exchange(s.port, be32(10001) + be32(196608)).find("invalid startup packet") != std::string::npos);
    CHECK(raw_exchange(s.port, be32(0x80000000u) + be32(196608)).find("invalid startup packet") != std::string::npos);
    CHECK(raw_exchange(s.port, be32(17) + be32(196608) + std::string("user\0bob", 9)).find("invalid startup packet") != std::string::npos);
    CHECK(raw_exchange(s.port, be32(8) + be32(0x00020000)).find("invalid startup packet") != std::string::npos);
    // Garbage right behind an SSLRequest (possible injection before the handshake): closed, no 'S'.
    CHECK(raw_exchange(s.port, be32(8) + be32(80877103) + "garbage").empty());
    // A client that disconnects mid-message.
    CHECK(raw_exchange(s.port, be32(80) + be32(196608) + "user", 300ms).find("<timeout>") != std::string::npos);
    // The proxy still serves.
    CHECK(s.psql("select 42", s.alice_token).out == "42\n");
}

TEST_CASE("the recording replays the statements and parameters in order, and verifies") {
    auto& s = shared();
    auto env = EnvChanges{.set = {{"PGPASSWORD", s.alice_token}}};
    REQUIRE(s.psql("select 'first statement'; select 'second statement'", s.alice_token).exit_code == 0);
    auto replay = run({GG_BINARY, "replay", s.newest_sealed_session(), "--config", s.config()});
    REQUIRE_MESSAGE(replay.exit_code == 0, replay.describe());
    auto first = replay.out.find("QUERY    select 'first statement'; select 'second statement'");
    CHECK(first != std::string::npos);
    CHECK(replay.out.find("  row    ?column?='first statement'") != std::string::npos);
    CHECK(replay.out.find("->       SELECT 1") != std::string::npos);
    CHECK(replay.out.find("alice -> appdb (database app)") != std::string::npos);

    // Extended protocol with parameters (pgbench -M prepared binds :aid as $1).
    REQUIRE(run({"pgbench", "-i", "-s", "1", "-q", s.conninfo()}, {.env = env, .timeout = 120s}).exit_code == 0);
    REQUIRE(run({"pgbench", "-S", "-M", "prepared", "-t", "3", "-n", s.conninfo()}, {.env = env, .timeout = 60s}).exit_code == 0);
    auto ext = run({GG_BINARY, "replay", s.newest_sealed_session(), "--config", s.config()});
    CHECK(ext.out.find("PARSE    P_0: SELECT abalance FROM pgbench_accounts WHERE aid = $1;") != std::string::npos);
    CHECK(ext.out.find("BIND     P_0  $1='") != std::string::npos);
    auto verify = run({GG_BINARY, "verify", "--all", "--audit", "--config", s.config()});
    CHECK_MESSAGE(verify.exit_code == 0, verify.out);
}

TEST_CASE("record_rows: the first 100 rows per statement are recorded, the rest counted") {
    auto& s = shared();
    auto r = s.psql("select g as n from generate_series(1, 250) g; select 'after' as tail", s.alice_token);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    CHECK(r.out.find("250\n") != std::string::npos);  // the client gets every row
    auto replay = run({GG_BINARY, "replay", s.newest_sealed_session(), "--config", s.config()});
    REQUIRE_MESSAGE(replay.exit_code == 0, replay.describe());
    CHECK(replay.out.find("  row    n='100'") != std::string::npos);
    CHECK(replay.out.find("  row    n='101'") == std::string::npos);
    const auto note = replay.out.find("150 more row(s) not recorded (record_rows = 100)");
    const auto tag = replay.out.find("->       SELECT 250");
    CHECK_MESSAGE(note != std::string::npos, replay.out);
    CHECK(tag != std::string::npos);
    CHECK(note < tag);
    CHECK(replay.out.find("  row    tail='after'") != std::string::npos);  // the count starts again per statement
}

TEST_CASE("redact_params_for: Bind values of matching statements are recorded redacted, others as sent") {
    auto& s = shared();
    auto env = EnvChanges{.set = {{"PGPASSWORD", s.alice_token}}};
    const auto script = s.dir / "redact.sql";
    // Extended protocol: each statement is Parse + Bind with :secret as $1.
    std::ofstream(script) << "\\set secret 987654321\n"
                          << "select :secret::bigint + 0 as glassgate_redact_me;\n"
                          << "select :secret::bigint + 1 as kept_value;\n";
    auto b = run({"pgbench", "-n", "-M", "extended", "-t", "1", "-f", script.string(), s.conninfo()}, {.env = env, .timeout = 60s});
    REQUIRE_MESSAGE(b.exit_code == 0, b.describe());
    auto replay = run({GG_BINARY, "replay", s.newest_sealed_session(), "--config", s.config()});
    REQUIRE_MESSAGE(replay.exit_code == 0, replay.describe());
    std::vector<std::string> binds;
    std::istringstream in(replay.out);
    for (std::string line; std::getline(in, line);) {
        if (line.find("BIND") != std::string::npos) binds.push_back(line);
    }
    REQUIRE_MESSAGE(binds.size() == 2, replay.out);
    CHECK_MESSAGE(binds[0].find("$1='<redacted: 9 bytes>'") != std::string::npos, binds[0]);
    CHECK_MESSAGE(binds[0].find("987654321") == std::string::npos, binds[0]);
    CHECK_MESSAGE(binds[1].find("$1='987654321'") != std::string::npos, binds[1]);
    // The statements themselves stay visible, and the recording still verifies.
    CHECK(replay.out.find("glassgate_redact_me") != std::string::npos);
    auto verify = run({GG_BINARY, "verify", "--all", "--config", s.config()});
    CHECK_MESSAGE(verify.exit_code == 0, verify.out);
}

TEST_CASE("pool_size: a session that ends at rest leaves its backend connection, reset, to the next one") {
    Stack s("pool_size = 2\npool_idle = \"30s\"\n");
    const std::string idle = "glassgate_postgres_pool_idle{target=\"appdb\"}";
    auto pid_of = [&](const std::string& sql) {
        auto r = s.psql(sql, s.alice_token);
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        std::string last;  // the pid is the last statement's row
        std::istringstream in(r.out);
        for (std::string line; std::getline(in, line);) last = line;
        return last;
    };
    // The first session changes what a session can change, then ends at rest (psql sends Terminate).
    const auto first = pid_of("create temp table scratch(x int); prepare p as select 1; set search_path = nowhere; "
                              "listen somewhere; select pg_advisory_lock(42); select pg_backend_pid()");
    REQUIRE_MESSAGE(wait_until([&] { return s.metric(idle) == 1; }, 20s), s.serve_log());

    // The next session gets that connection, with nothing of the first session left on it.
    auto r = s.psql("select pg_backend_pid(), current_setting('search_path'), (select count(*) from pg_prepared_statements), "
                    "to_regclass('pg_temp.scratch') is null, (select count(*) from pg_listening_channels()), "
                    "(select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())",
                    s.alice_token);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    CHECK(r.out == first + "|\"$user\", public|0|t|0|0\n");
    const auto second = s.newest_sealed_session();
    auto replay = run({GG_BINARY, "replay", second, "--config", s.config()});
    CHECK_MESSAGE(replay.out.find("reusing the idle backend connection of an earlier session (backend pid " + first) !=
                      std::string::npos, replay.out);
    CHECK(replay.out.find("the backend connection is kept for a later session") != std::string::npos);
    REQUIRE(wait_until([&] { return s.metric(idle) == 1; }, 20s));

    // A session that ends inside a transaction does not leave its connection.
    CHECK(pid_of("begin; select pg_backend_pid()") == first);
    (void)s.newest_sealed_session();
    CHECK(s.metric(idle) == 0);
    const auto third = pid_of("select pg_backend_pid()");
    CHECK(third != first);
    CHECK(wait_until([&] { return s.direct("select count(*) from pg_stat_activity where pid = " + first).out == "0\n"; }, 10s));

    // A kept connection the server ends while it is idle is not handed out.
    REQUIRE(wait_until([&] { return s.metric(idle) == 1; }, 20s));
    REQUIRE(s.pg.psql("select pg_terminate_backend(" + third + ")").exit_code == 0);
    REQUIRE(wait_until([&] { return s.pg.psql("select count(*) from pg_stat_activity where pid = " + third).out == "0\n"; }, 10s));
    const auto fourth = pid_of("select pg_backend_pid()");
    CHECK(fourth != third);
    CHECK(s.metric("glassgate_postgres_backend_connections_total{target=\"appdb\",how=\"reused\"}") == 2);
}

TEST_CASE("the time cap warns first, then ends the session with FATAL 57P01") {
    Stack s("max_session = \"5s\"\nwarn_before = \"3s\"\n");
    auto start = std::chrono::steady_clock::now();
    auto r = s.psql("select pg_sleep(20)", s.alice_token);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 12s);
    CHECK(r.exit_code != 0);
    auto warn = r.err.find("this session ends in 3s");
    auto cut = r.err.find("session time limit reached");
    CHECK_MESSAGE(warn != std::string::npos, r.describe());
    CHECK(cut != std::string::npos);
    CHECK(warn < cut);
    const auto id = s.newest_sealed_session();
    REQUIRE(s.session_ids().size() == 1);
    auto show = run({GG_BINARY, "sessions", "show", id, "--config", s.config()});
    CHECK(show.out.find("time_cap") != std::string::npos);
    auto replay = run({GG_BINARY, "replay", id, "--config", s.config()});
    CHECK(replay.out.find("time-cap warning sent") != std::string::npos);
    CHECK(replay.out.find("time cap reached") != std::string::npos);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("postgres");

TEST_CASE("password sso: psql shows the device-code URL, the approval opens the session") {
    auto& s = shared();
    auto log = s.dir / "sso-psql.log";
    auto out = s.dir / "sso-psql.out";
    const std::string cmd = "exec psql -X -A -t '" + s.conninfo() + "' -c 'select current_user' >" + out.string() + " 2>" + log.string();
    auto p = Process::start({.argv = {"sh", "-c", cmd}, .env = {.set = {{"PGPASSWORD", "SSO"}}}}, s.dir / "sso-sh.log");
    const auto shown = wait_for_text(log, "To sign in, open ", ' ', 20s);
    REQUIRE_MESSAGE(shown.has_value(), s.serve_log());
    const std::string uri = *shown;
    CHECK(read_file(log).find("WARNING:") != std::string::npos);
    auto approved = s.idp.approve(uri, "alice");
    REQUIRE_MESSAGE(approved.exit_code == 0, approved.describe());
    auto code = p.wait_for(30s);
    REQUIRE(code.has_value());
    CHECK_MESSAGE(*code == 0, read_file(log));
    CHECK(read_file(out) == "app_owner\n");
}

TEST_CASE("a client that sends nothing is cut off at the pre-authentication deadline (postgres_auth_timeout)") {
    auto& s = shared();  // [listen] postgres_auth_timeout = "6s"
    auto start = std::chrono::steady_clock::now();
    auto got = raw_exchange(s.port, "", 20s);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(got.empty());  // closed without a word, not timed out on our side
    CHECK(took >= 5500ms);
    CHECK(took < 10s);
    CHECK(s.serve_log().find("no startup within 6000 ms; closing") != std::string::npos);
}

TEST_CASE("1000 idle pre-auth connections at once: memory stays bounded, others are served") {
    auto& s = shared();
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    auto rss_kb = [&] {
        std::ifstream st("/proc/" + std::to_string(s.serve.pid()) + "/status");
        for (std::string line; std::getline(st, line);) {
            if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
        }
        return 0L;
    };
    const long before = rss_kb();
    std::vector<int> fds;
    for (int i = 0; i < 1000; ++i) {
        const int fd = connect_loopback(s.port);
        REQUIRE(fd >= 0);
        const std::string partial = be32(64) + be32(196608) + "user";  // a startup packet that never ends
        (void)!::write(fd, partial.data(), partial.size());
        fds.push_back(fd);
    }
    std::this_thread::sleep_for(1s);
    const long during = rss_kb();
    MESSAGE("serve RSS before " << before << " kB, with 1000 pending connections " << during << " kB");
    CHECK(during - before < 100 * 1024);  // < 100 KiB per pending connection (TLS-ready stream included)
    CHECK(s.psql("select 'still serving'", s.alice_token).out == "still serving\n");
    for (int fd : fds) ::close(fd);
}

TEST_SUITE_END();

namespace {

/// A TLS client (Python's ssl module) that signs in with `token`, then sends a Query whose length field
/// says `length` and a kilobyte of it; prints each message the proxy sends back as TYPE:text lines.
/// With `where` = "password" the oversized message is the password packet itself.
RunResult oversized_message_client(std::uint16_t port, const std::string& token, std::uint32_t length,
                                   const std::string& where = "query") {
    static const char* script = R"PY(
import os, socket, ssl, struct, sys
port, length = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(struct.pack("!ii", 8, 80877103))
assert s.recv(1) == b"S"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
buf = b""
def message():
    global buf
    while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
        try:
            chunk = t.recv(65536)
        except (ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            return None
        buf += chunk
    n = 1 + struct.unpack("!I", buf[1:5])[0]
    m, buf = buf[:n], buf[n:]
    return chr(m[0]), m[5:]
params = b"user\0alice\0database\0appdb\0\0"
t.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
m = message()
assert m and m[0] == "R" and m[1] == struct.pack("!i", 3), m
def drain():
    while True:
        m = message()
        if m is None:
            print("closed")
            break
        print(m[0] + ":" + m[1].decode(errors="replace").replace("\0", "|"))
if sys.argv[3] == "password":  # the oversized message is the password packet, before authentication
    t.sendall(b"p" + struct.pack("!I", length) + b"x" * 1024)
    drain()
    sys.exit(0)
pw = os.environ["TOKEN"].encode() + b"\0"
t.sendall(b"p" + struct.pack("!I", 4 + len(pw)) + pw)
while True:
    m = message()
    assert m, "closed before ReadyForQuery"
    if m[0] == "E":
        print("E:" + m[1].decode(errors="replace").replace("\0", "|"))
        sys.exit(3)
    if m[0] == "Z":
        break
print("ready")
sys.stdout.flush()
t.sendall(b"Q" + struct.pack("!I", length) + b"select '" + b"x" * 1024)
drain()
)PY";
    return run({"python3", "-c", script, std::to_string(port), std::to_string(length), where},
               {.env = {.set = {{"TOKEN", token}}}, .timeout = 30s});
}

}  // namespace

TEST_SUITE_BEGIN("postgres");

TEST_CASE("an authenticated client's message above the size cap: FATAL 08P01, the proxy keeps serving") {
    auto& s = shared();
    const auto before = s.session_ids().size();
    // PostgreSQL's own bound (1 GB - 1) + 100: one hundred bytes over the cap; and the largest length a
    // 32-bit field can say. (Messages up to the bound are relayed: see postgres_bulk_test.cpp.)
    for (std::uint32_t length : {(1u << 30) + 99u, 0xFFFFFFFFu}) {
        auto r = oversized_message_client(s.port, s.alice_token, length);
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe() << s.serve_log());
        CHECK(r.out.find("ready\n") != std::string::npos);
        CHECK_MESSAGE(r.out.find("E:SFATAL|VFATAL|C08P01|Minvalid message: message 'Q' of " + std::to_string(length) +
                                 " bytes exceeds the limit of 1073741823") != std::string::npos,
                      r.describe());
        CHECK(r.out.find("closed\n") != std::string::npos);
    }
    // Each was a session that ended as a protocol error, not one that lingers.
    const auto id = s.newest_sealed_session();
    CHECK(s.session_ids().size() == before + 2);
    auto show = run({GG_BINARY, "sessions", "show", id, "--config", s.config()});
    CHECK_MESSAGE(show.out.find("protocol_error") != std::string::npos, show.out);
    // Before authentication the bound is PostgreSQL's for a password packet (65535 bytes).
    auto pre = oversized_message_client(s.port, s.alice_token, 70000, "password");
    REQUIRE_MESSAGE(pre.exit_code == 0, pre.describe());
    CHECK_MESSAGE(pre.out.find("E:SFATAL|VFATAL|C08P01|Minvalid password packet: message 'p' of 70000 bytes exceeds the limit of 65535") !=
                      std::string::npos, pre.describe());
    CHECK(pre.out.find("closed\n") != std::string::npos);
    // The proxy still serves.
    CHECK(s.psql("select 'after the oversized message'", s.alice_token).out == "after the oversized message\n");
}

TEST_CASE("a backend that sends a malformed message: the client gets a clear error, the proxy lives on") {
    // A DataRow whose length field lies (2: shorter than the length field itself), and one that claims
    // 1 GiB (above the cap).
    ScriptedPgBackend fake({"D" + be32(2) + std::string("\0\1", 2), "D" + be32(1u << 30) + std::string("\0\1", 2)});
    Stack s("max_session = \"8h\"\n[[target]]\nname = \"broken\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:" +
            std::to_string(fake.port()) + "\"\ndatabase = \"fake\"\nbackend_user = \"fake_owner\"\ntls = \"disable\"\n" +
            "allow = [\"alice\"]\n");
    auto set = run({GG_BINARY, "secret", "set", "broken", "--config", s.config()}, {.stdin_data = "fake-secret\n"});
    REQUIRE_MESSAGE(set.exit_code == 0, set.describe());
    for (int i = 0; i < 2; ++i) {
        CAPTURE(i);
        auto r = s.psql("select 1", s.alice_token, "alice", "broken", "require", 30s);
        CHECK(r.exit_code != 0);
        CHECK_MESSAGE(r.err.find("FATAL:  glassgate received an invalid message from the database server") != std::string::npos,
                      r.describe() << s.serve_log());
        // The proxy serves the next client, on the real database.
        CHECK(s.psql("select 'still serving'", s.alice_token).out == "still serving\n");
    }
    CHECK(fake.queries_seen() == 2);
    CHECK(fake.password_seen() == "fake-secret");  // the stored credential, never the client's token
    // The log says what was wrong; the sessions ended as protocol errors.
    const auto log = s.serve_log();
    CHECK(log.find("malformed message from the backend: message 'D' of invalid length 2") != std::string::npos);
    CHECK_MESSAGE(log.find("malformed message from the backend: message 'D' of 1073741824 bytes exceeds the limit") !=
                      std::string::npos, log);
    int protocol_errors = 0;
    for (const auto& id : s.session_ids()) {
        auto show = run({GG_BINARY, "sessions", "show", id, "--config", s.config()});
        if (show.out.find("protocol_error") != std::string::npos) ++protocol_errors;
    }
    CHECK(protocol_errors == 2);
}

TEST_SUITE_END();
