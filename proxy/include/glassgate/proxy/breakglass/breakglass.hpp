#pragma once
// Break-glass, the I/O side: accounts in the store namespace "breakglass" (key = account name,
// value = session::breakglass::Account JSON), the emergency declaration in namespace "emergency"
// (key "declaration"), Argon2id passphrase hashes (libsodium), the mode (IdP monitor + declaration),
// failure limits, the atomic staged -> in-use consume, and the audit events and alerts of every step.
//
// Protocol paths (PostgreSQL, SSH) call two things:
//   co_await service->authenticate(attempt)  -> Decision (grant = the consumed account handle)
//   service->session_closed(grant, ...)      -> account `used`, rotation queued if the rule says so
// Everything else here is shared with the CLI (`breakglass stage|list|combine`, `emergency ...`).

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/secret.hpp"
#include "glassgate/proxy/ops/alerts.hpp"
#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/breakglass.hpp"

namespace gg::proxy::breakglass {

namespace bg = session::breakglass;

inline constexpr std::string_view accounts_namespace = "breakglass";
inline constexpr std::string_view emergency_namespace = "emergency";

// --- passphrase hashing (libsodium Argon2id, crypto_pwhash_str) --------------------------------

/// Argon2id encoded hash of the normalised passphrase. Blocking (~50-100 ms, 64 MiB).
std::string hash_passphrase(std::string_view normalised);
/// Constant-time verification of `typed` (normalised first) against an encoded hash. Blocking.
bool verify_passphrase(const std::string& hash, const Secret& typed);

// --- store operations shared by serve and the CLI ---------------------------------------------

struct Staged {
    Secret passphrase;                 ///< "ABCD-EFGH-..." (shown once, never stored)
    std::vector<std::string> shares;   ///< formatted shares when split; else empty
    bg::Account account;
    std::optional<bg::Account> previous;  ///< the revoked previous state, if any
};
/// Generates a passphrase (OpenSSL RAND), hashes it, stores the account `staged` (replacing any
/// previous passphrase, which is thereby revoked) and appends the audit event `breakglass.stage`.
/// `shares` 0: not split; else 2 <= threshold <= shares <= 255.
Staged stage_account(StateStore& store, const std::string& account, const std::string& by, session::TimePoint now,
                     int shares = 0, int threshold = 0);
/// Every stored account, by name.
std::vector<bg::Account> list_accounts(StateStore& store);
std::optional<bg::Account> load_account(StateStore& store, std::string_view name);

std::optional<bg::Declaration> load_declaration(StateStore& store);
/// Stores the declaration (replacing any) and audits `emergency.declare`.
void declare_emergency(StateStore& store, const bg::Declaration& d);
/// Removes the declaration; false if there was none. Audits `emergency.end`.
bool end_emergency(StateStore& store, const std::string& by, session::TimePoint now);

/// Rule specs for the pure matcher from the configuration's [[fallback]] rules.
std::vector<bg::RuleSpec> rule_specs(const config::Config& cfg);

// --- the authenticator ---------------------------------------------------------------------

/// One emergency login attempt as a protocol path presents it.
struct Attempt {
    std::string account;
    Secret passphrase;
    std::string reason;      ///< as stated by the user (raw; cleaned here)
    std::string target;
    std::string source;      ///< client "ip:port"
    std::string session_id;  ///< the session that consumes the account on success
    std::string protocol;    ///< "postgres" | "ssh" (audit, metrics)
};

enum class Outcome {
    granted,
    outside_emergency,   ///< IdP healthy and nothing declared: SSO is available
    no_rule,             ///< no armed rule lets this account reach this target
    reason_required,
    throttled,           ///< too many failures for this account or source: wait
    bad_passphrase,
    not_staged,          ///< used, in use, revoked, never staged, or lost the race
    error,               ///< store failure: refused (fail closed)
};
std::string_view to_string(Outcome) noexcept;

/// The consumed account: what a session keeps until it closes.
struct Grant {
    std::string account;
    std::uint64_t generation = 0;
    std::string session_id;
    std::string target;
    std::string reason;
    std::string source;
    std::string protocol;
    std::size_t rule_index = 0;               ///< into cfg.fallbacks
    std::string rule_name;
    std::chrono::milliseconds max_session{};  ///< min(rule.max_session, target.max_session)
    std::chrono::milliseconds warn_before{};  ///< the rule's warn_before, capped below max_session
    bool rotate_on_close = false;
    std::vector<std::string> notify;
};

struct Decision {
    Outcome outcome = Outcome::error;
    std::optional<Grant> grant;    ///< set iff granted
    std::string public_message;    ///< for the client: says what to do, reveals nothing about the passphrase
    std::string log_reason;        ///< precise, for logs and audit
    bg::Mode mode;
    [[nodiscard]] bool ok() const noexcept { return outcome == Outcome::granted; }
};

class Service : public std::enable_shared_from_this<Service> {
public:
    /// `cfg`, `store`, `metrics` must outlive the service. `idp` may be null (no [idp]: the mode is
    /// emergency only by declaration). `pool` runs the Argon2id work; `on_rotation_queued` (may be
    /// empty) is called after a rotation job was written.
    Service(const config::Config& cfg, StateStore& store, std::shared_ptr<identity::IdentityProvider> idp,
            Metrics& metrics, std::shared_ptr<Notifier> notifier, std::shared_ptr<boost::asio::thread_pool> pool);

    /// The mode now (IdP state + the stored declaration, read from the store each call).
    [[nodiscard]] bg::Mode mode(session::TimePoint now) const;
    /// True when `account` is named by any [[fallback]] rule: logins with it take the break-glass branch.
    [[nodiscard]] bool is_account(std::string_view account) const;

    /// The whole check: mode, rule, reason, limits, passphrase (Argon2id on the blocking pool; an
    /// unknown account is verified against a dummy hash so it costs the same), then the atomic
    /// staged -> in-use compare-and-set. Audits `breakglass.login` (ok or denied) and alerts. Resumes on
    /// the caller's executor. The argument must be a named object (GCC 12 coroutine rule).
    boost::asio::awaitable<Decision> authenticate(const Attempt& attempt);
    /// The same, blocking, on the calling thread (tests and the CLI).
    Decision authenticate_blocking(const Attempt& attempt, session::TimePoint now);

    /// The session that holds `grant` ended: account -> used, audit `breakglass.used`, alert
    /// `breakglass.session_end`, and a rotation job if the rule has rotate_on_close. Never throws.
    void session_closed(const Grant& grant, std::string_view close_reason, session::TimePoint now);
    void set_on_rotation_queued(std::function<void()> f) { on_rotation_queued_ = std::move(f); }
    /// A break-glass session found open in the index at start-up (the proxy died during it): the
    /// credential stays consumed and is marked used, and the rotation is queued as if it had closed.
    void recover_session(const session::SessionRecord& rec, session::TimePoint now);

    /// Watches the mode every `interval`; audits and alerts `emergency.entered` / `emergency.left`
    /// (to every rule's notify URLs) and keeps the glassgate_emergency_mode gauge.
    void start_mode_watch(boost::asio::any_io_executor ex, std::chrono::milliseconds interval = std::chrono::seconds(1));
    void stop() { stopped_ = true; }

private:
    void audit(const std::string& type, const std::string& outcome, const Attempt& a, const std::string& reason,
               boost::json::object details = {});
    void alert(const std::vector<std::string>& urls, const std::string& event, const Attempt& a, const std::string& reason,
               const bg::Mode& mode, boost::json::object extra = {});
    std::vector<std::string> all_notify_urls() const;
    /// Emits emergency.entered / emergency.left when `m` differs from the last mode observed (by the
    /// watch loop or a login), so alerts keep their real order.
    void observe_mode(const bg::Mode& m);

    const config::Config& cfg_;
    StateStore& store_;
    std::shared_ptr<identity::IdentityProvider> idp_;
    Metrics& metrics_;
    std::shared_ptr<Notifier> notifier_;
    std::shared_ptr<boost::asio::thread_pool> pool_;
    std::vector<bg::RuleSpec> rules_;
    std::string dummy_hash_;
    std::function<void()> on_rotation_queued_;
    mutable std::mutex mu_;
    bg::FailureLimiter limiter_;
    std::optional<bool> last_emergency_;  ///< guarded by mu_
    std::atomic<bool> stopped_{false};
};

/// Declares glassgate_breakglass_logins_total and glassgate_emergency_mode.
void declare_metrics(Metrics& m);

}  // namespace gg::proxy::breakglass
