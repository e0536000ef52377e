#pragma once
// Private: the backend leg — connect, TLS per target, startup, authentication with the stored secret.

#include <boost/asio/awaitable.hpp>

#include <boost/asio/steady_timer.hpp>

#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/secret.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "pg_conn.hpp"

namespace gg::proxy::postgres {

struct BackendSession {
    std::unique_ptr<Conn> conn;
    tcp::endpoint endpoint;
    std::vector<std::pair<std::string, std::string>> parameters;  ///< ParameterStatus, in order
    std::int32_t pid = 0;
    std::uint32_t key = 0;
    Bytes pending;  ///< bytes read after ReadyForQuery (normally none)
};

struct BackendResult {
    std::optional<BackendSession> session;
    std::string error;          ///< precise, for log and audit
    std::string client_error;   ///< what the client may see
    std::string sqlstate = "08006";
};

/// Connects to `target` as its backend_user with `secret`, asking for `database` and forwarding
/// `params` (already filtered). Each step is bounded by `timeout`.
asio::awaitable<BackendResult> connect_backend(const config::Target& target, const Secret& secret,
                                               const std::string& database,
                                               const std::vector<std::pair<std::string, std::string>>& params,
                                               std::chrono::milliseconds timeout);

/// A ParameterStatus report: the parameter's new value, or a parameter the session did not have.
void apply_parameter_status(BackendSession& session, std::pair<std::string, std::string> p);

/// Makes an idle backend connection fit for another session: DISCARD ALL (prepared statements,
/// portals, temporary tables, settings, session authorization, LISTEN, advisory locks) must complete
/// with ReadyForQuery 'I' within `timeout`; ParameterStatus reports update `session.parameters`.
/// Returns why not (empty: reset).
asio::awaitable<std::string> reset_backend(BackendSession& session, std::chrono::milliseconds timeout);

/// Idle backend connections left by SSO sessions that ended at rest, for later sessions with the same
/// target, database, credential and startup parameters (targets with pool_size > 0). Break-glass
/// sessions neither take nor leave connections. Connections idle longer than the target's pool_idle,
/// and any the server closed or wrote to while idle, are closed. Thread-safe.
class BackendPool {
public:
    using Params = std::vector<std::pair<std::string, std::string>>;
    explicit BackendPool(Metrics* metrics = nullptr) : metrics_(metrics) {}
    BackendPool(const BackendPool&) = delete;
    BackendPool& operator=(const BackendPool&) = delete;
    ~BackendPool();

    /// What a reused connection must match: target, database, backend user, the secret's digest
    /// (a rotated credential never reuses connections made with the old one) and the parameters.
    static std::string key(const config::Target& target, const std::string& database, const Secret& secret,
                           const Params& params);
    /// A live idle connection for `key` (the most recently parked), or nothing.
    std::optional<BackendSession> take(const std::string& key);
    /// Parks a reset connection; false (and the connection closed) when the target's pool is full or
    /// the pool is stopped.
    bool put(const std::string& key, BackendSession session, const config::Target& target);
    /// Closes every idle connection and parks no more (shutdown).
    void stop();

private:
    struct Entry {
        std::string key;
        std::string target;
        BackendSession session;
        std::chrono::steady_clock::time_point expires;
    };
    void arm_locked();
    void count_locked(const std::string& target);
    void on_sweep(const boost::system::error_code& ec);

    Metrics* metrics_;
    std::mutex mu_;
    std::list<Entry> entries_;  ///< most recently parked first
    bool stopped_ = false;
    std::optional<asio::steady_timer> sweeper_;  ///< wakes at the earliest expiry
    bool armed_ = false;
};

}  // namespace gg::proxy::postgres
