// Embedded state store on SQLite (WAL mode). One connection per StateStore object, serialised by
// a mutex; several processes (serve + CLI) share the file safely through SQLite's locking.
// Compare-and-set, audit appends and recording chunks run in BEGIN IMMEDIATE transactions, so they
// are atomic across processes too.
//
// Schema versions (meta.schema_version):
//   1  kv, sessions, audit
//   2  sessions.instance (+ index sessions_instance), recording_chunks
// Opening a file migrates it in one BEGIN IMMEDIATE transaction: the column check and the ALTER TABLE
// cannot interleave with another process doing the same.

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy {
namespace {

using session::SessionRecord;

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, updated_us INTEGER NOT NULL,
  PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, protocol TEXT NOT NULL, identity TEXT NOT NULL, auth TEXT NOT NULL,
  target TEXT NOT NULL, client_address TEXT NOT NULL, reason TEXT NOT NULL, state TEXT NOT NULL,
  started_us INTEGER NOT NULL, deadline_us INTEGER, ended_us INTEGER,
  bytes_c2s INTEGER NOT NULL, bytes_s2c INTEGER NOT NULL,
  close_reason TEXT NOT NULL, close_detail TEXT NOT NULL, recording TEXT NOT NULL,
  sealed_events INTEGER, sealed_chain_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_us);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, line TEXT NOT NULL, hash BLOB NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
)sql";

/// Version 2 after sessions.instance exists (added by ALTER TABLE when missing).
constexpr const char* schema_v2_sql = R"sql(
CREATE INDEX IF NOT EXISTS sessions_instance ON sessions (instance, started_us);
CREATE TABLE IF NOT EXISTS recording_chunks (
  session_id TEXT NOT NULL, "offset" INTEGER NOT NULL, bytes BLOB NOT NULL, sha256 BLOB NOT NULL,
  last INTEGER NOT NULL, PRIMARY KEY (session_id, "offset"));
UPDATE meta SET value = '2' WHERE key = 'schema_version' AND CAST(value AS INTEGER) < 2;
)sql";

/// Prepared statements kept per SQL text, so the statements run on every session are parsed once.
/// Used under the store's mutex; cleared before the database is closed.
class StmtCache {
public:
    StmtCache() = default;
    StmtCache(const StmtCache&) = delete;
    StmtCache& operator=(const StmtCache&) = delete;
    ~StmtCache() { clear(); }
    /// A statement for `sql` (taken out of the cache: a nested use of the same text prepares another).
    sqlite3_stmt* take(sqlite3* db, std::string_view sql) {
        if (auto it = map_.find(sql); it != map_.end() && it->second) return std::exchange(it->second, nullptr);
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st, nullptr) != SQLITE_OK) {
            throw StoreError(std::string("state store: prepare failed: ") + sqlite3_errmsg(db));
        }
        return st;
    }
    void give_back(std::string_view sql, sqlite3_stmt* st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        auto it = map_.find(sql);
        if (it == map_.end()) it = map_.emplace(std::string(sql), nullptr).first;
        if (it->second) {
            sqlite3_finalize(st);
        } else {
            it->second = st;
        }
    }
    void clear() {
        for (auto& [sql, st] : map_) sqlite3_finalize(st);
        map_.clear();
    }

private:
    std::map<std::string, sqlite3_stmt*, std::less<>> map_;
};

class Stmt {
public:
    Stmt(StmtCache& cache, sqlite3* db, std::string_view sql) : db_(db), cache_(cache), sql_(sql) {
        s_ = cache_.take(db, sql_);
    }
    ~Stmt() { cache_.give_back(sql_, s_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, std::string_view v) {
        // A null pointer would bind SQL NULL; an empty value is an empty blob.
        check(sqlite3_bind_blob(s_, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    Stmt& bind_text(int i, std::string_view v) {
        check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    Stmt& bind(int i, std::int64_t v) {
        check(sqlite3_bind_int64(s_, i, v));
        return *this;
    }
    Stmt& bind_null(int i) {
        check(sqlite3_bind_null(s_, i));
        return *this;
    }
    /// true: a row is available; false: done.
    bool step() {
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw StoreError(std::string("state store: ") + sqlite3_errmsg(db_));
    }
    std::string text(int col) const {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, col))) : std::string();
    }
    std::int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
    bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) throw StoreError(std::string("state store: bind failed: ") + sqlite3_errmsg(db_));
    }
    sqlite3* db_;
    StmtCache& cache_;
    std::string sql_;
    sqlite3_stmt* s_ = nullptr;
};

session::TimePoint tp(std::int64_t us) { return session::TimePoint(std::chrono::microseconds(us)); }
std::int64_t us(session::TimePoint t) { return t.time_since_epoch().count(); }

class SqliteStore final : public StateStore {
public:
    SqliteStore(const std::filesystem::path& file, Bytes audit_key, Bytes signing_seed)
        : path_(file), audit_key_(std::move(audit_key)), signing_seed_(std::move(signing_seed)) {
        int rc = sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
        if (rc != SQLITE_OK) {
            std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            throw StoreError("cannot open state store " + file.string() + ": " + msg);
        }
        sqlite3_busy_timeout(db_, 10000);
        // Switching a new file to WAL and creating the schema can fail with SQLITE_BUSY at once, without
        // the busy handler, while another connection (serve starting, a CLI command) does the same:
        // retry the whole step for as long as the busy timeout would have waited.
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            try {
                exec("PRAGMA journal_mode=WAL");
                exec("PRAGMA synchronous=NORMAL");
                exec("PRAGMA foreign_keys=ON");
                exec("BEGIN IMMEDIATE");
                exec(schema_sql);
                migrate_to_v2();
                exec("COMMIT");
                break;
            } catch (const StoreError& e) {
                const int code = sqlite3_errcode(db_);
                if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
                if ((code == SQLITE_BUSY || code == SQLITE_LOCKED) && std::chrono::steady_clock::now() < give_up) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    continue;
                }
                stmts_.clear();
                sqlite3_close(db_);
                throw StoreError("cannot initialise state store " + file.string() + ": " + e.what());
            }
        }
    }
    ~SqliteStore() override {
        stmts_.clear();
        sqlite3_close(db_);
    }

    std::optional<std::string> get(std::string_view ns, std::string_view key) override {
        std::lock_guard lk(mu_);
        return get_locked(ns, key);
    }

    void put(std::string_view ns, std::string_view key, std::string_view value) override {
        std::lock_guard lk(mu_);
        Stmt s(stmts_, db_, "INSERT INTO kv (ns, key, value, updated_us) VALUES (?1, ?2, ?3, ?4) "
                    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_us = excluded.updated_us");
        s.bind_text(1, ns).bind_text(2, key).bind(3, value).bind(4, now_us());
        s.step();
    }

    bool erase(std::string_view ns, std::string_view key) override {
        std::lock_guard lk(mu_);
        Stmt s(stmts_, db_, "DELETE FROM kv WHERE ns = ?1 AND key = ?2");
        s.bind_text(1, ns).bind_text(2, key);
        s.step();
        return sqlite3_changes(db_) > 0;
    }

    std::vector<std::pair<std::string, std::string>> list(std::string_view ns) override {
        std::lock_guard lk(mu_);
        Stmt s(stmts_, db_, "SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key");
        s.bind_text(1, ns);
        std::vector<std::pair<std::string, std::string>> out;
        while (s.step()) out.emplace_back(s.text(0), s.text(1));
        return out;
    }

    bool compare_and_set(std::string_view ns, std::string_view key, const std::optional<std::string>& expected,
                         const std::optional<std::string>& desired) override {
        std::lock_guard lk(mu_);
        Txn txn(*this);
        auto current = get_locked(ns, key);
        if (current != expected) return false;  // txn rolls back
        if (desired) {
            Stmt s(stmts_, db_, "INSERT INTO kv (ns, key, value, updated_us) VALUES (?1, ?2, ?3, ?4) "
                        "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_us = excluded.updated_us");
            s.bind_text(1, ns).bind_text(2, key).bind(3, *desired).bind(4, now_us());
            s.step();
        } else if (current) {
            Stmt s(stmts_, db_, "DELETE FROM kv WHERE ns = ?1 AND key = ?2");
            s.bind_text(1, ns).bind_text(2, key);
            s.step();
        }
        txn.commit();
        return true;
    }

    void save_session(const SessionRecord& r) override {
        std::lock_guard lk(mu_);
        save_session_locked(r);
    }

    std::uint64_t save_session_and_audit(const SessionRecord& r, const session::AuditEvent& ev) override {
        std::lock_guard lk(mu_);
        Txn txn(*this);
        save_session_locked(r);
        const auto seq = append_audit_locked(ev);
        txn.commit();
        return seq;
    }

    void save_session_locked(const SessionRecord& r) {
        Stmt s(stmts_, db_, "INSERT OR REPLACE INTO sessions (id, protocol, identity, auth, target, client_address, reason, "
                    "state, started_us, deadline_us, ended_us, bytes_c2s, bytes_s2c, close_reason, close_detail, "
                    "recording, sealed_events, sealed_chain_hash, instance) VALUES "
                    "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)");
        s.bind_text(1, r.id)
            .bind_text(2, session::to_string(r.protocol))
            .bind_text(3, r.identity)
            .bind_text(4, session::to_string(r.auth))
            .bind_text(5, r.target)
            .bind_text(6, r.client_address)
            .bind_text(7, r.reason)
            .bind_text(8, session::to_string(r.state))
            .bind(9, us(r.started));
        r.deadline ? s.bind(10, us(*r.deadline)) : s.bind_null(10);
        r.ended ? s.bind(11, us(*r.ended)) : s.bind_null(11);
        s.bind(12, static_cast<std::int64_t>(r.bytes_client_to_server))
            .bind(13, static_cast<std::int64_t>(r.bytes_server_to_client))
            .bind_text(14, session::to_string(r.close_reason))
            .bind_text(15, r.close_detail)
            .bind_text(16, r.recording);
        r.sealed_events ? s.bind(17, static_cast<std::int64_t>(*r.sealed_events)) : s.bind_null(17);
        s.bind_text(18, r.sealed_chain_hash).bind_text(19, r.instance);
        s.step();
    }

    std::optional<SessionRecord> find_session(std::string_view id) override {
        std::lock_guard lk(mu_);
        Stmt s(stmts_, db_, std::string(select_sessions) + " WHERE id = ?1");
        s.bind_text(1, id);
        if (!s.step()) return std::nullopt;
        return row(s);
    }

    std::vector<SessionRecord> list_sessions(const SessionFilter& f) override {
        std::lock_guard lk(mu_);
        std::string sql = std::string(select_sessions) + " WHERE 1=1";
        if (f.identity) sql += " AND identity = ?1";
        if (f.target) sql += " AND target = ?2";
        if (f.since) sql += " AND started_us >= ?3";
        if (f.auth) sql += " AND auth = ?4";
        if (f.state) sql += " AND state = ?5";
        if (f.instance) sql += " AND instance = ?7";
        sql += f.limit ? " ORDER BY started_us DESC, id DESC LIMIT ?6" : " ORDER BY started_us, id";
        Stmt s(stmts_, db_, sql);
        if (f.identity) s.bind_text(1, *f.identity);
        if (f.target) s.bind_text(2, *f.target);
        if (f.since) s.bind(3, us(*f.since));
        if (f.auth) s.bind_text(4, session::to_string(*f.auth));
        if (f.state) s.bind_text(5, session::to_string(*f.state));
        if (f.limit) s.bind(6, static_cast<std::int64_t>(f.limit));
        if (f.instance) s.bind_text(7, *f.instance);
        std::vector<SessionRecord> out;
        while (s.step()) out.push_back(row(s));
        if (f.limit) std::reverse(out.begin(), out.end());
        return out;
    }

    std::uint64_t append_audit(const session::AuditEvent& ev) override {
        std::lock_guard lk(mu_);
        Txn txn(*this);
        const auto seq = append_audit_locked(ev);
        txn.commit();
        return seq;
    }

    /// Inside a transaction: the chain head is read and extended atomically.
    std::uint64_t append_audit_locked(const session::AuditEvent& ev) {
        crypto::Digest prev{};
        std::uint64_t seq = 1;
        {
            Stmt s(stmts_, db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
            if (s.step()) {
                seq = static_cast<std::uint64_t>(s.i64(0)) + 1;
                auto h = s.text(1);
                if (h.size() != prev.size()) throw StoreError("state store: audit chain head is corrupt");
                std::memcpy(prev.data(), h.data(), prev.size());
            }
        }
        auto line = session::make_audit_line(ev, seq, prev, audit_key_, signing_seed_);
        Stmt s(stmts_, db_, "INSERT INTO audit (seq, line, hash) VALUES (?1, ?2, ?3)");
        s.bind(1, static_cast<std::int64_t>(seq))
            .bind_text(2, line.text)
            .bind(3, std::string_view(reinterpret_cast<const char*>(line.hash.data()), line.hash.size()));
        s.step();
        return seq;
    }

    std::vector<std::string> audit_lines(std::uint64_t from_seq, std::size_t limit) override {
        std::lock_guard lk(mu_);
        Stmt s(stmts_, db_, limit ? "SELECT line FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
                          : "SELECT line FROM audit WHERE seq >= ?1 ORDER BY seq");
        s.bind(1, static_cast<std::int64_t>(from_seq));
        if (limit) s.bind(2, static_cast<std::int64_t>(limit));
        std::vector<std::string> out;
        while (s.step()) out.push_back(s.text(0));
        return out;
    }

    void put_recording_chunk(std::string_view session_id, std::uint64_t offset, std::string_view bytes,
                             bool last) override {
        const auto at = checked_offset(session_id, offset);
        const auto digest = crypto::sha256(as_bytes(bytes));
        std::lock_guard lk(mu_);
        Txn txn(*this);
        {
            Stmt s(stmts_, db_, "SELECT sha256, last FROM recording_chunks WHERE session_id = ?1 AND \"offset\" = ?2");
            s.bind_text(1, session_id).bind(2, at);
            if (s.step()) {
                if (s.text(0) == as_chars(digest) && (s.i64(1) != 0) == last) return;  // a retry: already stored
                throw StoreError(prefix() + "recording of session " + std::string(session_id) +
                                 ": another chunk is already stored at offset " + std::to_string(offset));
            }
        }
        const auto shipped = shipped_locked(session_id);
        if (shipped.complete) {
            throw StoreError(prefix() + "recording of session " + std::string(session_id) +
                             " is complete: no chunk may follow its last one (given offset " + std::to_string(offset) +
                             ")");
        }
        if (offset != shipped.bytes) {
            throw StoreError(prefix() + "recording of session " + std::string(session_id) +
                             ": chunks must be contiguous: expected offset " + std::to_string(shipped.bytes) +
                             ", given " + std::to_string(offset));
        }
        if (bytes.empty() && !last) return;  // nothing to store
        Stmt s(stmts_, db_, "INSERT INTO recording_chunks (session_id, \"offset\", bytes, sha256, last) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)");
        s.bind_text(1, session_id)
            .bind(2, at)
            .bind(3, bytes)
            .bind(4, as_chars(digest))
            .bind(5, std::int64_t{last ? 1 : 0});
        s.step();
        txn.commit();
    }

    ShippedRecording shipped_recording(std::string_view session_id) override {
        std::lock_guard lk(mu_);
        return shipped_locked(session_id);
    }

    std::optional<std::string> recording_chunk(std::string_view session_id, std::uint64_t offset) override {
        const auto at = checked_offset(session_id, offset);
        std::lock_guard lk(mu_);
        Stmt s(stmts_, db_, "SELECT bytes, sha256 FROM recording_chunks WHERE session_id = ?1 AND \"offset\" = ?2");
        s.bind_text(1, session_id).bind(2, at);
        if (!s.step()) return std::nullopt;
        auto bytes = s.text(0);
        const auto stored = s.text(1);
        const auto digest = crypto::sha256(as_bytes(bytes));
        if (stored != as_chars(digest)) {
            throw StoreError(prefix() + "recording of session " + std::string(session_id) + ": the chunk at offset " +
                             std::to_string(offset) + " does not match its SHA-256 (altered in the store)");
        }
        return bytes;
    }

private:
    static constexpr const char* select_sessions =
        "SELECT id, protocol, identity, auth, target, client_address, reason, state, started_us, deadline_us, "
        "ended_us, bytes_c2s, bytes_s2c, close_reason, close_detail, recording, sealed_events, sealed_chain_hash, "
        "instance FROM sessions";

    /// RAII transaction: BEGIN IMMEDIATE takes the write lock up front, so a read-then-write
    /// (compare-and-set, chain append) cannot interleave with another writer.
    class Txn {
    public:
        explicit Txn(SqliteStore& st) : st_(st) { st_.exec("BEGIN IMMEDIATE"); }
        void commit() {
            st_.exec("COMMIT");
            done_ = true;
        }
        ~Txn() {
            if (!done_) sqlite3_exec(st_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
        }
        Txn(const Txn&) = delete;
        Txn& operator=(const Txn&) = delete;

    private:
        SqliteStore& st_;
        bool done_ = false;
    };

    std::string prefix() const { return "state store " + path_.string() + ": "; }

    /// Offsets are stored as SQLite's signed 64-bit integers.
    std::int64_t checked_offset(std::string_view session_id, std::uint64_t offset) const {
        if (offset > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            throw StoreError(prefix() + "recording of session " + std::string(session_id) + ": offset " +
                             std::to_string(offset) + " is out of range");
        }
        return static_cast<std::int64_t>(offset);
    }

    /// Chunks are only ever stored contiguously, so their lengths add up to the contiguous prefix.
    ShippedRecording shipped_locked(std::string_view session_id) {
        Stmt s(stmts_, db_, "SELECT count(*), coalesce(sum(length(bytes)), 0), coalesce(max(last), 0) "
                            "FROM recording_chunks WHERE session_id = ?1");
        s.bind_text(1, session_id);
        ShippedRecording r;
        if (s.step()) {
            r.chunks = static_cast<std::uint64_t>(s.i64(0));
            r.bytes = static_cast<std::uint64_t>(s.i64(1));
            r.complete = s.i64(2) != 0;
        }
        return r;
    }

    /// Schema version 1 -> 2, inside the opening transaction (BEGIN IMMEDIATE: one process at a time).
    void migrate_to_v2() {
        bool has_instance = false;
        {
            Stmt s(stmts_, db_, "SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'instance'");
            has_instance = s.step();
        }
        if (!has_instance) exec("ALTER TABLE sessions ADD COLUMN instance TEXT NOT NULL DEFAULT ''");
        exec(schema_v2_sql);
    }

    void exec(const char* sql) {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : sqlite3_errmsg(db_);
            sqlite3_free(err);
            throw StoreError("state store " + path_.string() + ": " + msg);
        }
    }

    std::optional<std::string> get_locked(std::string_view ns, std::string_view key) {
        Stmt s(stmts_, db_, "SELECT value FROM kv WHERE ns = ?1 AND key = ?2");
        s.bind_text(1, ns).bind_text(2, key);
        if (!s.step()) return std::nullopt;
        return s.text(0);
    }

    static SessionRecord row(const Stmt& s) {
        SessionRecord r;
        r.id = s.text(0);
        r.protocol = session::protocol_from_string(s.text(1)).value_or(session::Protocol::postgres);
        r.identity = s.text(2);
        r.auth = session::auth_method_from_string(s.text(3)).value_or(session::AuthMethod::none);
        r.target = s.text(4);
        r.client_address = s.text(5);
        r.reason = s.text(6);
        r.state = session::state_from_string(s.text(7)).value_or(session::State::closed);
        r.started = tp(s.i64(8));
        if (!s.is_null(9)) r.deadline = tp(s.i64(9));
        if (!s.is_null(10)) r.ended = tp(s.i64(10));
        r.bytes_client_to_server = static_cast<std::uint64_t>(s.i64(11));
        r.bytes_server_to_client = static_cast<std::uint64_t>(s.i64(12));
        r.close_reason = session::close_reason_from_string(s.text(13)).value_or(session::CloseReason::internal_error);
        r.close_detail = s.text(14);
        r.recording = s.text(15);
        if (!s.is_null(16)) r.sealed_events = static_cast<std::uint64_t>(s.i64(16));
        r.sealed_chain_hash = s.text(17);
        r.instance = s.text(18);
        return r;
    }

    std::filesystem::path path_;
    Bytes audit_key_;
    Bytes signing_seed_;  ///< signs each audit line ("sig") when not empty
    sqlite3* db_ = nullptr;
    StmtCache stmts_;  ///< before close, finalised by the destructor's body
    std::mutex mu_;
};

}  // namespace

std::unique_ptr<StateStore> open_sqlite_store(const std::filesystem::path& file, Bytes audit_key, Bytes signing_seed) {
    return std::make_unique<SqliteStore>(file, std::move(audit_key), std::move(signing_seed));
}

}  // namespace gg::proxy
