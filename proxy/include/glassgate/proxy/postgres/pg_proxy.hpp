#pragma once
// The PostgreSQL path: one coroutine per client connection, on its own strand. Terminates the
// client's protocol (TLS, startup, cleartext password carrying an SSO token or the word `sso` for an
// in-band device-code sign-in), checks the target's `allow`, opens the session and its recording,
// connects to the backend with the target's stored secret (SCRAM-SHA-256, MD5 or cleartext, TLS per
// target), then relays whole messages both ways with recording taps, back-pressure, the session
// deadline and warnings. See docs/postgres.md.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "glassgate/proxy/cluster/recording_shipper.hpp"
#include "glassgate/config/config.hpp"
#include "glassgate/proxy/breakglass/breakglass.hpp"
#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/recording/recording_writer.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/proxy/lifecycle/session_closers.hpp"
#include "glassgate/proxy/lifecycle/descriptor_budget.hpp"
#include "glassgate/proxy/lifecycle/storage_guard.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::postgres {

class BackendPool;
/// `metrics` (if given) gets the gauge glassgate_postgres_pool_idle{target}.
std::shared_ptr<BackendPool> make_backend_pool(Metrics* metrics = nullptr);
/// Closes the pool's idle connections and keeps no more (shutdown).
void stop_backend_pool(BackendPool& pool);

/// Maps the BackendKeyData glassgate gave a client to the backend's real one, so a CancelRequest is
/// forwarded only for an active session with the exact key (compared in constant time).
class CancelRegistry {
public:
    struct Target {
        boost::asio::ip::tcp::endpoint backend;
        std::int32_t backend_pid = 0;
        std::uint32_t backend_key = 0;
        std::string session_id;
    };
    /// Registers a session and returns the key to hand to the client with the backend's own pid (so
    /// that BackendKeyData, pg_backend_pid() and NOTIFY sender pids agree). Keys are random and unique
    /// among the sessions sharing a pid (two servers may use the same pid).
    std::uint32_t add(Target t);
    /// Forgets the session registered under (pid, key).
    void remove(std::int32_t pid, std::uint32_t key);
    /// The backend to cancel, if (pid, key) matches an active session.
    std::optional<Target> find(std::int32_t pid, std::uint32_t key) const;
    /// Backend pids of every active session (rotation spares them when ending lingering sessions).
    std::set<int> backend_pids() const;

private:
    struct Entry {
        std::uint32_t key = 0;
        Target target;
    };
    mutable std::mutex mu_;
    std::multimap<std::int32_t, Entry> entries_;  ///< by the backend's pid
};

struct Services {
    const config::Config& cfg;
    StateStore& store;
    Bytes secrets_key;
    RecordingService& recordings;
    std::shared_ptr<identity::IdentityProvider> idp;  ///< null without [idp]: SSO sign-in is refused
    Metrics& metrics;
    std::shared_ptr<boost::asio::ssl::context> client_tls;  ///< null without [tls]
    std::atomic<std::uint64_t>& active_sessions;
    CancelRegistry cancels;
    std::chrono::milliseconds pre_auth_timeout{10'000};
    /// Threads for blocking work (sealing recordings) so io threads never wait on the disk.
    std::shared_ptr<boost::asio::thread_pool> blocking = std::make_shared<boost::asio::thread_pool>(2);
    std::atomic<bool> stopping{false};

    /// Idle backend connections kept for reuse (targets with pool_size > 0).
    std::shared_ptr<BackendPool> pool = make_backend_pool();

    /// Open sessions, so shutdown can end them; `why` reaches each client as a FATAL message.
    SessionClosers closers;
    void close_all(const std::string& why) { closers.close_all(why); }
    /// Break-glass authenticator; null: logins as emergency accounts are refused like any unknown user.
    std::shared_ptr<breakglass::Service> breakglass;
    /// Admission by storage (free space, store backlog), checked before sign-in; null: not checked.
    std::shared_ptr<StorageGuard> storage;
    /// Admission by open-file descriptors, checked with storage; null: not checked.
    std::shared_ptr<DescriptorBudget> descriptors;
    /// Ships recordings into the shared store; null: the embedded store (nothing to ship).
    cluster::RecordingShipper* shipper = nullptr;
    /// Several instances on a shared store: each session's cancel key is published in the store (as a
    /// keyed hash, never the key itself) with the instance that carries it, so a CancelRequest that lands
    /// on another instance is relayed to this one (docs/ha.md, "Cancel requests").
    struct CrossInstanceCancel {
        std::string instance;  ///< [server] instance
        Bytes tag_key;         ///< keys the hash of (pid, key)
        /// Publishing and withdrawing run in order on this strand of the blocking pool (a short session's
        /// withdraw never overtakes its publish).
        boost::asio::strand<boost::asio::thread_pool::executor_type> writes;
    };
    std::optional<CrossInstanceCancel> cross_instance;
};

/// Creates the client-facing TLS context from [tls] (TLS 1.2+, ALPN "postgresql" accepted).
std::shared_ptr<boost::asio::ssl::context> make_client_tls(const config::TlsConfig& tls);

/// Declares the metric families of this path.
void declare_metrics(Metrics& m);

/// Key/value namespace of the published cancel keys (cross-instance cancel).
inline constexpr std::string_view cancel_namespace = "cancel";
/// Removes the cancel keys `instance` published (its sessions are over: it stopped or died).
void forget_cancel_keys(StateStore& store, const std::string& instance);

/// Serves one client connection to the end. Never throws.
boost::asio::awaitable<void> handle_client(boost::asio::ip::tcp::socket sock, std::shared_ptr<Services> svc);

}  // namespace gg::proxy::postgres
