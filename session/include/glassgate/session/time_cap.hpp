#pragma once
// The time-cap policy of a session, decided once for both protocols: the warnings before the hard
// cap, the cap itself and the idle timeout, as a pure function of (limits, start, last activity, now,
// warnings already given) returning what the watchdog must do next and when. Pure: no clock, no I/O.
//
// The schedule: a warning `warn_before` ahead of the cap (when 0 < warn_before < cap), and one a
// minute ahead (when 1m < cap and warn_before is not 1m), earliest first; the session ends at the cap,
// or after `idle_timeout` without traffic, whichever comes first.

#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

namespace gg::session {

struct TimeLimits {
    std::optional<std::chrono::milliseconds> cap;                     ///< hard cap; absent: none
    std::chrono::milliseconds warn_before{std::chrono::minutes(5)};   ///< the early warning; 0: none
    std::optional<std::chrono::milliseconds> idle_timeout;            ///< absent: off
};

enum class TimeAction {
    wait,      ///< nothing to do before `at`
    warn,      ///< tell the user the session ends in `remaining`
    end_cap,   ///< the cap is reached: end the session
    end_idle,  ///< idle for idle_timeout: end the session
};

struct TimeStep {
    TimeAction action = TimeAction::wait;
    /// wait: when to ask again (time_point::max(): never, unless activity moves the idle deadline).
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::time_point::max();
    std::chrono::milliseconds remaining{};  ///< warn: the warning's lead time ("ends in 5m")
    std::size_t warnings_sent = 0;          ///< the count to pass to the next call
};

/// The warnings' lead times for these limits, earliest warning first (largest lead time first).
std::vector<std::chrono::milliseconds> warning_schedule(const TimeLimits& limits);

/// What the watchdog does now. `warnings_sent` counts the schedule's warnings already given; when
/// several are overdue (the watchdog ran late), only the latest one due is given. The cap wins over
/// the idle timeout when both are due, unless the idle deadline came first.
TimeStep next_time_step(const TimeLimits& limits, std::chrono::steady_clock::time_point start,
                        std::chrono::steady_clock::time_point last_activity, std::chrono::steady_clock::time_point now,
                        std::size_t warnings_sent);

/// A break-glass session's limits: the rule's cap, never above the target's, and its warning lead
/// time, which must fall inside the cap (else half the cap). The target's idle timeout still applies.
TimeLimits breakglass_limits(const TimeLimits& target, std::chrono::milliseconds rule_cap,
                             std::chrono::milliseconds rule_warn_before);

}  // namespace gg::session
