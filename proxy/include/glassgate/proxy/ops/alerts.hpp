#pragma once
// Webhook alerts for break-glass: a JSON POST per event to each URL of the rule's `notify`
//   {"event": "...", "account": "...", "target": "...", "reason": "...", "source": "...",
//    "session": "...", "time": "2026-...Z", "mode": "emergency", ...extra}
// Delivery runs on its own coroutine per URL with retries and exponential backoff (1 s, 2 s, 4 s, ...
// up to `attempts`); a failure is logged, never reported to the session, and never blocks it.
// Thread-safe: send() may be called from any thread.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>

#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/session/session.hpp"

namespace gg::proxy {

/// One alert. Empty fields are sent as empty strings (receivers see a fixed shape).
struct Alert {
    std::string event;    ///< "breakglass.login", "breakglass.refused", "emergency.entered", ...
    std::string account;
    std::string target;
    std::string reason;
    std::string source;
    std::string session;
    session::TimePoint time{};
    std::string mode;     ///< "normal" | "emergency"
    boost::json::object extra;  ///< event-specific fields, merged into the body
};
boost::json::object to_json(const Alert& a);

class Notifier : public std::enable_shared_from_this<Notifier> {
public:
    struct Options {
        int attempts = 6;
        std::chrono::milliseconds first_backoff{1000};
        std::chrono::milliseconds timeout{5000};   ///< per attempt
    };
    /// `metrics` must outlive this object (glassgate_alerts_total{event,outcome}).
    Notifier(boost::asio::any_io_executor ex, Metrics& metrics, Options opts);
    Notifier(boost::asio::any_io_executor ex, Metrics& metrics) : Notifier(std::move(ex), metrics, Options{}) {}

    /// Queues `alert` for every URL; returns at once.
    void send(const std::vector<std::string>& urls, const Alert& alert);
    /// Stops retrying (pending deliveries give up at their next wake-up).
    void stop() { stopped_ = true; }

private:
    boost::asio::any_io_executor ex_;
    Metrics& metrics_;
    Options opts_;
    std::atomic<bool> stopped_{false};
};

/// Declares glassgate_alerts_total.
void declare_alert_metrics(Metrics& m);

}  // namespace gg::proxy
