#pragma once
// The identity layer's I/O side: talks to the configured OpenID Connect provider (discovery, JWKS,
// device authorization, token polling), verifies tokens against the cached JWKS, and keeps the IdP
// health state that gates break-glass. The decisions themselves are the pure gg::oidc code.
//
// JWKS cache: in memory and in the state store (namespace "jwks", key = issuer), so a restart during
// an IdP outage still validates tokens. Refreshed by every health probe and, on an unknown `kid`, at
// most once per 30 s however many unknown kids arrive.
//
// Thread-safe: every public member may be called from any thread; I/O runs on the executor given at
// construction.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/oidc/device_flow.hpp"
#include "glassgate/protocols/oidc/discovery.hpp"
#include "glassgate/protocols/oidc/health.hpp"
#include "glassgate/protocols/oidc/jwk.hpp"
#include "glassgate/protocols/oidc/jwt.hpp"
#include "glassgate/proxy/http/client.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::identity {

/// What `glassgate status` shows about the IdP.
struct HealthSnapshot {
    oidc::IdpHealth state = oidc::IdpHealth::unknown;
    std::chrono::system_clock::time_point since{};
    std::optional<std::chrono::system_clock::time_point> last_probe_at;
    bool last_probe_ok = false;
    std::string last_probe_evidence;
    int consecutive_failures = 0;
    std::size_t cached_keys = 0;
    std::optional<std::chrono::system_clock::time_point> jwks_fetched_at;
};

/// Outcome of a device-code sign-in.
struct DeviceLoginResult {
    std::optional<oidc::Identity> identity;  ///< set on success
    std::string id_token;                    ///< the verified ID token (success only)
    std::string reason;                      ///< precise failure reason (log/audit)
    std::string public_message;              ///< short text for the client
};

/// Declares the metric families this layer updates.
void declare_metrics(Metrics& m);

/// The HTTP options used for the IdP (CA file, timeouts).
http::ClientOptions idp_http_options(const config::IdpConfig& cfg, std::chrono::milliseconds timeout);

/// Fetches and checks discovery + JWKS once; each request within `timeout`. Shared by the probe,
/// `glassgate login` and tests. On failure `error` is set and `passive_failure` says whether it is
/// evidence that the IdP is unreachable (as opposed to, say, a JWKS with no usable key).
struct DiscoveryFetch {
    std::optional<oidc::Discovery> discovery;
    std::optional<oidc::KeySet> keys;
    std::string jwks_json;
    std::string error;
    std::string evidence;  ///< one line for logs: "discovery 200, jwks 200 (1 key)"
};
boost::asio::awaitable<DiscoveryFetch> fetch_discovery_and_jwks(const config::IdpConfig& cfg,
                                                                std::chrono::milliseconds timeout);

/// Coroutine parameters: pass named objects, not temporaries (see http::fetch about GCC 12).
/// Runs an RFC 8628 device login against `discovery` until approval, denial or expiry.
/// `show` is called once with the authorization (URL and user code) to display. The returned ID token
/// is verified with `verify` before success is reported. `on_http` receives every exchange's outcome
/// (for passive health evidence): success = the IdP answered properly.
boost::asio::awaitable<DeviceLoginResult> run_device_login(
    const config::IdpConfig& cfg, const oidc::Discovery& discovery,
    std::function<void(const oidc::DeviceAuthorization&)> show,
    std::function<boost::asio::awaitable<oidc::VerifyResult>(std::string)> verify,
    std::function<void(bool ok, const std::string& evidence)> on_http);

class IdentityProvider : public std::enable_shared_from_this<IdentityProvider> {
public:
    /// Loads the cached JWKS from the store (if any). `audit` and `metrics` must outlive this object.
    IdentityProvider(boost::asio::any_io_executor ex, config::IdpConfig cfg, StateStore& store, Metrics& metrics);

    /// Starts the periodic health probe (first probe at once).
    void start();
    /// Stops the probe loop (pending I/O is cancelled).
    void stop();

    /// Verifies a token (ID token or JWT access token). An unknown `kid` triggers one JWKS refresh
    /// (at most once per 30 s across all callers) and a second attempt. Counts
    /// glassgate_auth_total{method,outcome}.
    /// `method` labels the metric; it must outlive the call (pass a literal).
    boost::asio::awaitable<oidc::VerifyResult> verify_token(std::string token, std::string_view method = "token");

    /// Device-code sign-in (used by the SSH keyboard-interactive path and the psql `sso` password).
    boost::asio::awaitable<DeviceLoginResult> device_login(std::function<void(const oidc::DeviceAuthorization&)> show);

    /// Runs one probe now (normally driven by the loop; tests call it directly).
    boost::asio::awaitable<void> probe_once();

    [[nodiscard]] HealthSnapshot health() const;
    [[nodiscard]] oidc::IdpHealth state() const;
    [[nodiscard]] const config::IdpConfig& config() const noexcept { return cfg_; }

    /// Evidence from a real sign-in attempt (connection refused, TLS failure, timeout, 5xx = failure).
    void passive_evidence(bool ok, const std::string& evidence);

private:
    boost::asio::awaitable<void> probe_loop();
    boost::asio::awaitable<bool> refresh_for_unknown_kid();
    void install_keys(oidc::KeySet keys, std::string json, std::chrono::system_clock::time_point fetched, bool persist);
    void record_transition(const std::optional<oidc::Transition>& t);
    void update_gauges();
    oidc::VerifyOptions verify_options() const;

    boost::asio::any_io_executor ex_;
    config::IdpConfig cfg_;
    StateStore& store_;
    Metrics& metrics_;

    mutable std::mutex mu_;
    std::shared_ptr<const oidc::KeySet> keys_;
    /// oidc::SignatureCache shared by the io threads: the lock lives here, protocols/ has none.
    class LockedSignatureCache final : public oidc::SignatureMemo {
    public:
        bool contains(std::string_view kid, std::string_view alg, std::string_view signing_input,
                      std::string_view signature) const override {
            std::lock_guard lk(mu_);
            return cache_.contains(kid, alg, signing_input, signature);
        }
        void insert(std::string_view kid, std::string_view alg, std::string_view signing_input,
                    std::string_view signature) override {
            std::lock_guard lk(mu_);
            cache_.insert(kid, alg, signing_input, signature);
        }

    private:
        mutable std::mutex mu_;
        oidc::SignatureCache cache_;
    };
    std::shared_ptr<LockedSignatureCache> sig_cache_;  ///< signatures verified with keys_ (replaced with it)
    std::optional<oidc::Discovery> discovery_;
    std::optional<std::chrono::system_clock::time_point> jwks_fetched_at_;
    oidc::HealthMonitor monitor_;
    std::optional<std::chrono::system_clock::time_point> last_probe_at_;
    bool last_probe_ok_ = false;
    std::string last_probe_evidence_;
    std::optional<std::chrono::steady_clock::time_point> last_kid_refresh_;
    std::atomic<bool> stopped_{false};
};

}  // namespace gg::proxy::identity
