#pragma once
// Webhook alerts for break-glass: a JSON POST per event to each URL of the rule's `notify`
//   {"event": "...", "account": "...", "target": "...", "reason": "...", "source": "...",
//    "session": "...", "time": "2026-...Z", "mode": "emergency", ...extra}
// Every body also carries "seq", the notifier's sequence number (1, 2, 3, ... per serve process).
// Delivery is ordered per URL: one coroutine per URL sends the queue's head until it is delivered
// (2xx), retrying with exponential backoff (1 s, 2 s, 4 s, ... capped at `max_backoff`), and only
// then the next alert, so a receiver that was down gets everything later, in order. A failure is
// logged and counted, never reported to the session, and never blocks it. The queue per URL is
// bounded (`max_queue`); past it the oldest alert is dropped, loudly. Thread-safe: send() may be
// called from any thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
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
        int attempts = 0;   ///< per alert; 0 = until delivered (or the proxy stops)
        std::chrono::milliseconds first_backoff{1000};
        std::chrono::milliseconds timeout{5000};   ///< per attempt
        std::chrono::milliseconds max_backoff{30'000};
        std::size_t max_queue = 10'000;            ///< alerts waiting per URL
        /// [server] instance with a shared store: each body carries it ("instance"), since each
        /// instance numbers its alerts (`seq`) on its own. Empty: not included.
        std::string instance;
    };
    /// `metrics` must outlive this object (glassgate_alerts_total{event,outcome}).
    Notifier(boost::asio::any_io_executor ex, Metrics& metrics, Options opts);
    Notifier(boost::asio::any_io_executor ex, Metrics& metrics) : Notifier(std::move(ex), metrics, Options{}) {}

    /// Queues `alert` for every URL; returns at once.
    void send(const std::vector<std::string>& urls, const Alert& alert);
    /// Stops retrying (pending deliveries give up at their next wake-up, each logged with its body).
    void stop() { stopped_ = true; }

private:
    struct Pending {
        std::string event;
        std::string body;
    };
    struct Queue {
        std::deque<Pending> items;
        bool draining = false;
    };
    boost::asio::awaitable<void> drain(std::shared_ptr<Notifier> keep, std::string url);
    /// Sends one alert until delivered, out of attempts or stopped; true when delivered.
    boost::asio::awaitable<bool> deliver(const std::string& url, const Pending& p);
    void update_pending_gauge();

    boost::asio::any_io_executor ex_;
    Metrics& metrics_;
    Options opts_;
    std::atomic<bool> stopped_{false};
    std::mutex mu_;
    std::map<std::string, Queue> queues_;  // by URL
    std::uint64_t seq_ = 0;
    std::size_t pending_ = 0;
};

/// Declares glassgate_alerts_total and glassgate_alerts_pending.
void declare_alert_metrics(Metrics& m);

}  // namespace gg::proxy
