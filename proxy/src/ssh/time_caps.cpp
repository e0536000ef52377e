// The connection's clocks: the login grace time, the backend's connect timeout, and once the session
// is open the time cap, its warnings and the idle timeout (the schedule is session::next_time_step).

#include <algorithm>

#include "connection.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/proxy/ops/logging.hpp"

namespace gg::proxy::ssh {
using session::CloseReason;
using session::TimeAction;
using namespace std::chrono_literals;

void Connection::set_time_limits() {
    limits_.idle_timeout = target_->idle_timeout;
    if (grant_) {
        limits_.cap = grant_->max_session;
        limits_.warn_before = grant_->warn_before;
        cap_source_ = "emergency access limit of rule \"" + grant_->rule_name + "\"";
    } else {
        limits_.cap = target_->max_session;
        limits_.warn_before = target_->warn_before.value_or(5min);
        cap_source_ = "time limit of target \"" + target_->name + "\"";
    }
}

bool Connection::check_time(steady::time_point now) {
    if (ending_) return false;
    if (now >= be_deadline_) {
        fail_backend("timed out connecting to " + target_->address.to_string(),
                     "glassgate cannot reach " + target_->name + " (timed out)");
        return true;
    }
    if (phase_ != Phase::open) {
        if (kbd_ == Kbd::none && now >= grace_deadline_) {
            spdlog::info("ssh {}: no sign-in within {}; closing", peer_, config::format_duration(svc_->cfg.ssh.login_grace));
            audit("auth.timeout", "denied", "no sign-in within the login grace time", {{"protocol", "ssh"}});
            end(CloseReason::auth_failed, "login grace time exceeded");
            linger_deadline_ = now;
            return true;
        }
        return false;
    }
    // The cap and its warnings count from the start of the session.
    const auto next = session::next_time_step(limits_, scope_.started(), last_activity_, now, warnings_sent_);
    switch (next.action) {
        case TimeAction::wait:
            return false;
        case TimeAction::warn: {
            warnings_sent_ = next.warnings_sent;
            const std::string text = "glassgate: this session ends in " + config::format_duration(next.remaining) +
                                     " (" + cap_source_ + ")";
            annotate("time-cap warning sent: " + text);
            // Into the terminal or on stderr; never into an SFTP (or other subsystem) stream.
            for (auto& p : pairs_) {
                if (p->cutting || p->kind != ChannelKind::session || p->use == Use::subsystem) continue;
                p->tell_user(text);
            }
            return true;
        }
        case TimeAction::end_cap: {
            const auto cap = config::format_duration(*limits_.cap);
            annotate("time cap reached: session ended");
            cut_all(CloseReason::time_cap, "glassgate: session time limit reached (" + cap_source_ + ": " + cap + ")");
            end(CloseReason::time_cap, "session time limit (" + cap + ") reached");
            return true;
        }
        case TimeAction::end_idle: {
            const auto idle = config::format_duration(*limits_.idle_timeout);
            annotate("idle timeout: session ended");
            cut_all(CloseReason::idle_timeout, "glassgate: session idle for " + idle + "; closed");
            end(CloseReason::idle_timeout, "idle for " + idle);
            return true;
        }
    }
    return false;
}

Connection::steady::time_point Connection::next_deadline(steady::time_point until) const {
    if (ending_) until = std::min(until, linger_deadline_);
    if (phase_ != Phase::open && kbd_ == Kbd::none) until = std::min(until, grace_deadline_);
    until = std::min(until, be_deadline_);
    if (phase_ == Phase::open && !ending_) {
        until = std::min(
            until, session::next_time_step(limits_, scope_.started(), last_activity_, steady::now(), warnings_sent_).at);
    }
    return until;
}

}  // namespace gg::proxy::ssh
