#pragma once
// Private to proxy/src/store: the libpq layer of the shared PostgreSQL store (postgres_store.cpp) —
// query parameters and results in binary format, the connection string with glassgate's defaults and
// its secret-free name, and the pool of connections (checked before each lend, replaced when lost).

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::pgstore {

inline constexpr std::size_t pool_size = 4;
inline constexpr const char* default_connect_timeout = "5";  // seconds, per host
inline constexpr const char* statement_timeout_ms = "10000";
inline constexpr const char* idle_in_transaction_timeout_ms = "30000";
/// How long an operation waits for a free pooled connection before giving up.
inline constexpr std::chrono::seconds pool_wait{30};

// OIDs of the built-in types used as parameters (pg_type.h).
inline constexpr Oid oid_bool = 16;
inline constexpr Oid oid_bytea = 17;
inline constexpr Oid oid_int8 = 20;
inline constexpr Oid oid_text = 25;

/// The part of a libpq message worth one line: its non-indented lines (one per host tried), joined.
inline std::string message_lines(const char* msg) {
    std::string out;
    std::string_view rest = msg ? msg : "";
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        auto line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        if (line.empty() || line.front() == '\t' || line.front() == ' ') continue;
        if (!out.empty()) out += "; ";
        out += line;
    }
    return out.empty() ? "unknown error" : out;
}

/// libpq quotes the fragment it could not parse; that fragment may be part of a password.
inline std::string redact_quoted(std::string_view msg) {
    std::string out;
    bool in_quote = false;
    for (char c : msg) {
        if (c == '"') {
            out += in_quote ? "***\"" : "\"";
            in_quote = !in_quote;
        } else if (!in_quote) {
            out += c;
        }
    }
    return out;
}

/// A lost connection, or one to a server that cannot take our work (shutting down, read-only): the
/// connection is dropped and, where the operation allows it, the operation retried on a new one.
struct ConnectionLost : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline bool sqlstate_means_reconnect(std::string_view state) {
    return state.substr(0, 2) == "08"  // connection exception
           || state == "57P01"         // admin_shutdown
           || state == "57P02"         // crash_shutdown
           || state == "57P03"         // cannot_connect_now
           || state == "25006";        // read_only_sql_transaction: a former primary, now a standby
}

inline std::uint64_t be_uint(const char* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

/// Query parameters, all in binary format.
class Params {
public:
    Params& text(std::string_view v) { return add(oid_text, std::string(v)); }
    Params& bytea(std::string_view v) { return add(oid_bytea, std::string(v)); }
    Params& i64(std::int64_t v) {
        std::string b(8, '\0');
        auto u = static_cast<std::uint64_t>(v);
        for (int i = 7; i >= 0; --i) {
            b[static_cast<std::size_t>(i)] = static_cast<char>(u & 0xff);
            u >>= 8;
        }
        return add(oid_int8, std::move(b));
    }
    Params& opt_i64(std::optional<std::int64_t> v) {
        if (v) return i64(*v);
        values_.emplace_back();
        types_.push_back(oid_int8);
        nulls_.push_back(true);
        return *this;
    }
    Params& boolean(bool v) { return add(oid_bool, std::string(1, v ? '\1' : '\0')); }

    [[nodiscard]] int size() const { return static_cast<int>(values_.size()); }
    [[nodiscard]] const std::vector<Oid>& types() const { return types_; }
    [[nodiscard]] const std::vector<std::string>& values() const { return values_; }
    [[nodiscard]] bool is_null(std::size_t i) const { return nulls_[i]; }

private:
    Params& add(Oid type, std::string v) {
        values_.push_back(std::move(v));
        types_.push_back(type);
        nulls_.push_back(false);
        return *this;
    }
    std::vector<std::string> values_;
    std::vector<Oid> types_;
    std::vector<bool> nulls_;
};

/// A PGresult in binary format.
class Result {
public:
    explicit Result(PGresult* r) : r_(r) {}
    ~Result() { PQclear(r_); }
    Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    Result& operator=(Result&&) = delete;
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;

    [[nodiscard]] int rows() const { return PQntuples(r_); }
    [[nodiscard]] bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
    [[nodiscard]] std::string bytes(int row, int col) const {
        return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
    }
    /// int2, int4 or int8 column.
    [[nodiscard]] std::int64_t i64(int row, int col) const {
        const auto n = static_cast<std::size_t>(PQgetlength(r_, row, col));
        const auto u = be_uint(PQgetvalue(r_, row, col), n);
        switch (n) {
            case 2: return static_cast<std::int16_t>(u);
            case 4: return static_cast<std::int32_t>(u);
            default: return static_cast<std::int64_t>(u);
        }
    }
    [[nodiscard]] bool boolean(int row, int col) const {
        return PQgetlength(r_, row, col) == 1 && PQgetvalue(r_, row, col)[0] != 0;
    }
    /// Rows changed by INSERT/UPDATE/DELETE.
    [[nodiscard]] std::uint64_t affected() const {
        const char* n = PQcmdTuples(r_);
        return n && *n ? std::strtoull(n, nullptr, 10) : 0;
    }

private:
    PGresult* r_;
};


/// The parsed connection string plus glassgate's defaults, and how to name the store in messages.
struct ConnSpec {
    std::vector<std::string> keys;
    std::vector<std::string> values;
    std::string name;  ///< "state store postgres (host=... port=... dbname=...)"
};

inline ConnSpec parse_conninfo(const std::string& conninfo) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
        std::string msg = err ? redact_quoted(message_lines(err)) : "out of memory";
        PQfreemem(err);
        throw StoreError("state store postgres: the connection string is not valid: " + msg);
    }
    ConnSpec spec;
    for (const auto* o = opts; o->keyword; ++o) {
        if (o->val) {
            spec.keys.emplace_back(o->keyword);
            spec.values.emplace_back(o->val);
        }
    }
    PQconninfoFree(opts);
    auto value = [&](std::string_view key) -> const std::string* {
        for (std::size_t i = 0; i < spec.keys.size(); ++i) {
            if (spec.keys[i] == key) return &spec.values[i];
        }
        return nullptr;
    };
    auto add_default = [&](const char* key, const char* v) {
        if (!value(key)) {
            spec.keys.emplace_back(key);
            spec.values.emplace_back(v);
        }
    };
    add_default("connect_timeout", default_connect_timeout);
    add_default("client_encoding", "UTF8");
    add_default("application_name", "glassgate");
    // A server that vanishes (network partition) would otherwise leave a read waiting forever.
    add_default("keepalives", "1");
    add_default("keepalives_idle", "15");
    add_default("keepalives_interval", "5");
    add_default("keepalives_count", "3");
    add_default("tcp_user_timeout", "30000");

    std::string where;
    for (const char* key : {"host", "hostaddr", "port", "dbname"}) {
        if (const auto* v = value(key); v && !v->empty()) {
            if (std::string_view(key) == "hostaddr" && value("host")) continue;
            if (!where.empty()) where += ' ';
            where += std::string(key) + "=" + *v;
        }
    }
    spec.name = "state store postgres" + (where.empty() ? std::string() : " (" + where + ")");
    return spec;
}

/// One pooled connection, and whether the server announced its end outside a query.
struct Conn {
    PGconn* pg = nullptr;
    const std::string* store = nullptr;  ///< the store's name, for log lines
    /// A FATAL/PANIC message arrived while idle (server shutting down, backend terminated): the socket
    /// may not show the close yet, but the connection is finished.
    bool server_ended = false;

    Conn() = default;
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() {
        if (pg) PQfinish(pg);
    }
};

/// Messages the server sends outside a query's result: logged; a FATAL one marks the connection ended.
inline void on_notice(void* arg, const PGresult* r) {
    const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const std::string_view sv = severity ? severity : "";
    if (sv == "FATAL" || sv == "PANIC") static_cast<Conn*>(arg)->server_ended = true;
    const auto* c = static_cast<const Conn*>(arg);
    spdlog::warn("{}: the server says: {}", c->store ? *c->store : std::string("state store postgres"),
                 message_lines(PQresultErrorMessage(r)));
}

/// Up to pool_size connections, opened on demand; each lent to one operation at a time.
class Pool {
public:
    explicit Pool(ConnSpec spec) : spec_(std::move(spec)) {}
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// A connection lent to one operation; returned to the pool unless marked broken.
    class Lease {
    public:
        Lease(Pool& pool, std::unique_ptr<Conn> c) : pool_(&pool), c_(std::move(c)) {}
        ~Lease() {
            if (c_) pool_->give_back(std::move(c_), !broken_);
        }
        Lease(Lease&& o) noexcept : pool_(o.pool_), c_(std::move(o.c_)), broken_(o.broken_) {}
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        [[nodiscard]] PGconn* get() const noexcept { return c_->pg; }
        void broken() noexcept { broken_ = true; }

    private:
        Pool* pool_;
        std::unique_ptr<Conn> c_;
        bool broken_ = false;
    };

    [[nodiscard]] const std::string& name() const noexcept { return spec_.name; }

    Lease acquire(std::string_view op) {
        std::unique_lock lk(mu_);
        for (;;) {
            while (!idle_.empty()) {
                auto c = std::move(idle_.back());
                idle_.pop_back();
                if (usable(*c)) return {*this, std::move(c)};
                // Closed by the server (restart, failover, idle timeout): replaced below.
                --open_;
            }
            if (open_ < pool_size) {
                ++open_;
                lk.unlock();
                try {
                    return {*this, connect(op)};
                } catch (...) {
                    lk.lock();
                    --open_;
                    cv_.notify_one();
                    throw;
                }
            }
            if (!cv_.wait_for(lk, pool_wait, [&] { return !idle_.empty() || open_ < pool_size; })) {
                throw StoreError(spec_.name + ": " + std::string(op) + ": no connection free within " +
                                 std::to_string(pool_wait.count()) + " s");
            }
        }
    }

private:
    /// Reads what the server sent while the connection was idle (without blocking: libpq keeps its
    /// sockets non-blocking): a connection the server ended, or one in an odd state, is not lent.
    static bool usable(Conn& c) {
        for (int i = 0; i < 2; ++i) {  // the second read sees a close that followed a message
            if (PQstatus(c.pg) != CONNECTION_OK || PQconsumeInput(c.pg) != 1) return false;
            if (PQisBusy(c.pg) != 0 || c.server_ended) return false;  // PQisBusy parses: a FATAL notice ends it
        }
        return PQstatus(c.pg) == CONNECTION_OK && PQtransactionStatus(c.pg) == PQTRANS_IDLE;
    }

    std::unique_ptr<Conn> connect(std::string_view op) {
        std::vector<const char*> keys, values;
        for (std::size_t i = 0; i < spec_.keys.size(); ++i) {
            keys.push_back(spec_.keys[i].c_str());
            values.push_back(spec_.values[i].c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        auto c = std::make_unique<Conn>();
        c->store = &spec_.name;
        c->pg = PQconnectdbParams(keys.data(), values.data(), 0);
        if (!c->pg) throw StoreError(spec_.name + ": " + std::string(op) + ": cannot connect: out of memory");
        if (PQstatus(c->pg) != CONNECTION_OK) {
            throw StoreError(spec_.name + ": " + std::string(op) + ": cannot connect: " +
                             message_lines(PQerrorMessage(c->pg)));
        }
        PQsetNoticeReceiver(c->pg, on_notice, c.get());
        const std::string setup = std::string("SET statement_timeout = ") + statement_timeout_ms +
                                  "; SET idle_in_transaction_session_timeout = " + idle_in_transaction_timeout_ms +
                                  "; SET client_min_messages = warning";
        PGresult* r = PQexec(c->pg, setup.c_str());
        const bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        std::string msg = ok ? "" : message_lines(r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
        PQclear(r);
        if (!ok) throw StoreError(spec_.name + ": " + std::string(op) + ": cannot set up the connection: " + msg);
        return c;
    }

    void give_back(std::unique_ptr<Conn> c, bool reusable) {
        const bool keep = reusable && !c->server_ended && PQstatus(c->pg) == CONNECTION_OK &&
                          PQtransactionStatus(c->pg) == PQTRANS_IDLE;
        if (!keep) c.reset();
        {
            std::lock_guard lk(mu_);
            if (keep) {
                idle_.push_back(std::move(c));
            } else {
                --open_;
            }
        }
        cv_.notify_one();
    }

    ConnSpec spec_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Conn>> idle_;
    std::size_t open_ = 0;  ///< idle and lent
};

}  // namespace gg::proxy::pgstore
