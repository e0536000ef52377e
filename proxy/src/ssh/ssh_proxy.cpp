// The SSH listener's shared state (host key, bind, throttle, approval cache) and the entry points
// that serve one client connection.

#include "glassgate/proxy/ssh/ssh_proxy.hpp"

#include "connection.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "keys.hpp"

namespace gg::proxy::ssh {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Services::Services(const config::Config& c, StateStore& s, Bytes key, RecordingService& r,
                   std::shared_ptr<identity::IdentityProvider> i, Metrics& m, std::atomic<std::uint64_t>& a,
                   std::shared_ptr<asio::thread_pool> b)
    : cfg(c), store(s), secrets_key(std::move(key)), recordings(r), idp(std::move(i)), metrics(m), active_sessions(a),
      blocking(std::move(b)), throttle(c.ssh.max_auth_failures), bind(std::make_unique<Bind>()) {}

Services::~Services() = default;

std::unique_ptr<Services> make_services(const config::Config& cfg, StateStore& store, Bytes secrets_key,
                                        RecordingService& recordings, std::shared_ptr<identity::IdentityProvider> idp,
                                        Metrics& metrics, std::atomic<std::uint64_t>& active_sessions,
                                        std::shared_ptr<asio::thread_pool> blocking) {
    auto svc = std::make_unique<Services>(cfg, store, std::move(secrets_key), recordings, std::move(idp), metrics,
                                          active_sessions, std::move(blocking));
    const auto path = cfg.ssh.host_key.value_or(cfg.server.state_dir / "ssh_host_ed25519_key");
    KeyHandle key = load_or_create_host_key(path);
    svc->host_key_fingerprint = key_fingerprint(key.get());
    svc->bind->bind = BindHandle(ssh_bind_new());
    ssh_bind bind = svc->bind->bind.get();
    if (!bind) throw OperationalError("cannot create the SSH listener state");
    const bool process_config = false;
    const int verbosity = SSH_LOG_NOLOG;
    ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &process_config);
    ssh_bind_options_set(bind, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity);
    if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, key.get()) != SSH_OK) {
        throw OperationalError("cannot use the SSH host key " + path.string() + ": " + ssh_get_error(bind));
    }
    (void)key.release();  // the bind owns the key from here
    metrics.declare("glassgate_ssh_auth_total", Metrics::Type::counter, "SSH sign-in attempts by method and outcome.");
    spdlog::info("ssh: host key {} ({})", svc->host_key_fingerprint, path.string());
    return svc;
}

asio::awaitable<void> handle_client(tcp::socket sock, std::shared_ptr<Services> svc) {
    // The one catch of a connection: whatever a pass throws ends the connection here.
    std::string peer = "?";
    try {
        auto c = std::make_shared<Connection>(std::move(sock), std::move(svc));
        peer = c->peer();
        co_await c->run();
    } catch (const std::exception& e) {
        spdlog::error("ssh {}: connection ended by an internal error: {}", peer, e.what());
    }
}

}  // namespace gg::proxy::ssh
