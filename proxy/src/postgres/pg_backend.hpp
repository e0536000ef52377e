#pragma once
// Private: the backend leg — connect, TLS per target, startup, authentication with the stored secret.

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/secret.hpp"
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

}  // namespace gg::proxy::postgres
