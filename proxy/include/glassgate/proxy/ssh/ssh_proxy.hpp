#pragma once
// The SSH path: one connection = one strand owning a non-blocking libssh server session (the
// client's leg) and a non-blocking libssh client session (the backend's leg), both driven by
// readiness waits on their sockets; no thread per session, no blocking libssh call on an io thread.
//
// Sign-in is keyboard-interactive: a device-code login whose URL and code are shown in the prompt.
// The backend is reached with the target's stored key or password; its host key must equal the
// pinned one. Channels (shell, exec, sftp, window changes, signals, exit status) are relayed with
// back-pressure and recorded. See docs/ssh.md.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "glassgate/proxy/cluster/recording_shipper.hpp"
#include "glassgate/config/config.hpp"
#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/recording/recording_writer.hpp"
#include "glassgate/proxy/lifecycle/session_closers.hpp"
#include "glassgate/proxy/lifecycle/descriptor_budget.hpp"
#include "glassgate/proxy/lifecycle/storage_guard.hpp"
#include "glassgate/proxy/ssh/auth_throttle.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::breakglass {
class Service;
}

namespace gg::proxy::ssh {

struct Services {
    Services(const config::Config& cfg, StateStore& store, Bytes secrets_key, RecordingService& recordings,
             std::shared_ptr<identity::IdentityProvider> idp, Metrics& metrics,
             std::atomic<std::uint64_t>& active_sessions, std::shared_ptr<boost::asio::thread_pool> blocking);
    ~Services();
    Services(const Services&) = delete;
    Services& operator=(const Services&) = delete;

    const config::Config& cfg;
    StateStore& store;
    Bytes secrets_key;
    RecordingService& recordings;
    std::shared_ptr<identity::IdentityProvider> idp;  ///< null without [idp]: SSO sign-in is refused
    Metrics& metrics;
    std::atomic<std::uint64_t>& active_sessions;
    std::shared_ptr<breakglass::Service> breakglass;  ///< ACCOUNT:TARGET logins; null: none
    /// Admission by storage (free space, store backlog), checked before sign-in; null: not checked.
    std::shared_ptr<StorageGuard> storage;
    /// Admission by open-file descriptors, checked with storage; null: not checked.
    std::shared_ptr<DescriptorBudget> descriptors;
    /// Ships recordings into the shared store; null: the embedded store (nothing to ship).
    cluster::RecordingShipper* shipper = nullptr;
    std::shared_ptr<boost::asio::thread_pool> blocking;
    AuthThrottle throttle;
    ApprovalCache approvals;
    std::string host_key_fingerprint;  ///< SHA256:... of glassgate's own host key (logged at start)
    std::atomic<bool> stopping{false};

    /// Open connections, so shutdown can end them; `why` reaches each user before the cut.
    SessionClosers closers;
    void close_all(const std::string& why) { closers.close_all(why); }

    struct Bind;
    std::unique_ptr<Bind> bind;  ///< libssh's ssh_bind holding the host key; used under its mutex
};

/// Loads glassgate's host key ([ssh] host_key or <state_dir>/ssh_host_ed25519_key), generating an
/// Ed25519 key (0600) when the file does not exist. Throws OperationalError naming the file.
std::unique_ptr<Services> make_services(const config::Config& cfg, StateStore& store, Bytes secrets_key,
                                        RecordingService& recordings, std::shared_ptr<identity::IdentityProvider> idp,
                                        Metrics& metrics, std::atomic<std::uint64_t>& active_sessions,
                                        std::shared_ptr<boost::asio::thread_pool> blocking);

/// Serves one client connection to the end. Never throws: an internal error ends the connection
/// and is logged (spawn it with logging::LogEscaped all the same).
boost::asio::awaitable<void> handle_client(boost::asio::ip::tcp::socket sock, std::shared_ptr<Services> svc);

}  // namespace gg::proxy::ssh
