#include "glassgate/session/time_cap.hpp"

#include <algorithm>

namespace gg::session {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

std::vector<milliseconds> warning_schedule(const TimeLimits& limits) {
    std::vector<milliseconds> out;
    if (!limits.cap) return out;
    const auto cap = *limits.cap;
    const auto warn = limits.warn_before;
    if (warn > milliseconds(0) && warn < cap) out.push_back(warn);
    if (std::chrono::minutes(1) < cap && warn != std::chrono::minutes(1)) out.push_back(std::chrono::minutes(1));
    std::sort(out.begin(), out.end(), std::greater<>());
    return out;
}

TimeStep next_time_step(const TimeLimits& limits, steady::time_point start, steady::time_point last_activity,
                        steady::time_point now, std::size_t warnings_sent) {
    constexpr auto never = steady::time_point::max();
    TimeStep step;
    step.warnings_sent = warnings_sent;
    const steady::time_point deadline = limits.cap ? start + *limits.cap : never;
    const steady::time_point idle_at = limits.idle_timeout ? last_activity + *limits.idle_timeout : never;
    const bool cap_due = deadline != never && now >= deadline;
    const bool idle_due = idle_at != never && now >= idle_at;
    if (cap_due && !(idle_due && idle_at < deadline)) {
        step.action = TimeAction::end_cap;
        step.at = now;
        return step;
    }
    if (idle_due) {
        step.action = TimeAction::end_idle;
        step.at = now;
        return step;
    }
    const auto schedule = warning_schedule(limits);  // empty without a cap
    std::size_t due = warnings_sent;
    while (due < schedule.size() && now >= deadline - schedule[due]) ++due;
    if (due > warnings_sent) {
        step.action = TimeAction::warn;
        step.at = now;
        step.remaining = schedule[due - 1];
        step.warnings_sent = due;
        return step;
    }
    step.at = std::min(deadline, idle_at);
    if (warnings_sent < schedule.size()) step.at = std::min(step.at, deadline - schedule[warnings_sent]);
    return step;
}

TimeLimits breakglass_limits(const TimeLimits& target, milliseconds rule_cap, milliseconds rule_warn_before) {
    TimeLimits out;
    out.cap = target.cap ? std::min(rule_cap, *target.cap) : rule_cap;
    out.warn_before = rule_warn_before < *out.cap ? rule_warn_before : *out.cap / 2;
    out.idle_timeout = target.idle_timeout;
    return out;
}

}  // namespace gg::session
