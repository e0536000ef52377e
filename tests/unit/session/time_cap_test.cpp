// The time-cap policy (session/time_cap.hpp): warnings, cap and idle timeout as a pure schedule.

#include "glassgate/session/time_cap.hpp"

#include <doctest/doctest.h>

using namespace gg::session;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

namespace {

const steady::time_point t0 = steady::time_point(std::chrono::hours(1000));

TimeLimits limits(std::optional<ms> cap, ms warn = 5min, std::optional<ms> idle = std::nullopt) {
    return TimeLimits{cap, warn, idle};
}

/// Runs the watchdog as a session would, with no traffic after `start`, until it ends; returns the
/// (offset, action, lead time) of every step that is not a wait.
struct Seen {
    ms at;
    TimeAction action;
    ms remaining;
    friend bool operator==(const Seen&, const Seen&) = default;
};
std::vector<Seen> run_quiet(const TimeLimits& l) {
    std::vector<Seen> out;
    std::size_t sent = 0;
    steady::time_point now = t0;
    for (int i = 0; i < 100; ++i) {
        const auto step = next_time_step(l, t0, t0, now, sent);
        if (step.action == TimeAction::wait) {
            REQUIRE(step.at > now);  // never a busy loop
            if (step.at == steady::time_point::max()) break;
            now = step.at;
            continue;
        }
        out.push_back({std::chrono::duration_cast<ms>(now - t0), step.action, step.remaining});
        if (step.action != TimeAction::warn) break;
        sent = step.warnings_sent;
    }
    return out;
}

}  // namespace

TEST_SUITE_BEGIN("time cap");

TEST_CASE("the usual schedule: warn_before, one minute, then the cap") {
    CHECK(warning_schedule(limits(1h)) == std::vector<ms>{5min, 1min});
    CHECK(run_quiet(limits(1h)) == std::vector<Seen>{{55min, TimeAction::warn, 5min},
                                                      {59min, TimeAction::warn, 1min},
                                                      {60min, TimeAction::end_cap, 0ms}});
}

TEST_CASE("no cap, no idle timeout: nothing ever happens") {
    CHECK(warning_schedule(limits(std::nullopt)).empty());
    const auto step = next_time_step(limits(std::nullopt), t0, t0, t0 + 1000h, 0);
    CHECK(step.action == TimeAction::wait);
    CHECK(step.at == steady::time_point::max());
    CHECK(run_quiet(limits(std::nullopt)).empty());
}

TEST_CASE("a cap shorter than warn_before: only the one-minute warning, or none below a minute") {
    CHECK(warning_schedule(limits(3min, 5min)) == std::vector<ms>{1min});
    CHECK(run_quiet(limits(3min, 5min)) == std::vector<Seen>{{2min, TimeAction::warn, 1min}, {3min, TimeAction::end_cap, 0ms}});
    // warn_before equal to the cap warns at the start? No: a warning must fall inside the session.
    CHECK(warning_schedule(limits(5min, 5min)) == std::vector<ms>{1min});
    CHECK(warning_schedule(limits(1min, 30s)) == std::vector<ms>{30s});
    CHECK(warning_schedule(limits(40s, 5min)).empty());
    CHECK(run_quiet(limits(40s, 5min)) == std::vector<Seen>{{40s, TimeAction::end_cap, 0ms}});
}

TEST_CASE("warn_before of one minute is given once; warn_before 0 turns the early warning off") {
    CHECK(warning_schedule(limits(10min, 1min)) == std::vector<ms>{1min});
    CHECK(warning_schedule(limits(10min, 0ms)) == std::vector<ms>{1min});
    CHECK(warning_schedule(limits(10min, 30s)) == std::vector<ms>{1min, 30s});
}

TEST_CASE("a warning already past when the watchdog first runs: only the latest due is given") {
    // The watchdog runs first 59m30s into a 1h session (a stalled process): the 5m warning would lie.
    const auto step = next_time_step(limits(1h), t0, t0 + 59min, t0 + 59min + 30s, 0);
    CHECK(step.action == TimeAction::warn);
    CHECK(step.remaining == 1min);
    CHECK(step.warnings_sent == 2);
    const auto after = next_time_step(limits(1h), t0, t0 + 59min, t0 + 59min + 31s, step.warnings_sent);
    CHECK(after.action == TimeAction::wait);
    CHECK(after.at == t0 + 1h);
    // Exactly at a warning's time it is due.
    CHECK(next_time_step(limits(1h), t0, t0, t0 + 55min, 0).action == TimeAction::warn);
    CHECK(next_time_step(limits(1h), t0, t0, t0 + 55min - 1ms, 0).action == TimeAction::wait);
}

TEST_CASE("idle timeout: activity moves it; without a cap it is the only deadline") {
    const auto l = limits(std::nullopt, 5min, 10min);
    auto step = next_time_step(l, t0, t0 + 3min, t0 + 4min, 0);
    CHECK(step.action == TimeAction::wait);
    CHECK(step.at == t0 + 13min);
    CHECK(next_time_step(l, t0, t0 + 3min, t0 + 13min, 0).action == TimeAction::end_idle);
    CHECK(run_quiet(l) == std::vector<Seen>{{10min, TimeAction::end_idle, 0ms}});
}

TEST_CASE("idle and cap: the earlier deadline ends the session; a tie goes to the cap") {
    // Idle first: 10m idle timeout in a 1h session with no traffic.
    CHECK(run_quiet(limits(1h, 5min, 10min)) == std::vector<Seen>{{10min, TimeAction::end_idle, 0ms}});
    // The cap first: idle for 30m, but the 20m cap comes earlier (the 5m and 1m warnings before it).
    CHECK(run_quiet(limits(20min, 5min, 30min)) == std::vector<Seen>{{15min, TimeAction::warn, 5min},
                                                                       {19min, TimeAction::warn, 1min},
                                                                       {20min, TimeAction::end_cap, 0ms}});
    // Both overdue when the watchdog runs: the one whose deadline came first.
    CHECK(next_time_step(limits(20min, 5min, 10min), t0, t0 + 5min, t0 + 25min, 2).action == TimeAction::end_idle);
    CHECK(next_time_step(limits(20min, 5min, 10min), t0, t0 + 15min, t0 + 25min, 2).action == TimeAction::end_cap);
    CHECK(next_time_step(limits(20min, 5min, 10min), t0, t0 + 10min, t0 + 20min, 2).action == TimeAction::end_cap);
    // A warning waits for its time even when idle comes later than it.
    const auto w = next_time_step(limits(20min, 5min, 30min), t0, t0, t0 + 1min, 0);
    CHECK(w.action == TimeAction::wait);
    CHECK(w.at == t0 + 15min);
}

TEST_CASE("break-glass limits: the rule's cap below the target's, and never above it") {
    const auto target = limits(8h, 10min, 30min);
    const auto bg = breakglass_limits(target, 30min, 5min);
    CHECK(bg.cap == std::optional<ms>(30min));
    CHECK(bg.warn_before == 5min);
    CHECK(bg.idle_timeout == std::optional<ms>(30min));
    CHECK(run_quiet(limits(30min, 5min)) == std::vector<Seen>{{25min, TimeAction::warn, 5min},
                                                               {29min, TimeAction::warn, 1min},
                                                               {30min, TimeAction::end_cap, 0ms}});
    // A rule more generous than the target gets the target's cap.
    CHECK(breakglass_limits(limits(20min), 2h, 5min).cap == std::optional<ms>(20min));
    // A target without a cap: the rule's.
    CHECK(breakglass_limits(limits(std::nullopt), 45min, 5min).cap == std::optional<ms>(45min));
    // A warning lead time that does not fit the (capped) session: half of it.
    const auto tight = breakglass_limits(limits(4min), 1h, 5min);
    CHECK(tight.cap == std::optional<ms>(4min));
    CHECK(tight.warn_before == 2min);
    CHECK(warning_schedule(tight) == std::vector<ms>{2min, 1min});
}

TEST_SUITE_END();
