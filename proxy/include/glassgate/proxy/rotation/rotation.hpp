#pragma once
// Rotation of a target's backend credential after a break-glass session (`rotate_on_close`).
//
// Durable and idempotent, one job per target in the store namespace "rotation" (key = target):
//   1. queue_rotation(): the job is written (state "queued") when the session closes.
//   2. the worker generates the new secret and writes it into the job, encrypted, as "pending",
//      before anything changes on the backend; a retry reuses that same pending secret.
//   3. the protocol's rotator changes the backend (PostgreSQL: ALTER ROLE with a SCRAM verifier,
//      lingering sessions terminated, login with the new secret verified).
//   4. the new secret is committed to the secret store, then the job is deleted.
// A failure keeps the job with its error and the next attempt time (exponential backoff, 5 s to
// 10 min); `serve` reruns pending jobs at start. At every step either the current secret or the
// pending one is valid on the backend, and both are in the store: the proxy never loses the only
// valid secret. Until the job is gone the target is "rotation-pending" (status, metrics, alert).

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/secret.hpp"
#include "glassgate/proxy/ops/alerts.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::rotation {

inline constexpr std::string_view store_namespace = "rotation";

/// One job as stored (JSON). `pending` is AES-256-GCM under the secrets key, bound to the target.
struct Job {
    std::string target;
    std::string session;          ///< the break-glass session that caused it
    std::string account;
    session::TimePoint queued_at{};
    int attempts = 0;
    std::optional<session::TimePoint> next_attempt;  ///< absent: now
    std::string last_error;
    std::string pending;          ///< sealed new secret (raw bytes); empty until generated
    /// The instance working on the job and until when (a lease, renewed by nobody: an instance that
    /// dies mid-rotation leaves it to expire, then another instance takes the job over).
    std::string lease_owner;
    std::optional<session::TimePoint> lease_until;
};
/// How long a claimed rotation job belongs to the instance that claimed it.
inline constexpr std::chrono::seconds rotation_lease{60};
boost::json::object to_json(const Job& j, bool with_secret = true);
std::optional<Job> job_from_json(std::string_view text);

/// Queues (or re-queues) the rotation of `target`. An existing job keeps its pending secret.
void queue_rotation(StateStore& store, const std::string& target, const std::string& session,
                    const std::string& account, session::TimePoint now);
/// Jobs still open (what `status` calls rotation-pending), by target.
std::vector<Job> pending_jobs(StateStore& store);

/// The outcome of one attempt by a protocol rotator.
struct Outcome {
    bool ok = false;
    bool used_pending = false;   ///< the backend already had the pending secret (an earlier attempt set it)
    std::string error;
    int terminated = 0;          ///< lingering backend sessions ended
};

/// How one protocol rotates. Both functions block and run on the blocking pool.
struct Rotator {
    std::function<Secret()> generate;
    /// Changes the backend from `current` to `next`; `keep_pids` are backend sessions of live proxy
    /// sessions that must not be terminated.
    std::function<Outcome(const config::Target&, const Secret& current, const Secret& next,
                          const std::set<int>& keep_pids)>
        apply;
};

/// PostgreSQL: libpq connects with `current` (or `next` if an earlier attempt already switched),
/// computes a SCRAM-SHA-256 verifier client-side (PQencryptPasswordConn), runs ALTER ROLE ... PASSWORD
/// '<verifier>', terminates the role's other backend sessions except `keep_pids`, then logs in with
/// `next` to verify. Blocking.
Outcome rotate_postgres(const config::Target& target, const Secret& current, const Secret& next,
                        const std::set<int>& keep_pids);
/// A new random backend password (32 bytes, base64url: 43 characters).
Secret generate_password();

class Worker : public std::enable_shared_from_this<Worker> {
public:
    /// `store`, `metrics` and `cfg` must outlive the worker.
    Worker(boost::asio::any_io_executor ex, std::shared_ptr<boost::asio::thread_pool> pool, const config::Config& cfg,
           StateStore& store, Bytes secrets_key, Metrics& metrics, std::shared_ptr<Notifier> notifier);

    /// Registers how targets of `protocol` rotate (PostgreSQL is registered by the constructor).
    void set_rotator(config::Protocol protocol, Rotator r);
    /// Backend pids to spare for `target` (live proxy sessions); called on the blocking pool.
    void set_keep_pids(std::function<std::set<int>(const std::string& target)> f) { keep_pids_ = std::move(f); }
    /// Runs every due job now and then every `interval`.
    void start(std::chrono::milliseconds interval = std::chrono::seconds(1));
    void stop();
    /// Wakes the loop (a job was queued).
    void poke();

private:
    void run_due();
    void run_job(const std::string& target);
    /// Probes the target's backend (TCP connect, 1 s; at most every 5 s); true when it is reachable now and
    /// was not at the previous probe (or was never probed by this process). Blocking; on the pool.
    bool backend_came_back(const std::string& target);

    boost::asio::any_io_executor ex_;
    std::shared_ptr<boost::asio::thread_pool> pool_;
    const config::Config& cfg_;
    StateStore& store_;
    Bytes key_;
    Metrics& metrics_;
    std::shared_ptr<Notifier> notifier_;
    std::function<std::set<int>(const std::string&)> keep_pids_;
    std::mutex mu_;
    std::map<config::Protocol, Rotator> rotators_;
    std::set<std::string> running_;
    struct Probe {
        bool up = false;
        std::chrono::steady_clock::time_point at{};
    };
    std::map<std::string, Probe> reachable_;  // by target: the backend at the last probe of a waiting job
    std::atomic<bool> stopped_{false};
    std::shared_ptr<void> timer_;
};

/// Declares glassgate_rotation_pending and glassgate_rotations_total.
void declare_metrics(Metrics& m);

}  // namespace gg::proxy::rotation
