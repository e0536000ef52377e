// The PostgreSQL path's entry points: one client connection (handle_client), the backend pool, the
// metric families. The connection itself is ClientSession (client_session.hpp).

#include "glassgate/proxy/postgres/pg_proxy.hpp"

#include "client_session.hpp"
#include "glassgate/proxy/ops/logging.hpp"

namespace gg::proxy::postgres {
std::shared_ptr<BackendPool> make_backend_pool(Metrics* metrics) { return std::make_shared<BackendPool>(metrics); }
void stop_backend_pool(BackendPool& pool) { pool.stop(); }

void declare_metrics(Metrics& m) {
    m.declare("glassgate_connections_total", Metrics::Type::counter, "Client connections accepted, by protocol.");
    m.declare("glassgate_postgres_backend_connections_total", Metrics::Type::counter,
              "Backend connections by session: opened, or reused from the pool.");
    m.declare("glassgate_postgres_pool_idle", Metrics::Type::gauge, "Idle backend connections kept for reuse, by target.");
    m.declare("glassgate_sessions_total", Metrics::Type::counter, "Sessions ended, by protocol, auth method and close reason.");
    m.declare("glassgate_cancel_requests_total", Metrics::Type::counter, "PostgreSQL cancel requests by outcome.");
}

// The one catch of a session: whatever escapes it is logged here, and the connection's objects go.
asio::awaitable<void> handle_client(tcp::socket sock, std::shared_ptr<Services> svc) {
    try {
        auto s = std::make_shared<ClientSession>(std::move(sock), std::move(svc));
        co_await s->run();
    } catch (...) {
        LogEscaped{"postgres connection"}(std::current_exception());
    }
}

}  // namespace gg::proxy::postgres
