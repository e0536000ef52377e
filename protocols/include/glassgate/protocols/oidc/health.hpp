#pragma once
// IdP health decision machine (pure; see docs/identity.md "How IdP health is decided").
// Break-glass may open only while the state is `unreachable`, so every rule below errs towards
// *not* reaching it by accident, and towards not leaving it on a single lucky answer.
//
//            success                         failure (count < unreachable_after)
//   unknown ---------> healthy   unknown/healthy ---------------------------------> degraded
//   any state, failures in a row reach unreachable_after                  -------> unreachable
//   degraded/unreachable, successes in a row reach healthy_after          -------> healthy
//
// A failure resets the success count and a success resets the failure count. Probe results and
// passive evidence from real sign-ins count the same way.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace gg::oidc {

enum class IdpHealth {
    unknown,      ///< no evidence yet; not unreachable, so no break-glass
    healthy,
    degraded,     ///< some recent failures, not enough to call the IdP unreachable
    unreachable,  ///< the only state in which the idp_unreachable fallback may open
};

[[nodiscard]] std::string_view to_string(IdpHealth s) noexcept;

struct HealthConfig {
    int unreachable_after = 3;  ///< consecutive failures before unreachable; values < 1 count as 1
    int healthy_after = 2;      ///< consecutive successes before healthy again; values < 1 count as 1
};

enum class EvidenceSource {
    probe,    ///< the monitor's own discovery + JWKS fetch
    passive,  ///< a real sign-in's exchange with the IdP (device flow, JWKS refresh)
};

[[nodiscard]] std::string_view to_string(EvidenceSource s) noexcept;

/// A change of state, reported once, by the input that caused it.
struct Transition {
    IdpHealth from = IdpHealth::unknown;
    IdpHealth to = IdpHealth::unknown;
    std::chrono::system_clock::time_point at;
    std::string evidence;  ///< the text of the input that caused it
    EvidenceSource source = EvidenceSource::probe;
};

class HealthMonitor {
public:
    /// Starts in `unknown` at `now`.
    explicit HealthMonitor(HealthConfig config, std::chrono::system_clock::time_point now);

    /// A probe result. `evidence` is a short description ("discovery 200, jwks 3 keys",
    /// "connect: connection refused"), kept as the last evidence and copied into a transition.
    [[nodiscard]] std::optional<Transition> on_probe(bool success, std::string_view evidence,
                                                     std::chrono::system_clock::time_point now);
    /// Evidence from a real sign-in. Failure means the IdP could not be talked to (connection refused,
    /// TLS failure, timeout, HTTP 5xx, an unparseable discovery/JWKS document); success means it
    /// answered properly, whatever it answered (an access_denied is a healthy IdP saying no).
    [[nodiscard]] std::optional<Transition> on_passive(bool success, std::string_view evidence,
                                                       std::chrono::system_clock::time_point now);

    [[nodiscard]] IdpHealth state() const noexcept { return state_; }
    /// When the current state was entered (construction time for `unknown`).
    [[nodiscard]] std::chrono::system_clock::time_point since() const noexcept { return since_; }
    [[nodiscard]] int consecutive_failures() const noexcept { return failures_; }
    [[nodiscard]] int consecutive_successes() const noexcept { return successes_; }
    [[nodiscard]] const std::string& last_evidence() const noexcept { return last_evidence_; }
    [[nodiscard]] const HealthConfig& config() const noexcept { return config_; }

private:
    std::optional<Transition> on_input(bool success, std::string_view evidence, EvidenceSource source,
                                       std::chrono::system_clock::time_point now);

    HealthConfig config_;
    IdpHealth state_ = IdpHealth::unknown;
    std::chrono::system_clock::time_point since_;
    int failures_ = 0;
    int successes_ = 0;
    std::string last_evidence_;
};

}  // namespace gg::oidc
