// The session's clock: the pre-authentication deadline, then (beside the pumps) the time cap's
// warnings and end and the idle timeout, as session::next_time_step decides them.

#include "client_session.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/protocols/postgres/codec.hpp"

namespace gg::proxy::postgres {
using namespace std::chrono_literals;
using session::CloseReason;
using session::TimeAction;

void ClientSession::arm_pre_auth_deadline() {
    // A client that says nothing is cut off.
    watchdog_.expires_after(svc_->pre_auth_timeout);
    watchdog_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
            spdlog::info("postgres {}: no startup within {} ms; closing", peer_, svc_->pre_auth_timeout.count());
            client_.close();
        }
    });
}

asio::awaitable<void> ClientSession::watch(const config::Target& target, Conn& backend) {
    std::size_t warnings_sent = 0;
    while (!ended_) {
        const auto now = std::chrono::steady_clock::now();
        const auto step = session::next_time_step(limits_, scope_.started(), last_activity_, now, warnings_sent);
        switch (step.action) {
            case TimeAction::wait:
                watchdog_.expires_at(step.at);
                (void)co_await watchdog_.async_wait(use_tuple);
                break;
            case TimeAction::warn: {
                const auto text = "glassgate: this session ends in " + config::format_duration(step.remaining) + " (" +
                                  cap_source_ + ")";
                // Named, not a braced temporary inside co_await (GCC 12 destroys those twice: PR 101367).
                const auto notice = pg::notice_response({pg::Severity::warning, "01000", text, {}, {}});
                if (!co_await send_own(notice)) {
                    // The client is in the middle of a large message: try again in a moment.
                    if (ended_) co_return;
                    watchdog_.expires_after(20ms);
                    (void)co_await watchdog_.async_wait(use_tuple);
                    break;
                }
                warnings_sent = step.warnings_sent;
                if (!co_await note("time-cap warning sent: " + text)) co_return;
                break;
            }
            case TimeAction::end_cap: {
                if (!co_await note("time cap reached: session ended")) co_return;
                const auto cap = config::format_duration(*limits_.cap);
                const std::string detail = cap_source_ + ": sessions of at most " + cap;
                co_await fatal("57P01", "session time limit reached", detail);
                const auto x = pg::terminate();
                if (!backend_lock_.try_lock()) co_await backend_lock_.lock();
                if (!backend_mid_message_) (void)co_await backend.write(asio::buffer(x));
                backend_lock_.unlock();
                end(CloseReason::time_cap, "session time limit (" + cap + ") reached");
                co_return;
            }
            case TimeAction::end_idle: {
                if (!co_await note("idle timeout: session ended")) co_return;
                const auto idle = config::format_duration(*target.idle_timeout);
                const std::string detail = "target \"" + target.name + "\" closes sessions idle for " + idle;
                co_await fatal("57P01", "session idle for too long", detail);
                end(CloseReason::idle_timeout, "idle for " + idle);
                co_return;
            }
        }
    }
}

}  // namespace gg::proxy::postgres
