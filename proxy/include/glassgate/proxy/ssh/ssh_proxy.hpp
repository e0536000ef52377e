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
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "glassgate/config/config.hpp"
#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/recording/recording_writer.hpp"
#include "glassgate/proxy/lifecycle/session_closers.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::breakglass {
class Service;
}

namespace gg::proxy::ssh {

/// Failed sign-ins per source address, with a doubling wait once `max_failures` is reached.
class AuthThrottle {
public:
    explicit AuthThrottle(int max_failures) : max_(max_failures) {}
    /// Seconds the source must still wait (0: may try now).
    std::chrono::seconds wait_for(const std::string& source, std::chrono::steady_clock::time_point now);
    void failure(const std::string& source, std::chrono::steady_clock::time_point now);
    void success(const std::string& source);

private:
    struct Entry {
        int failures = 0;
        std::chrono::steady_clock::time_point last{};
        std::chrono::steady_clock::time_point blocked_until{};
    };
    std::mutex mu_;
    std::map<std::string, Entry> entries_;
    int max_;
};

/// Approved identities by client public key (fingerprint), for [ssh] sso_cache.
class ApprovalCache {
public:
    struct Entry {
        std::string identity;
        std::vector<std::string> groups;
        std::chrono::steady_clock::time_point expires{};
    };
    void put(const std::string& key_fingerprint, Entry e);
    std::optional<Entry> find(const std::string& key_fingerprint, std::chrono::steady_clock::time_point now);

private:
    std::mutex mu_;
    std::map<std::string, Entry> entries_;
};

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

/// Serves one client connection to the end. Never throws.
boost::asio::awaitable<void> handle_client(boost::asio::ip::tcp::socket sock, std::shared_ptr<Services> svc);

/// Connects to an SSH target and returns its host key as "<type> <base64>" (for `glassgate target
/// pin`). Blocking; throws OperationalError with the reason.
std::string fetch_host_key(const config::Target& target, std::chrono::milliseconds timeout);

}  // namespace gg::proxy::ssh
