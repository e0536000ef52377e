// Bulk data on the PostgreSQL path, end to end: pg_dump / pg_restore / psql -f of a million-row table,
// \copy of hundreds of megabytes in both directions, multi-megabyte values, parameters and query texts,
// a slow reader (the proxy's memory stays bounded), LISTEN/NOTIFY and cancel with the backend's real
// pid, large objects (FunctionCall), pipelined extended-protocol batches, COPY BOTH refused, and the
// recording keys record_value_bytes / record_copy. Real clients (psql, pg_dump, pg_restore, pgbench, and
// libpq itself where psql cannot play the part) through `glassgate serve` to PostgreSQL 15, with SSO
// tokens from the real oidc-provider. Every case ends with `glassgate verify --all`.

#include <doctest/doctest.h>

#include <libpq-fe.h>
#include <libpq/libpq-fs.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
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
namespace fs = std::filesystem;

namespace {

// ---- digests, wire bytes, text helpers ---------------------------------------------------------------

class Digest {
public:
    explicit Digest(const EVP_MD* md) : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, md, nullptr); }
    ~Digest() { EVP_MD_CTX_free(ctx_); }
    Digest(const Digest&) = delete;
    Digest& operator=(const Digest&) = delete;
    void update(std::string_view s) { EVP_DigestUpdate(ctx_, s.data(), s.size()); }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx_, md, &n);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (unsigned int i = 0; i < n; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
};

std::string sha256_hex(std::string_view s) {
    Digest d(EVP_sha256());
    d.update(s);
    return d.hex();
}
std::string md5_hex(std::string_view s) {
    Digest d(EVP_md5());
    d.update(s);
    return d.hex();
}

struct FileDigest {
    std::uintmax_t size = 0;
    std::string sha256;
};
/// Size and SHA-256 of a file, read in 1 MiB pieces (files here reach hundreds of MB).
FileDigest digest_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    Digest d(EVP_sha256());
    FileDigest out;
    std::string buf(1 << 20, '\0');
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        if (n == 0) break;
        d.update(std::string_view(buf.data(), n));
        out.size += n;
    }
    out.sha256 = d.hex();
    return out;
}

/// True when one line of `text` contains every one of `parts`.
bool has_line(const std::string& text, std::initializer_list<std::string> parts) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (std::all_of(parts.begin(), parts.end(), [&](const std::string& p) { return line.find(p) != std::string::npos; })) {
            return true;
        }
    }
    return false;
}
/// The lines of `text` that contain `needle` (each cut at 300 characters), for failure messages.
std::string lines_with(const std::string& text, const std::string& needle) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.find(needle) != std::string::npos) out += line.substr(0, 300) + "\n";
    }
    return out.empty() ? "(no line with \"" + needle + "\")\n" : out;
}
/// The data lines of `COPY <table> ... FROM stdin;` in a plain dump: everything after that line up to
/// the `\.` line (the concatenated CopyData payloads pg_dump received).
std::optional<std::string> copy_block(const std::string& dump, const std::string& table) {
    auto at = dump.find("\nCOPY " + table + " ");
    if (at == std::string::npos) return std::nullopt;
    const auto start = dump.find('\n', at + 1);
    if (start == std::string::npos) return std::nullopt;
    const auto end = dump.find("\n\\.\n", start);
    if (end == std::string::npos) return std::nullopt;
    return dump.substr(start + 1, end - start);
}
/// Deterministic pseudo-random lower-case letters.
std::string letters(std::size_t n, std::uint32_t seed) {
    std::string s(n, 'a');
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x = x * 1664525u + 1013904223u;
        c = static_cast<char>('a' + (x >> 24) % 26);
    }
    return s;
}
std::string last_line(const std::string& text) {
    std::string last;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) last = line;
    }
    return last;
}

// ---- libpq -------------------------------------------------------------------------------------------

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

/// One libpq connection (blocking).
class PgConn {
public:
    explicit PgConn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {}
    ~PgConn() {
        if (c_) PQfinish(c_);
    }
    PgConn(const PgConn&) = delete;
    PgConn& operator=(const PgConn&) = delete;
    [[nodiscard]] PGconn* get() const { return c_; }
    [[nodiscard]] bool ok() const { return PQstatus(c_) == CONNECTION_OK; }
    [[nodiscard]] std::string error() const { return PQerrorMessage(c_); }
    Result exec(const std::string& sql) const { return {PQexec(c_, sql.c_str()), &PQclear}; }
    /// Simple protocol; the first value of the first row, "<ERROR ...>" otherwise.
    std::string value(const std::string& sql) const { return first_value(exec(sql)); }
    /// Extended protocol with text parameters.
    Result exec_params(const std::string& sql, const std::vector<std::string>& params) const {
        std::vector<const char*> v;
        for (const auto& p : params) v.push_back(p.c_str());
        return {PQexecParams(c_, sql.c_str(), static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0), &PQclear};
    }
    std::string first_value(const Result& r) const {
        const auto st = PQresultStatus(r.get());
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            return std::string("<ERROR ") + PQresStatus(st) + ": " + PQresultErrorMessage(r.get()) + " / " + error() + ">";
        }
        if (st == PGRES_COMMAND_OK || PQntuples(r.get()) < 1) return std::string("<") + PQcmdStatus(r.get()) + ">";
        return std::string(PQgetvalue(r.get(), 0, 0), static_cast<std::size_t>(PQgetlength(r.get(), 0, 0)));
    }

private:
    PGconn* c_;
};

struct Notification {
    std::string channel;
    int be_pid = 0;
    std::string payload;
};
/// Waits for the next notification on `c` (one may already be queued).
std::optional<Notification> wait_notification(PGconn* c, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (PQconsumeInput(c) == 0) return std::nullopt;
        if (PGnotify* n = PQnotifies(c)) {
            Notification out{n->relname, n->be_pid, n->extra};
            PQfreemem(n);
            return out;
        }
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        pollfd p{PQsocket(c), POLLIN, 0};
        (void)::poll(&p, 1, 100);
    }
}

/// A raw CancelRequest (plain TCP, as libpq sends it) to 127.0.0.1:port.
void send_cancel(std::uint16_t port, std::uint32_t pid, std::uint32_t key) {
    const int fd = connect_loopback(port);
    if (fd < 0) return;
    const std::string m = be32(16) + be32(80877102) + be32(pid) + be32(key);
    (void)!::write(fd, m.data(), m.size());
    char b[16];
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)!::read(fd, b, sizeof b);  // the proxy closes it
    ::close(fd);
}

// ---- the stack ---------------------------------------------------------------------------------------

/// PostgreSQL + IdP + glassgate serve with one target "appdb" (database app, owner app_owner) that also
/// allows the databases restore_plain and restore_custom. `target_extra` is appended to the target's
/// table (more keys, or further [[target]] tables).
struct Stack : PgStack {
    std::string alice_token;
    // Made once per stack by the first case that needs them.
    bool big_ready = false;
    std::optional<fs::path> plain_dump;
    std::string plain_dump_session;

    explicit Stack(const std::string& target_extra = "max_session = \"8h\"\n", const std::string& server_extra = "")
        : PgStack({.dir_prefix = "gg-bulk",
                   .databases = {"restore_plain", "restore_custom"},
                   .log_lines = 60,
                   .seal_timeout = 120s}) {
        write_config({.server_extra = server_extra, .tables = appdb_table() + target_extra});
        set_secret("appdb");
        start_serve();
        alice_token = idp.device_login_token("alice");
    }

    /// Connection string through the proxy (no password: PGPASSWORD carries the token).
    [[nodiscard]] std::string conninfo(const std::string& db = "appdb") const {
        return "host=127.0.0.1 port=" + std::to_string(port) + " user=alice dbname=" + db + " sslmode=require";
    }
    /// Connection string through the proxy with the token as password (for libpq in the test).
    [[nodiscard]] std::string libpq_conninfo(const std::string& db = "appdb") const {
        return conninfo(db) + " password=" + alice_token;
    }
    /// Connection string straight to the backend as app_owner.
    [[nodiscard]] std::string direct_conninfo(const std::string& db = "app") const {
        return pg.conninfo(db, "app_owner", app_password);
    }
    [[nodiscard]] EnvChanges token_env() const { return {.set = {{"PGPASSWORD", alice_token}}}; }
    /// psql through the proxy (unaligned, tuples only, stop on error), one or more -c commands.
    [[nodiscard]] RunResult psql(const std::vector<std::string>& commands, const std::string& db = "appdb",
                                 std::chrono::milliseconds timeout = 120s, bool quiet = true) const {
        std::vector<std::string> argv = {"psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo(db)};
        if (quiet) argv.insert(argv.begin() + 1, "-q");
        for (const auto& c : commands) {
            argv.push_back("-c");
            argv.push_back(c);
        }
        return run(argv, {.env = token_env(), .timeout = timeout});
    }
    /// psql straight to the backend as app_owner.
    [[nodiscard]] RunResult direct(const std::string& sql, const std::string& db = "app") const {
        return pg.psql_as("app_owner", app_password, db, sql);
    }
    [[nodiscard]] RunResult replay(const std::string& id) const {
        return run({GG_BINARY, "replay", id, "--config", config()}, {.timeout = 300s});
    }
    /// Every recording verifies: exit 0 and nothing "broken".
    void verify_all() const {
        auto v = run({GG_BINARY, "verify", "--all", "--config", config()}, {.timeout = 300s});
        CHECK_MESSAGE(v.exit_code == 0, v.describe());
        CHECK_MESSAGE(v.out.find("broken") == std::string::npos, lines_with(v.out, "broken"));
    }

    /// Table big: 1,000,000 rows (id, md5(id)), ~41 MB as COPY text; deterministic.
    void ensure_big() {
        if (big_ready) return;
        auto r = direct("drop table if exists big; create table big as select g as id, md5(g::text) as h "
                        "from generate_series(1, 1000000) g; select count(*) from big");
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
        REQUIRE(r.out == "1000000\n");
        big_ready = true;
    }
    /// `pg_dump -t big` (plain) through glassgate, once; remembers the file and the session.
    const fs::path& dump_big_plain() {
        ensure_big();
        if (plain_dump) return *plain_dump;
        const auto file = dir / "big-via.sql";
        auto r = run({"pg_dump", "-t", "big", "-f", file.string(), conninfo()}, {.env = token_env(), .timeout = 300s});
        REQUIRE_MESSAGE(r.exit_code == 0, r.describe() << serve_log());
        plain_dump_session = newest_sealed_session();
        plain_dump = file;
        return *plain_dump;
    }
};

Stack& shared() {
    static Stack s;
    return s;
}

/// Count and md5 of table big's content, in the given database on the backend directly.
std::string big_fingerprint(const Stack& s, const std::string& db) {
    auto r = s.direct("select count(*) || ' ' || md5(string_agg(id::text || ':' || h, ',' order by id)) from big", db);
    return r.exit_code == 0 ? r.out : r.describe();
}

}  // namespace

TEST_SUITE_BEGIN("postgres-bulk");

TEST_CASE("pg_dump of a million-row table through glassgate: COPY data identical to a direct dump, replay has its size and SHA-256") {
    auto& s = shared();
    const auto& via_file = s.dump_big_plain();
    const auto direct_file = s.dir / "big-direct.sql";
    auto d = run({"pg_dump", "-t", "big", "-f", direct_file.string(), s.direct_conninfo()}, {.timeout = 300s});
    REQUIRE_MESSAGE(d.exit_code == 0, d.describe());

    const auto via = copy_block(read_file(via_file), "public.big");
    const auto direct = copy_block(read_file(direct_file), "public.big");
    REQUIRE_MESSAGE(via.has_value(), tail_file(via_file, 5));
    REQUIRE(direct.has_value());
    MESSAGE("COPY block of big: " << via->size() << " bytes through glassgate, " << direct->size() << " direct");
    CHECK(via->size() > 35'000'000);
    const bool identical = *via == *direct;
    CHECK_MESSAGE(identical, "the COPY data of the dump through glassgate differs from the direct dump");
    CHECK(std::count(via->begin(), via->end(), '\n') == 1'000'000);

    // The replay of the pg_dump session: one line for the COPY with its size, message count (PostgreSQL
    // sends one CopyData per row) and the SHA-256 of exactly the data pg_dump wrote.
    auto replay = s.replay(s.plain_dump_session);
    REQUIRE_MESSAGE(replay.exit_code == 0, replay.describe());
    const std::string expect = "server sent " + std::to_string(via->size()) + " bytes in 1000000 messages, sha256 " + sha256_hex(*via);
    CHECK_MESSAGE(has_line(replay.out, {"COPY", expect}), "expected a line with: " << expect << "\n" << lines_with(replay.out, "COPY"));
    CHECK(has_line(replay.out, {"QUERY", "COPY public.big"}));  // pg_dump's statement itself
    s.verify_all();
}

TEST_CASE("restore through glassgate: a plain dump with psql -f, a custom-format dump with pg_restore") {
    auto& s = shared();
    const auto& plain = s.dump_big_plain();
    const auto source = big_fingerprint(s, "app");
    REQUIRE_MESSAGE(source.rfind("1000000 ", 0) == 0, source);

    // Plain: psql -f into another database the target allows (appdb/restore_plain).
    REQUIRE(s.direct("drop table if exists big", "restore_plain").exit_code == 0);
    auto p = run({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", plain.string(), s.conninfo("appdb/restore_plain")},
                 {.env = s.token_env(), .timeout = 300s});
    REQUIRE_MESSAGE(p.exit_code == 0, p.describe() << s.serve_log());
    CHECK(big_fingerprint(s, "restore_plain") == source);

    // Custom format: pg_dump -Fc through glassgate, pg_restore -d <conninfo> through glassgate.
    const auto custom = s.dir / "big.dump";
    auto dump = run({"pg_dump", "-Fc", "-t", "big", "-f", custom.string(), s.conninfo()}, {.env = s.token_env(), .timeout = 300s});
    REQUIRE_MESSAGE(dump.exit_code == 0, dump.describe() << s.serve_log());
    REQUIRE(s.direct("drop table if exists big", "restore_custom").exit_code == 0);
    auto restore = run({"pg_restore", "--exit-on-error", "-d", s.conninfo("appdb/restore_custom"), custom.string()},
                       {.env = s.token_env(), .timeout = 300s});
    REQUIRE_MESSAGE(restore.exit_code == 0, restore.describe() << s.serve_log());
    CHECK(big_fingerprint(s, "restore_custom") == source);
    // And read back through glassgate too.
    auto count = s.psql({"select count(*) from big"}, "appdb/restore_custom");
    CHECK_MESSAGE(count.out == "1000000\n", count.describe());
    s.verify_all();
}

TEST_CASE("\\copy to a file (200 MB) and from a file (24 MB) through glassgate") {
    auto& s = shared();
    // COPY OUT: ~200 MB, distinct rows; the same \copy directly for comparison.
    const std::string out_sql =
        "\\copy (select g || ' ' || repeat(md5(g::text), 313) from generate_series(1, 20000) g) to '";
    const auto via_file = s.dir / "out-via.txt";
    const auto direct_file = s.dir / "out-direct.txt";
    auto via = s.psql({out_sql + via_file.string() + "'"}, "appdb", 300s);
    REQUIRE_MESSAGE(via.exit_code == 0, via.describe() << s.serve_log());
    const auto out_session = s.newest_sealed_session();
    auto direct = run({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", s.direct_conninfo(), "-c", out_sql + direct_file.string() + "'"},
                      {.timeout = 300s});
    REQUIRE_MESSAGE(direct.exit_code == 0, direct.describe());
    const auto v = digest_file(via_file);
    const auto d = digest_file(direct_file);
    MESSAGE("\\copy out: " << v.size << " bytes through glassgate, " << d.size << " direct");
    CHECK(v.size >= 200'000'000);
    CHECK(v.size == d.size);
    CHECK(v.sha256 == d.sha256);
    fs::remove(direct_file);
    fs::remove(via_file);
    auto replay = s.replay(out_session);
    REQUIRE_MESSAGE(replay.exit_code == 0, replay.describe());
    const std::string expect_out = "server sent " + std::to_string(d.size) + " bytes in 20000 messages, sha256 " + d.sha256;
    CHECK_MESSAGE(has_line(replay.out, {"COPY", expect_out}), "expected: " << expect_out << "\n" << lines_with(replay.out, "COPY"));

    // COPY IN: 500,000 rows of id TAB 40 letters (~24 MB) from a file.
    const auto in_file = s.dir / "in.txt";
    std::string rows;
    std::string agg;
    for (int i = 1; i <= 500'000; ++i) {
        const auto v40 = letters(40, static_cast<std::uint32_t>(i));
        rows += std::to_string(i) + "\t" + v40 + "\n";
        if (i > 1) agg += ',';
        agg += std::to_string(i) + ":" + v40;
    }
    write_file(in_file, rows);
    REQUIRE(rows.size() >= 20'000'000);
    REQUIRE(s.direct("drop table if exists t_in; create table t_in (id int, v text)").exit_code == 0);
    auto in = s.psql({"\\copy t_in from '" + in_file.string() + "'"}, "appdb", 300s);
    REQUIRE_MESSAGE(in.exit_code == 0, in.describe() << s.serve_log());
    const auto in_session = s.newest_sealed_session();
    auto check = s.direct("select count(*) || ' ' || md5(string_agg(id::text || ':' || v, ',' order by id)) from t_in");
    CHECK(check.out == "500000 " + md5_hex(agg) + "\n");
    auto replay_in = s.replay(in_session);
    REQUIRE_MESSAGE(replay_in.exit_code == 0, replay_in.describe());
    const std::string sent = "client sent " + std::to_string(rows.size()) + " bytes in ";
    const std::string sha = "messages, sha256 " + sha256_hex(rows);
    CHECK_MESSAGE(has_line(replay_in.out, {"COPY", sent, sha}), "expected: " << sent << "<M> " << sha << "\n"
                                                                             << lines_with(replay_in.out, "COPY"));
    fs::remove(in_file);
    s.verify_all();
}

TEST_CASE("5 MB values: a result value, a bind parameter and a query text; replay shows the cut messages' size and SHA-256") {
    auto& s = shared();
    constexpr std::size_t n = 5'000'000;
    // A 5 MB result value through psql.
    auto r = s.psql({"select repeat('x', 5000000)", "select length(repeat('x', 5000000))"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe() << s.serve_log());
    CHECK(r.out.size() == n + 1 + 8);
    CHECK(std::count(r.out.begin(), r.out.end(), 'x') == static_cast<std::ptrdiff_t>(n));
    CHECK(r.out.substr(r.out.size() > 8 ? r.out.size() - 8 : 0) == "5000000\n");
    const auto psql_session = s.newest_sealed_session();
    // The DataRow as the backend sent it: one column of 5,000,000 bytes.
    const auto row = wire('D', be16(1) + be32(n) + std::string(n, 'x'));
    auto replay = s.replay(psql_session);
    REQUIRE_MESSAGE(replay.exit_code == 0, replay.describe());
    CHECK_MESSAGE(has_line(replay.out, {std::to_string(row.size()) + "-byte message", "sha256 " + sha256_hex(row)}),
                  "expected a DataRow of " << row.size() << " bytes, sha256 " << sha256_hex(row) << "\n"
                                           << lines_with(replay.out, "byte message"));

    // A 5 MB bind parameter and a 5 MB query text, through libpq.
    REQUIRE(s.direct("drop table if exists blobs; create table blobs (id int primary key, v text)").exit_code == 0);
    const auto value = letters(n, 1);
    const auto value2 = letters(n, 2);
    const std::string insert_sql = "insert into blobs values (1, $1)";
    const std::string text_sql = "insert into blobs values (2, '" + value2 + "') returning length(v)";
    {
        PgConn c(s.libpq_conninfo());
        REQUIRE_MESSAGE(c.ok(), c.error() << s.serve_log());
        auto ins = c.exec_params(insert_sql, {value});
        CHECK_MESSAGE(PQresultStatus(ins.get()) == PGRES_COMMAND_OK, c.first_value(ins));
        auto back = c.exec_params("select v, length(v), md5(v) from blobs where id = $1", {"1"});
        REQUIRE_MESSAGE(PQresultStatus(back.get()) == PGRES_TUPLES_OK, c.first_value(back));
        REQUIRE(PQntuples(back.get()) == 1);
        CHECK(static_cast<std::size_t>(PQgetlength(back.get(), 0, 0)) == n);
        const bool same = std::string_view(PQgetvalue(back.get(), 0, 0), static_cast<std::size_t>(PQgetlength(back.get(), 0, 0))) == value;
        CHECK_MESSAGE(same, "the 5 MB value read back differs from the one bound");
        CHECK(std::string(PQgetvalue(back.get(), 0, 1)) == "5000000");
        CHECK(std::string(PQgetvalue(back.get(), 0, 2)) == md5_hex(value));
        CHECK(c.value(text_sql) == "5000000");
        CHECK(c.value("select length('" + value + "')") == "5000000");
        CHECK(c.value("select md5(v) from blobs where id = 2") == md5_hex(value2));
    }
    CHECK(s.direct("select md5(v) from blobs where id = 1").out == md5_hex(value) + "\n");
    const auto libpq_session = s.newest_sealed_session();
    auto replay2 = s.replay(libpq_session);
    REQUIRE_MESSAGE(replay2.exit_code == 0, replay2.describe());
    // Bind as libpq builds it for PQexecParams: unnamed portal and statement, no format codes, one text
    // parameter, one result format (text).
    const auto bind = wire('B', std::string("\0\0", 2) + be16(0) + be16(1) + be32(n) + value + be16(1) + be16(0));
    const auto query = wire('Q', text_sql + std::string(1, '\0'));
    for (const auto& [what, msg] : {std::pair<std::string, const std::string*>{"Bind", &bind}, {"Query", &query}}) {
        CAPTURE(what);
        CHECK_MESSAGE(has_line(replay2.out, {std::to_string(msg->size()) + "-byte message", "sha256 " + sha256_hex(*msg)}),
                      "expected a " << what << " of " << msg->size() << " bytes, sha256 " << sha256_hex(*msg) << "\n"
                                    << lines_with(replay2.out, "byte message"));
    }
    s.verify_all();
}

TEST_CASE("a slow reader of a 110 MB COPY: the transfer completes and glassgate's memory stays bounded") {
    auto& s = shared();
    // Reads stdin at ~8 MB/s (far below what the proxy can send) and prints the byte count and SHA-256.
    const auto reader = s.dir / "slow_reader.py";
    write_file(reader, R"PY(import hashlib, sys, time
rate = float(sys.argv[1])
h = hashlib.sha256()
n = 0
t0 = time.monotonic()
inp = sys.stdin.buffer
while True:
    b = inp.read1(65536)
    if not b:
        break
    n += len(b)
    h.update(b)
    ahead = n / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
print(n, h.hexdigest())
)PY");
    constexpr int rows = 110'000;
    Digest expect(EVP_sha256());
    const std::string line = std::string(1000, 'x') + "\n";
    for (int i = 0; i < rows; ++i) expect.update(line);
    const std::string expect_sha = expect.hex();
    const std::uint64_t expect_size = static_cast<std::uint64_t>(rows) * line.size();

    const std::string cmd = "set -o pipefail; psql -X -q -v ON_ERROR_STOP=1 " + shell_quote(s.conninfo()) +
                            " -c \"copy (select repeat('x', 1000) from generate_series(1, " + std::to_string(rows) +
                            ")) to stdout\" | python3 " + shell_quote(reader.string()) + " 8000000";
    const pid_t serve_pid = s.serve.pid();
    const long before_kb = proc_status_kb(serve_pid, "VmRSS");
    std::atomic<bool> done{false};
    long max_kb = before_kb;
    std::thread sampler([&] {
        while (!done) {
            max_kb = std::max(max_kb, proc_status_kb(serve_pid, "VmRSS"));
            std::this_thread::sleep_for(50ms);
        }
    });
    auto r = run({"bash", "-c", cmd}, {.env = s.token_env(), .timeout = 240s});
    done = true;
    sampler.join();
    MESSAGE("glassgate serve VmRSS: " << before_kb / 1024 << " MiB before, max " << max_kb / 1024 << " MiB during a "
                                      << expect_size / 1000000 << " MB COPY to a reader at 8 MB/s (took " << r.elapsed.count()
                                      << " ms; VmHWM " << proc_status_kb(serve_pid, "VmHWM") / 1024 << " MiB)");
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe() << s.serve_log());
    CHECK(r.out == std::to_string(expect_size) + " " + expect_sha + "\n");
#if !defined(__SANITIZE_ADDRESS__)
    // A generous absolute bound; under AddressSanitizer the process starts near 280 MiB (shadow memory
    // and quarantine), so there only the growth below says whether the proxy buffers the result.
    CHECK(max_kb < 200 * 1024);
#endif
    CHECK(max_kb - before_kb < 96 * 1024);      // far less than the result: the proxy does not buffer it
    auto replay = s.replay(s.newest_sealed_session());
    const std::string expect_line = "server sent " + std::to_string(expect_size) + " bytes in " + std::to_string(rows) +
                                    " messages, sha256 " + expect_sha;
    CHECK_MESSAGE(has_line(replay.out, {"COPY", expect_line}), "expected: " << expect_line << "\n" << lines_with(replay.out, "COPY"));
    s.verify_all();
}

TEST_CASE("LISTEN/NOTIFY and cancel: the pids clients see are the backends' own") {
    auto& s = shared();
    PgConn a(s.libpq_conninfo());
    PgConn b(s.libpq_conninfo());
    REQUIRE_MESSAGE(a.ok(), a.error() << s.serve_log());
    REQUIRE_MESSAGE(b.ok(), b.error());
    const auto a_pid = a.value("select pg_backend_pid()");
    const auto b_pid = b.value("select pg_backend_pid()");
    CHECK(std::to_string(PQbackendPID(a.get())) == a_pid);
    CHECK(std::to_string(PQbackendPID(b.get())) == b_pid);
    CHECK(a_pid != b_pid);

    CHECK(a.value("listen bulk_channel") == "<LISTEN>");
    CHECK(a.value("notify bulk_channel, 'from myself'") == "<NOTIFY>");
    auto self = wait_notification(a.get(), 10s);
    REQUIRE(self.has_value());
    CHECK(self->channel == "bulk_channel");
    CHECK(self->payload == "from myself");
    CHECK(std::to_string(self->be_pid) == a_pid);
    CHECK(b.value("notify bulk_channel, 'from the other one'") == "<NOTIFY>");
    auto other = wait_notification(a.get(), 10s);
    REQUIRE(other.has_value());
    CHECK(other->payload == "from the other one");
    CHECK(std::to_string(other->be_pid) == b_pid);

    // psql prints the sender's pid, which is what pg_backend_pid() says in the same session.
    auto p = s.psql({"listen psql_channel", "notify psql_channel", "select pg_backend_pid()"});
    REQUIRE_MESSAGE(p.exit_code == 0, p.describe());
    CHECK_MESSAGE(p.out.find("Asynchronous notification \"psql_channel\" received from server process with PID " + last_line(p.out) + ".") !=
                      std::string::npos, p.out);

    // libpq's cancel (with the key the proxy gave it) reaches a's backend.
    auto running = [&](const std::string& pid, const std::string& like) {
        return wait_until([&] {
            return s.direct("select count(*) from pg_stat_activity where pid = " + pid + " and state = 'active' and query like '" + like + "%'").out == "1\n";
        }, 20s);
    };
    REQUIRE(PQsendQuery(a.get(), "select pg_sleep(60)") == 1);
    REQUIRE(running(a_pid, "select pg_sleep(60)"));
    const auto start = std::chrono::steady_clock::now();
    PGcancel* cancel = PQgetCancel(a.get());
    char err[256] = {};
    CHECK_MESSAGE(PQcancel(cancel, err, sizeof err) == 1, err);
    PQfreeCancel(cancel);
    Result res(PQgetResult(a.get()), &PQclear);
    CHECK(PQresultStatus(res.get()) == PGRES_FATAL_ERROR);
    const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
    CHECK(std::string(state ? state : "") == "57014");
    while (Result more{PQgetResult(a.get()), &PQclear}) {}
    CHECK(std::chrono::steady_clock::now() - start < 20s);

    // The real pid with a wrong key cancels nothing.
    const std::string no_match = "glassgate_cancel_requests_total{outcome=\"no_match\"}";
    const double before = std::max(0.0, s.metric(no_match));
    REQUIRE(PQsendQuery(b.get(), "select pg_sleep(2), 'survived'") == 1);
    REQUIRE(running(b_pid, "select pg_sleep(2)"));
    for (std::uint32_t key : {0u, 0xdeadbeefu, 1u}) send_cancel(s.port, static_cast<std::uint32_t>(std::stoul(b_pid)), key);
    Result survived(PQgetResult(b.get()), &PQclear);
    CHECK_MESSAGE(PQresultStatus(survived.get()) == PGRES_TUPLES_OK, std::string(PQresultErrorMessage(survived.get())));
    if (PQresultStatus(survived.get()) == PGRES_TUPLES_OK) CHECK(std::string(PQgetvalue(survived.get(), 0, 1)) == "survived");
    while (Result more{PQgetResult(b.get()), &PQclear}) {}
    CHECK(wait_until([&] { return s.metric(no_match) >= before + 3; }, 10s));
    CHECK(b.value("select 'b still works'") == "b still works");
    s.verify_all();
}

TEST_CASE("large objects: \\lo_import and \\lo_export of 4 MB through glassgate") {
    auto& s = shared();
    const auto src = s.dir / "lo-src.bin";
    const auto dst = s.dir / "lo-dst.bin";
    std::string data(4 * 1024 * 1024 + 123, '\0');
    std::uint32_t x = 12345;
    for (auto& c : data) {
        x = x * 1664525u + 1013904223u;
        c = static_cast<char>(x >> 24);
    }
    write_file(src, data);
    auto imp = s.psql({"\\lo_import '" + src.string() + "'"}, "appdb", 120s, /*quiet=*/false);
    REQUIRE_MESSAGE(imp.exit_code == 0, imp.describe() << s.serve_log());
    const auto at = imp.out.find("lo_import ");
    REQUIRE_MESSAGE(at != std::string::npos, imp.out);
    const auto oid = std::to_string(std::stoul(imp.out.substr(at + 10)));
    CHECK(s.direct("select md5(lo_get(" + oid + "))").out == md5_hex(data) + "\n");
    auto exp = s.psql({"\\lo_export " + oid + " '" + dst.string() + "'"}, "appdb", 120s, false);
    REQUIRE_MESSAGE(exp.exit_code == 0, exp.describe());
    const auto got = read_file(dst);
    CHECK(got.size() == data.size());
    const bool same = got == data;
    CHECK_MESSAGE(same, "the exported large object differs from the imported file");
    CHECK(s.psql({"\\lo_unlink " + oid}).exit_code == 0);
    s.verify_all();
}

TEST_CASE("pipelined extended-protocol batches (libpq pipeline mode, pgbench \\startpipeline) and FunctionCall") {
    auto& s = shared();
    {
        PgConn c(s.libpq_conninfo());
        REQUIRE_MESSAGE(c.ok(), c.error() << s.serve_log());
        REQUIRE(PQenterPipelineMode(c.get()) == 1);
        // Three batches: 50 queries; an error followed by 5 queries the server skips; 50 queries with a
        // 300 kB parameter in the middle.
        const std::string big(300'000, 'p');
        std::vector<std::string> expected;  // per query: its value, "ERR" or "ABORTED"; "SYNC" per sync
        auto send = [&](const std::string& sql, const std::string& param, const std::string& expect) {
            const char* v[1] = {param.c_str()};
            REQUIRE(PQsendQueryParams(c.get(), sql.c_str(), 1, nullptr, v, nullptr, nullptr, 0) == 1);
            expected.push_back(expect);
        };
        for (int i = 0; i < 50; ++i) send("select length($1::text)", std::string(static_cast<std::size_t>(i), 'a'), std::to_string(i));
        REQUIRE(PQpipelineSync(c.get()) == 1);
        expected.push_back("SYNC");
        send("select 1 / $1::int", "0", "ERR");
        for (int i = 0; i < 5; ++i) send("select $1::int", "7", "ABORTED");
        REQUIRE(PQpipelineSync(c.get()) == 1);
        expected.push_back("SYNC");
        for (int i = 0; i < 50; ++i) {
            send("select length($1::text)", i == 25 ? big : std::string(static_cast<std::size_t>(i), 'b'),
                 std::to_string(i == 25 ? big.size() : static_cast<std::size_t>(i)));
        }
        REQUIRE(PQpipelineSync(c.get()) == 1);
        expected.push_back("SYNC");
        std::vector<std::string> got;
        for (std::size_t i = 0; i < expected.size(); ++i) {
            Result r(PQgetResult(c.get()), &PQclear);
            if (!r) {
                got.push_back("<null>");
                break;
            }
            switch (PQresultStatus(r.get())) {
                case PGRES_PIPELINE_SYNC: got.push_back("SYNC"); continue;  // no NULL follows a sync
                case PGRES_TUPLES_OK: got.push_back(PQgetvalue(r.get(), 0, 0)); break;
                case PGRES_FATAL_ERROR: got.push_back("ERR"); break;
                case PGRES_PIPELINE_ABORTED: got.push_back("ABORTED"); break;
                default: got.push_back(std::string("<") + PQresStatus(PQresultStatus(r.get())) + ">"); break;
            }
            Result end(PQgetResult(c.get()), &PQclear);
            if (end) {
                got.push_back("<extra result>");
                break;
            }
        }
        std::string diff;
        for (std::size_t i = 0; i < std::max(got.size(), expected.size()); ++i) {
            const auto g = i < got.size() ? got[i] : "<missing>";
            const auto e = i < expected.size() ? expected[i] : "<none>";
            if (g != e) diff += "#" + std::to_string(i) + ": got " + g + ", expected " + e + "\n";
        }
        CHECK_MESSAGE(diff.empty(), diff << c.error());
        REQUIRE(PQexitPipelineMode(c.get()) == 1);
        CHECK(c.value("select 'after the pipeline'") == "after the pipeline");

        // FunctionCall (the large-object functions use it): a 1 MB lo_write is one message.
        std::string data(1 << 20, '\0');
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) >> 3);
        CHECK(c.value("begin") == "<BEGIN>");
        const Oid oid = lo_creat(c.get(), INV_READ | INV_WRITE);
        REQUIRE_MESSAGE(oid != InvalidOid, c.error());
        const int fd = lo_open(c.get(), oid, INV_READ | INV_WRITE);
        REQUIRE_MESSAGE(fd >= 0, c.error());
        CHECK_MESSAGE(lo_write(c.get(), fd, data.data(), data.size()) == static_cast<int>(data.size()), c.error());
        CHECK(lo_lseek(c.get(), fd, 0, SEEK_SET) == 0);
        std::string back(data.size(), '\0');
        CHECK_MESSAGE(lo_read(c.get(), fd, back.data(), back.size()) == static_cast<int>(back.size()), c.error());
        const bool same = back == data;
        CHECK_MESSAGE(same, "lo_read returned other bytes than lo_write wrote");
        CHECK(lo_close(c.get(), fd) == 0);
        CHECK(c.value("commit") == "<COMMIT>");
        CHECK(s.direct("select md5(lo_get(" + std::to_string(oid) + "))").out == md5_hex(data) + "\n");
        CHECK(lo_unlink(c.get(), oid) == 1);
    }

    // pgbench's own pipeline commands over the extended and the prepared protocol.
    const auto script = s.dir / "pipeline.sql";
    write_file(script, "\\set a random(1, 1000)\n\\startpipeline\nselect :a::int + 1;\nselect repeat('y', :a);\n"
                       "select length(repeat('z', :a * 100));\n\\endpipeline\n");
    for (std::string mode : {"extended", "prepared"}) {
        auto b = run({"pgbench", "-n", "-M", mode, "-t", "50", "-f", script.string(), s.conninfo()},
                     {.env = s.token_env(), .timeout = 120s});
        CHECK_MESSAGE(b.exit_code == 0, mode << ": " << b.describe());
        CHECK_MESSAGE(b.out.find("number of transactions actually processed: 50/50") != std::string::npos, b.out);
    }
    s.verify_all();
}

TEST_CASE("COPY BOTH from a backend is refused, and the proxy keeps serving") {
    // A stand-in for a replication stream, which a real server sends only on replication connections
    // (which glassgate refuses at startup): the first Query is answered with CopyBothResponse and a CopyData,
    // as only a walsender would.
    ScriptedPgBackend fake({wire('W', std::string(1, '\0') + be16(0)) + wire('d', "copy both data\n")});
    Stack s("max_session = \"8h\"\n[[target]]\nname = \"fake\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:" +
            std::to_string(fake.port()) + "\"\ndatabase = \"fake\"\nbackend_user = \"fake_owner\"\ntls = \"disable\"\n" +
            "allow = [\"alice\"]\n");
    auto set = run({GG_BINARY, "secret", "set", "fake", "--config", s.config()}, {.stdin_data = "fake-secret\n"});
    REQUIRE_MESSAGE(set.exit_code == 0, set.describe());
    {
        PgConn c(s.libpq_conninfo("fake"));
        REQUIRE_MESSAGE(c.ok(), c.error() << s.serve_log());
        auto r = c.exec("START_REPLICATION 0/0");
        const auto status = PQresultStatus(r.get());
        CHECK_MESSAGE(status != PGRES_COPY_BOTH, "the client was put into COPY BOTH mode");
        if (status == PGRES_COPY_BOTH) {
            char* buf = nullptr;
            const int n = PQgetCopyData(c.get(), &buf, 0);
            CHECK_MESSAGE(n < 0, "the client received COPY BOTH data: " << (n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : ""));
            if (buf) PQfreemem(buf);
        }
        // The client is told why (a FATAL before the connection closes).
        CHECK_MESSAGE(c.error().find("COPY BOTH") != std::string::npos, c.error());
        MESSAGE("client saw: " << std::string(PQresStatus(status)) << " " << std::string(PQresultErrorMessage(r.get())) << c.error());
    }
    CHECK(fake.queries_seen() == 1);
    auto after = s.psql({"select 'still serving'"});
    CHECK_MESSAGE(after.out == "still serving\n", after.describe() << s.serve_log());
    (void)s.newest_sealed_session();
    s.verify_all();
}

TEST_CASE("record_value_bytes and record_copy = \"full\": accepted; a message above the cap is recorded cut, with size and SHA-256") {
    // A bad value is refused by `config check` (checked on a copy of the configuration below).
    // A recording buffer far smaller than one read of the relay: the writer is always behind, and the
    // relay must wait for it (back-pressure) rather than end the session.
    Stack s("max_session = \"8h\"\nrecord_value_bytes = 1024\nrecord_copy = \"full\"\n", "recording_buffer_bytes = 16384\n");
    const std::string sql = "select length('" + letters(3000, 7) + "')";
    {
        PgConn c(s.libpq_conninfo());
        REQUIRE_MESSAGE(c.ok(), c.error() << s.serve_log());
        CHECK(c.value(sql) == "3000");
        CHECK(c.value("select 'small'") == "small");
    }
    auto copy = s.psql({"copy (select g, md5(g::text) from generate_series(1, 500) g) to stdout"});
    REQUIRE_MESSAGE(copy.exit_code == 0, copy.describe());
    const auto copy_session = s.newest_sealed_session();
    const auto ids = s.session_ids();
    REQUIRE(ids.size() >= 2);
    auto replay_q = s.replay(ids[ids.size() - 2]);
    const auto q = wire('Q', sql + std::string(1, '\0'));
    CHECK_MESSAGE(has_line(replay_q.out, {std::to_string(q.size()) + "-byte message", "sha256 " + sha256_hex(q)}),
                  "expected a Query of " << q.size() << " bytes, sha256 " << sha256_hex(q) << "\n" << replay_q.out.substr(0, 3000));
    CHECK(replay_q.out.find("select 'small'") != std::string::npos);  // below the cap: recorded whole
    auto replay_c = s.replay(copy_session);
    const std::string expect = "server sent " + std::to_string(copy.out.size()) + " bytes in 500 messages, sha256 " + sha256_hex(copy.out);
    CHECK_MESSAGE(has_line(replay_c.out, {"COPY", expect}), "expected: " << expect << "\n" << lines_with(replay_c.out, "COPY"));

    // 20 MB of COPY data recorded in full through the 16 KiB buffer: complete, every message recorded.
    auto bulk = s.psql({"copy (select g, repeat(md5(g::text), 60) from generate_series(1, 10000) g) to stdout"});
    REQUIRE_MESSAGE(bulk.exit_code == 0, bulk.describe() << s.serve_log());
    CHECK(bulk.out.size() > 19'000'000);
    const auto bulk_session = s.newest_sealed_session();
    auto replay_b = s.replay(bulk_session);
    const std::string all = "server sent " + std::to_string(bulk.out.size()) + " bytes in 10000 messages, sha256 " +
                            sha256_hex(bulk.out) + ", all recorded";
    CHECK_MESSAGE(has_line(replay_b.out, {"COPY", all}), "expected: " << all << "\n" << lines_with(replay_b.out, "COPY"));
    auto show = run({GG_BINARY, "sessions", "show", bulk_session, "--config", s.config()});
    CHECK_MESSAGE(show.out.find("recording_failed") == std::string::npos, show.out);
    CHECK(s.serve_log().find("recording failed") == std::string::npos);

    auto text = read_file(s.config());
    const auto at = text.find("record_copy = \"full\"");
    REQUIRE(at != std::string::npos);
    text.replace(at, 20, "record_copy = \"sometimes\"");
    const auto bad = s.dir / "bad.toml";
    write_file(bad, text);
    auto check = run({GG_BINARY, "config", "check", "--config", bad.string()});
    CHECK(check.exit_code == 2);
    CHECK_MESSAGE((check.out + check.err).find("record_copy") != std::string::npos, check.describe());
    s.verify_all();
}

TEST_SUITE_END();
