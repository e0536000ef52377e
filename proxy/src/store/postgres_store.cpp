// Shared state store on PostgreSQL (libpq), for several glassgate instances serving one deployment.
//
// Tables, in the connected database's default schema (usually "public"); every name starts with glassgate_:
//   glassgate_schema            (version int PRIMARY KEY, applied_at timestamptz)      migrations applied
//   glassgate_kv                (ns text, key text, value bytea, updated_at timestamptz), PRIMARY KEY (ns, key)
//   glassgate_sessions          the sessions index: the SQLite store's columns (times and counters bigint,
//                               microseconds since the epoch), instance included; indexes on started_us
//                               and (instance, started_us)
//   glassgate_audit             (seq bigint PRIMARY KEY, line text, hash bytea)
//   glassgate_audit_head        one row (id = 1): seq and hash of the chain's last entry (0 and 32 zero
//                               bytes while empty). Appending locks it (SELECT ... FOR UPDATE), so the
//                               whole deployment writes ONE chain in one total order, never a fork.
//   glassgate_recording_chunks  (session_id text, "offset" bigint, bytes bytea, sha256 bytea, last boolean),
//                               PRIMARY KEY (session_id, "offset"); writers of one session serialise on a
//                               transaction-level advisory lock (pg_advisory_xact_lock(ggrc, hashtext(id))).
//
// Migrations are versioned (glassgate_schema): opening a store takes the session-level advisory lock
// `schema_lock_key`, applies each missing version in its own transaction and unlocks, so any number of
// instances may start at once. A database migrated by a newer glassgate (an unknown version) is refused.
//
// Connections (pg_connection.hpp): a small pool (up to `pool_size`, opened lazily, each used by one thread at a time). Every
// connection gets connect_timeout (5 s unless the connection string sets one), TCP keepalives, a
// statement_timeout of 10 s and an idle_in_transaction_session_timeout, so neither a hung store nor a hung
// instance can block others forever. An idle connection is checked before it is lent (what the server sent
// meanwhile is read without blocking: a close, or the FATAL message of a shutdown or a terminated backend)
// and replaced, so after a server restart even writes that are never retried work at once. A connection
// lost during an operation is dropped; reads and idempotent writes (put, save_session, put_recording_chunk)
// are retried once on a new connection — libpq does the failover between several hosts
// (target_session_attrs=read-write); writes that must not run twice (compare-and-set, audit appends, erase)
// throw StoreError, and the caller's backlog (with_write_backlog) keeps audit and index writes. (A COMMIT
// whose reply is lost is indistinguishable from one that failed: the backlog may then write that audit
// event a second time, as a new entry; the chain stays intact.) A read-only server (a former primary) or
// one shutting down counts as a lost connection.
//
// Values travel in binary format: keys and namespaces are text (valid UTF-8 without NUL; PostgreSQL refuses
// anything else with a StoreError), values bytea (any bytes). Keys are ordered bytewise (COLLATE "C"),
// like SQLite. Error messages name the store by host, port and database only, never the password.

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "pg_connection.hpp"

namespace gg::proxy {
namespace {

using namespace pgstore;

using session::SessionRecord;

/// pg_advisory_lock key held while migrating the schema ("glassgat").
constexpr const char* schema_lock_key = "7452438631876616564";
/// First key of pg_advisory_xact_lock(int, int) taken per session when storing recording chunks ("ggrc").
constexpr const char* chunk_lock_class = "1734832739";

/// One migration: applied in one transaction, recorded in glassgate_schema.
struct Migration {
    int version;
    const char* sql;
};

constexpr Migration migrations[] = {
    {1, R"sql(
CREATE TABLE glassgate_kv (
  ns text NOT NULL, key text NOT NULL, value bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (ns, key));
CREATE TABLE glassgate_sessions (
  id text PRIMARY KEY, protocol text NOT NULL, identity text NOT NULL, auth text NOT NULL,
  target text NOT NULL, client_address text NOT NULL, reason text NOT NULL, state text NOT NULL,
  started_us bigint NOT NULL, deadline_us bigint, ended_us bigint,
  bytes_c2s bigint NOT NULL, bytes_s2c bigint NOT NULL,
  close_reason text NOT NULL, close_detail text NOT NULL, recording text NOT NULL,
  sealed_events bigint, sealed_chain_hash text NOT NULL, instance text NOT NULL DEFAULT '');
CREATE INDEX glassgate_sessions_started ON glassgate_sessions (started_us);
CREATE INDEX glassgate_sessions_instance ON glassgate_sessions (instance, started_us);
CREATE TABLE glassgate_audit (seq bigint PRIMARY KEY, line text NOT NULL, hash bytea NOT NULL);
CREATE TABLE glassgate_audit_head (
  id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash bytea NOT NULL);
INSERT INTO glassgate_audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
CREATE TABLE glassgate_recording_chunks (
  session_id text NOT NULL, "offset" bigint NOT NULL, bytes bytea NOT NULL, sha256 bytea NOT NULL,
  last boolean NOT NULL, PRIMARY KEY (session_id, "offset"));
)sql"},
};

session::TimePoint tp(std::int64_t us) { return session::TimePoint(std::chrono::microseconds(us)); }
std::int64_t us(session::TimePoint t) { return t.time_since_epoch().count(); }

class PostgresStore final : public StateStore {
public:
    PostgresStore(const std::string& conninfo, Bytes audit_key, Bytes signing_seed)
        : pool_(parse_conninfo(conninfo)), audit_key_(std::move(audit_key)), signing_seed_(std::move(signing_seed)) {
        migrate();
    }

    // --- key/value

    std::optional<std::string> get(std::string_view ns, std::string_view key) override {
        return run("get", Retry::once, [&](PGconn* c) -> std::optional<std::string> {
            return get_on(c, "get", ns, key);
        });
    }

    void put(std::string_view ns, std::string_view key, std::string_view value) override {
        run("put", Retry::once, [&](PGconn* c) {
            exec(c, "put",
                 "INSERT INTO glassgate_kv (ns, key, value, updated_at) VALUES ($1, $2, $3, now()) "
                 "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                 Params().text(ns).text(key).bytea(value));
        });
    }

    bool erase(std::string_view ns, std::string_view key) override {
        return run("erase", Retry::no, [&](PGconn* c) {
            return exec(c, "erase", "DELETE FROM glassgate_kv WHERE ns = $1 AND key = $2",
                        Params().text(ns).text(key))
                       .affected() > 0;
        });
    }

    std::vector<std::pair<std::string, std::string>> list(std::string_view ns) override {
        return run("list", Retry::once, [&](PGconn* c) {
            auto r = exec(c, "list", "SELECT key, value FROM glassgate_kv WHERE ns = $1 ORDER BY key COLLATE \"C\"",
                          Params().text(ns));
            std::vector<std::pair<std::string, std::string>> out;
            out.reserve(static_cast<std::size_t>(r.rows()));
            for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.bytes(i, 0), r.bytes(i, 1));
            return out;
        });
    }

    /// Each case is one statement whose row count says whether this call made the change; under READ
    /// COMMITTED a concurrent UPDATE/DELETE waits for the row and re-checks `value = expected` on the
    /// version the winner committed, and INSERT ... ON CONFLICT DO NOTHING lets exactly one insert win.
    bool compare_and_set(std::string_view ns, std::string_view key, const std::optional<std::string>& expected,
                         const std::optional<std::string>& desired) override {
        constexpr const char* op = "compare-and-set";
        return run(op, Retry::no, [&](PGconn* c) -> bool {
            if (!expected && !desired) return !get_on(c, op, ns, key).has_value();  // "absent" stays absent
            if (!expected) {
                return exec(c, op,
                            "INSERT INTO glassgate_kv (ns, key, value, updated_at) VALUES ($1, $2, $3, now()) "
                            "ON CONFLICT (ns, key) DO NOTHING",
                            Params().text(ns).text(key).bytea(*desired))
                           .affected() == 1;
            }
            if (!desired) {
                return exec(c, op, "DELETE FROM glassgate_kv WHERE ns = $1 AND key = $2 AND value = $3",
                            Params().text(ns).text(key).bytea(*expected))
                           .affected() == 1;
            }
            return exec(c, op,
                        "UPDATE glassgate_kv SET value = $4, updated_at = now() "
                        "WHERE ns = $1 AND key = $2 AND value = $3",
                        Params().text(ns).text(key).bytea(*expected).bytea(*desired))
                       .affected() == 1;
        });
    }

    // --- sessions index

    void save_session(const SessionRecord& r) override {
        run("save session", Retry::once, [&](PGconn* c) { save_session_on(c, "save session", r); });
    }

    std::optional<SessionRecord> find_session(std::string_view id) override {
        return run("find session", Retry::once, [&](PGconn* c) -> std::optional<SessionRecord> {
            auto r = exec(c, "find session", std::string(select_sessions) + " WHERE id = $1", Params().text(id));
            if (r.rows() == 0) return std::nullopt;
            return row(r, 0);
        });
    }

    std::vector<SessionRecord> list_sessions(const SessionFilter& f) override {
        std::string sql = std::string(select_sessions) + " WHERE true";
        Params p;
        if (f.identity) sql += " AND identity = " + next_after(p.text(*f.identity));
        if (f.target) sql += " AND target = " + next_after(p.text(*f.target));
        if (f.since) sql += " AND started_us >= " + next_after(p.i64(us(*f.since)));
        if (f.auth) sql += " AND auth = " + next_after(p.text(session::to_string(*f.auth)));
        if (f.state) sql += " AND state = " + next_after(p.text(session::to_string(*f.state)));
        if (f.instance) sql += " AND instance = " + next_after(p.text(*f.instance));
        if (f.limit) {
            const auto limit = static_cast<std::int64_t>(
                std::min<std::size_t>(f.limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
            sql += " ORDER BY started_us DESC, id COLLATE \"C\" DESC LIMIT " + next_after(p.i64(limit));
        } else {
            sql += " ORDER BY started_us, id COLLATE \"C\"";
        }
        return run("list sessions", Retry::once, [&](PGconn* c) {
            auto r = exec(c, "list sessions", sql, p);
            std::vector<SessionRecord> out;
            out.reserve(static_cast<std::size_t>(r.rows()));
            for (int i = 0; i < r.rows(); ++i) out.push_back(row(r, i));
            if (f.limit) std::reverse(out.begin(), out.end());
            return out;
        });
    }

    // --- audit chain

    std::uint64_t append_audit(const session::AuditEvent& ev) override {
        constexpr const char* op = "append audit event";
        return run(op, Retry::no, [&](PGconn* c) {
            Txn txn(*this, c, op);
            const auto seq = append_audit_on(c, op, ev);
            txn.commit();
            return seq;
        });
    }

    std::uint64_t save_session_and_audit(const SessionRecord& rec, const session::AuditEvent& ev) override {
        constexpr const char* op = "save session and audit event";
        return run(op, Retry::no, [&](PGconn* c) {
            Txn txn(*this, c, op);
            save_session_on(c, op, rec);
            const auto seq = append_audit_on(c, op, ev);
            txn.commit();
            return seq;
        });
    }

    std::vector<std::string> audit_lines(std::uint64_t from_seq, std::size_t limit) override {
        constexpr const char* op = "read audit lines";
        const auto from = static_cast<std::int64_t>(
            std::min<std::uint64_t>(from_seq, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
        return run(op, Retry::once, [&](PGconn* c) {
            Params p;
            p.i64(from);
            if (limit) {
                p.i64(static_cast<std::int64_t>(
                    std::min<std::size_t>(limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))));
            }
            auto r = exec(c, op,
                          limit ? "SELECT line FROM glassgate_audit WHERE seq >= $1 ORDER BY seq LIMIT $2"
                                : "SELECT line FROM glassgate_audit WHERE seq >= $1 ORDER BY seq",
                          p);
            std::vector<std::string> out;
            out.reserve(static_cast<std::size_t>(r.rows()));
            for (int i = 0; i < r.rows(); ++i) out.push_back(r.bytes(i, 0));
            return out;
        });
    }

    // --- recordings

    void put_recording_chunk(std::string_view session_id, std::uint64_t offset, std::string_view bytes,
                             bool last) override {
        constexpr const char* op = "put recording chunk";
        const auto at = checked_offset(op, session_id, offset);
        const auto digest = crypto::sha256(as_bytes(bytes));
        const std::string_view digest_chars = as_chars(digest);
        // Idempotent (a stored identical chunk is a no-op), so a lost connection is retried.
        run(op, Retry::once, [&](PGconn* c) {
            Txn txn(*this, c, op);
            exec(c, op, std::string("SELECT pg_advisory_xact_lock(") + chunk_lock_class + ", hashtext($1))",
                 Params().text(session_id));
            auto same = exec(c, op,
                             "SELECT sha256, last FROM glassgate_recording_chunks "
                             "WHERE session_id = $1 AND \"offset\" = $2",
                             Params().text(session_id).i64(at));
            if (same.rows() > 0) {
                if (same.bytes(0, 0) == digest_chars && same.boolean(0, 1) == last) return;  // a retry
                throw StoreError(prefix(op) + "recording of session " + std::string(session_id) +
                                 ": another chunk is already stored at offset " + std::to_string(offset));
            }
            const auto shipped = shipped_on(c, op, session_id);
            if (shipped.complete) {
                throw StoreError(prefix(op) + "recording of session " + std::string(session_id) +
                                 " is complete: no chunk may follow its last one (given offset " +
                                 std::to_string(offset) + ")");
            }
            if (offset != shipped.bytes) {
                throw StoreError(prefix(op) + "recording of session " + std::string(session_id) +
                                 ": chunks must be contiguous: expected offset " + std::to_string(shipped.bytes) +
                                 ", given " + std::to_string(offset));
            }
            if (bytes.empty() && !last) return;  // nothing to store
            exec(c, op,
                 "INSERT INTO glassgate_recording_chunks (session_id, \"offset\", bytes, sha256, last) "
                 "VALUES ($1, $2, $3, $4, $5)",
                 Params().text(session_id).i64(at).bytea(bytes).bytea(digest_chars).boolean(last));
            txn.commit();
        });
    }

    ShippedRecording shipped_recording(std::string_view session_id) override {
        return run("shipped recording", Retry::once,
                   [&](PGconn* c) { return shipped_on(c, "shipped recording", session_id); });
    }

    std::optional<std::string> recording_chunk(std::string_view session_id, std::uint64_t offset) override {
        constexpr const char* op = "read recording chunk";
        const auto at = checked_offset(op, session_id, offset);
        return run(op, Retry::once, [&](PGconn* c) -> std::optional<std::string> {
            auto r = exec(c, op,
                          "SELECT bytes, sha256 FROM glassgate_recording_chunks "
                          "WHERE session_id = $1 AND \"offset\" = $2",
                          Params().text(session_id).i64(at));
            if (r.rows() == 0) return std::nullopt;
            auto bytes = r.bytes(0, 0);
            const auto digest = crypto::sha256(as_bytes(bytes));
            if (r.bytes(0, 1) != as_chars(digest)) {
                throw StoreError(prefix(op) + "recording of session " + std::string(session_id) +
                                 ": the chunk at offset " + std::to_string(offset) +
                                 " does not match its SHA-256 (altered in the store)");
            }
            return bytes;
        });
    }

private:
    enum class Retry { no, once };

    static constexpr const char* select_sessions =
        "SELECT id, protocol, identity, auth, target, client_address, reason, state, started_us, deadline_us, "
        "ended_us, bytes_c2s, bytes_s2c, close_reason, close_detail, recording, sealed_events, sealed_chain_hash, "
        "instance FROM glassgate_sessions";

    /// BEGIN ... COMMIT on one connection; rolled back unless committed.
    class Txn {
    public:
        Txn(PostgresStore& st, PGconn* c, std::string_view op) : st_(st), c_(c), op_(op) { st_.exec(c_, op_, "BEGIN"); }
        void commit() {
            st_.exec(c_, op_, "COMMIT");
            done_ = true;
        }
        ~Txn() {
            if (!done_ && PQstatus(c_) == CONNECTION_OK) PQclear(PQexec(c_, "ROLLBACK"));
        }
        Txn(const Txn&) = delete;
        Txn& operator=(const Txn&) = delete;

    private:
        PostgresStore& st_;
        PGconn* c_;
        std::string_view op_;
        bool done_ = false;
    };

    [[nodiscard]] std::string prefix(std::string_view op) const { return pool_.name() + ": " + std::string(op) + ": "; }

    /// "$n" for the parameter just added.
    static std::string next_after(const Params& p) { return "$" + std::to_string(p.size()); }

    /// Runs `f` on a pooled connection. A lost connection is dropped; with Retry::once `f` runs once more
    /// on a new connection (libpq fails over between hosts). Ends in StoreError either way.
    template <class F>
    auto run(std::string_view op, Retry retry, F&& f) -> decltype(f(static_cast<PGconn*>(nullptr))) {
        for (int attempt = 0;; ++attempt) {
            auto lease = pool_.acquire(op);
            try {
                return f(lease.get());
            } catch (const ConnectionLost& e) {
                lease.broken();
                if (retry == Retry::once && attempt == 0) {
                    spdlog::warn("{}{}; retrying on a new connection", prefix(op), e.what());
                    continue;
                }
                throw StoreError(prefix(op) + e.what());
            }
        }
    }

    /// One statement (extended protocol, binary parameters and results). Throws ConnectionLost when the
    /// connection is gone or unfit (see sqlstate_means_reconnect), else StoreError naming the store.
    Result exec(PGconn* c, std::string_view op, const std::string& sql, const Params& p = {}) {
        const auto n = static_cast<std::size_t>(p.size());
        std::vector<const char*> values(n);
        std::vector<int> lengths(n), formats(n, 1);
        for (std::size_t i = 0; i < n; ++i) {
            values[i] = p.is_null(i) ? nullptr : p.values()[i].data();
            lengths[i] = static_cast<int>(p.values()[i].size());
        }
        PGresult* r = PQexecParams(c, sql.c_str(), p.size(), p.types().data(), values.data(), lengths.data(),
                                   formats.data(), 1);
        const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Result(r);
        fail(c, op, r);
    }

    /// Throws for a failed statement (and frees `r`): ConnectionLost when the connection is gone or unfit,
    /// else StoreError with the server's primary message and SQLSTATE (no DETAIL: it may quote values).
    [[noreturn]] void fail(PGconn* c, std::string_view op, PGresult* r) {
        const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
        const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        const std::string sqlstate = state ? state : "";
        std::string msg = primary ? std::string(primary) + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")")
                                  : message_lines(PQerrorMessage(c));
        PQclear(r);
        if (PQstatus(c) != CONNECTION_OK) throw ConnectionLost("connection lost: " + msg);
        if (sqlstate_means_reconnect(sqlstate)) throw ConnectionLost(msg);
        throw StoreError(prefix(op) + msg);
    }

    std::optional<std::string> get_on(PGconn* c, std::string_view op, std::string_view ns, std::string_view key) {
        auto r = exec(c, op, "SELECT value FROM glassgate_kv WHERE ns = $1 AND key = $2", Params().text(ns).text(key));
        if (r.rows() == 0) return std::nullopt;
        return r.bytes(0, 0);
    }

    void save_session_on(PGconn* c, std::string_view op, const SessionRecord& r) {
        Params p;
        p.text(r.id)
            .text(session::to_string(r.protocol))
            .text(r.identity)
            .text(session::to_string(r.auth))
            .text(r.target)
            .text(r.client_address)
            .text(r.reason)
            .text(session::to_string(r.state))
            .i64(us(r.started))
            .opt_i64(r.deadline ? std::optional(us(*r.deadline)) : std::nullopt)
            .opt_i64(r.ended ? std::optional(us(*r.ended)) : std::nullopt)
            .i64(static_cast<std::int64_t>(r.bytes_client_to_server))
            .i64(static_cast<std::int64_t>(r.bytes_server_to_client))
            .text(session::to_string(r.close_reason))
            .text(r.close_detail)
            .text(r.recording)
            .opt_i64(r.sealed_events ? std::optional(static_cast<std::int64_t>(*r.sealed_events)) : std::nullopt)
            .text(r.sealed_chain_hash)
            .text(r.instance);
        exec(c, op,
             "INSERT INTO glassgate_sessions (id, protocol, identity, auth, target, client_address, reason, state, "
             "started_us, deadline_us, ended_us, bytes_c2s, bytes_s2c, close_reason, close_detail, recording, "
             "sealed_events, sealed_chain_hash, instance) VALUES "
             "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) "
             "ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, identity = excluded.identity, "
             "auth = excluded.auth, target = excluded.target, client_address = excluded.client_address, "
             "reason = excluded.reason, state = excluded.state, started_us = excluded.started_us, "
             "deadline_us = excluded.deadline_us, ended_us = excluded.ended_us, bytes_c2s = excluded.bytes_c2s, "
             "bytes_s2c = excluded.bytes_s2c, close_reason = excluded.close_reason, "
             "close_detail = excluded.close_detail, recording = excluded.recording, "
             "sealed_events = excluded.sealed_events, sealed_chain_hash = excluded.sealed_chain_hash, "
             "instance = excluded.instance",
             p);
    }

    /// Inside a transaction: the head row is locked until commit, so every instance appends in turn.
    std::uint64_t append_audit_on(PGconn* c, std::string_view op, const session::AuditEvent& ev) {
        auto head = exec(c, op, "SELECT seq, hash FROM glassgate_audit_head WHERE id = 1 FOR UPDATE");
        crypto::Digest prev{};
        if (head.rows() != 1) throw StoreError(prefix(op) + "the audit chain head row is missing");
        const auto h = head.bytes(0, 1);
        if (h.size() != prev.size() || head.i64(0, 0) < 0) {
            throw StoreError(prefix(op) + "the audit chain head is corrupt");
        }
        std::memcpy(prev.data(), h.data(), prev.size());
        const auto seq = static_cast<std::uint64_t>(head.i64(0, 0)) + 1;
        auto line = session::make_audit_line(ev, seq, prev, audit_key_, signing_seed_);
        exec(c, op,
             "WITH entry AS (INSERT INTO glassgate_audit (seq, line, hash) VALUES ($1, $2, $3)) "
             "UPDATE glassgate_audit_head SET seq = $1, hash = $3 WHERE id = 1",
             Params().i64(static_cast<std::int64_t>(seq)).text(line.text).bytea(as_chars(line.hash)));
        return seq;
    }

    /// Chunks are only ever stored contiguously, so their lengths add up to the contiguous prefix.
    ShippedRecording shipped_on(PGconn* c, std::string_view op, std::string_view session_id) {
        auto r = exec(c, op,
                      "SELECT count(*), coalesce(sum(octet_length(bytes)), 0)::bigint, coalesce(bool_or(last), false) "
                      "FROM glassgate_recording_chunks WHERE session_id = $1",
                      Params().text(session_id));
        ShippedRecording s;
        if (r.rows() == 1) {
            s.chunks = static_cast<std::uint64_t>(r.i64(0, 0));
            s.bytes = static_cast<std::uint64_t>(r.i64(0, 1));
            s.complete = r.boolean(0, 2);
        }
        return s;
    }

    std::int64_t checked_offset(std::string_view op, std::string_view session_id, std::uint64_t offset) const {
        if (offset > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            throw StoreError(prefix(op) + "recording of session " + std::string(session_id) + ": offset " +
                             std::to_string(offset) + " is out of range");
        }
        return static_cast<std::int64_t>(offset);
    }

    static SessionRecord row(const Result& r, int i) {
        SessionRecord s;
        s.id = r.bytes(i, 0);
        s.protocol = session::protocol_from_string(r.bytes(i, 1)).value_or(session::Protocol::postgres);
        s.identity = r.bytes(i, 2);
        s.auth = session::auth_method_from_string(r.bytes(i, 3)).value_or(session::AuthMethod::none);
        s.target = r.bytes(i, 4);
        s.client_address = r.bytes(i, 5);
        s.reason = r.bytes(i, 6);
        s.state = session::state_from_string(r.bytes(i, 7)).value_or(session::State::closed);
        s.started = tp(r.i64(i, 8));
        if (!r.is_null(i, 9)) s.deadline = tp(r.i64(i, 9));
        if (!r.is_null(i, 10)) s.ended = tp(r.i64(i, 10));
        s.bytes_client_to_server = static_cast<std::uint64_t>(r.i64(i, 11));
        s.bytes_server_to_client = static_cast<std::uint64_t>(r.i64(i, 12));
        s.close_reason =
            session::close_reason_from_string(r.bytes(i, 13)).value_or(session::CloseReason::internal_error);
        s.close_detail = r.bytes(i, 14);
        s.recording = r.bytes(i, 15);
        if (!r.is_null(i, 16)) s.sealed_events = static_cast<std::uint64_t>(r.i64(i, 16));
        s.sealed_chain_hash = r.bytes(i, 17);
        s.instance = r.bytes(i, 18);
        return s;
    }

    /// A script of several statements (simple query protocol), for migrations.
    void exec_script(PGconn* c, std::string_view op, const char* sql) {
        PGresult* r = PQexec(c, sql);
        const bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (ok) {
            PQclear(r);
            return;
        }
        fail(c, op, r);
    }

    /// Creates or migrates the schema under a session-level advisory lock (one instance at a time). Any
    /// failure drops the connection, which releases the lock.
    void migrate() {
        constexpr const char* op = "migrate schema";
        constexpr int latest = migrations[std::size(migrations) - 1].version;
        for (int attempt = 0;; ++attempt) {
            auto lease = pool_.acquire(op);
            PGconn* c = lease.get();
            try {
                exec(c, op, std::string("SELECT pg_advisory_lock(") + schema_lock_key + ")");
                exec(c, op,
                     "CREATE TABLE IF NOT EXISTS glassgate_schema ("
                     "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
                auto r = exec(c, op, "SELECT coalesce(max(version), 0) FROM glassgate_schema");
                const auto current = r.i64(0, 0);
                if (current > latest) {
                    throw StoreError(prefix(op) + "the database has schema version " + std::to_string(current) +
                                     ", newer than this glassgate knows (" + std::to_string(latest) +
                                     "): upgrade glassgate");
                }
                for (const auto& m : migrations) {
                    if (m.version <= current) continue;
                    Txn txn(*this, c, op);
                    exec_script(c, op, m.sql);
                    exec(c, op, "INSERT INTO glassgate_schema (version, applied_at) VALUES ($1, now())",
                         Params().i64(m.version));
                    txn.commit();
                    spdlog::info("{}: schema migrated to version {}", pool_.name(), m.version);
                }
                exec(c, op, std::string("SELECT pg_advisory_unlock(") + schema_lock_key + ")");
                return;
            } catch (const ConnectionLost& e) {
                lease.broken();
                if (attempt == 0) continue;
                throw StoreError(prefix(op) + e.what());
            } catch (...) {
                lease.broken();  // the session, and with it the advisory lock, ends
                throw;
            }
        }
    }

    Pool pool_;
    Bytes audit_key_;
    Bytes signing_seed_;  ///< signs each audit line ("sig") when not empty
};

}  // namespace

std::unique_ptr<StateStore> open_postgres_store(const std::string& conninfo, Bytes audit_key, Bytes signing_seed) {
    return std::make_unique<PostgresStore>(conninfo, std::move(audit_key), std::move(signing_seed));
}

}  // namespace gg::proxy
