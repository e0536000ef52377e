#include "glassgate/proxy/ops/alerts.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include "glassgate/proxy/http/client.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::proxy {
namespace asio = boost::asio;

boost::json::object to_json(const Alert& a) {
    boost::json::object o{{"event", a.event},   {"account", a.account}, {"target", a.target},
                          {"reason", a.reason}, {"source", a.source},   {"session", a.session},
                          {"time", session::format_utc(a.time)},        {"mode", a.mode}};
    for (const auto& [k, v] : a.extra) o[k] = v;
    return o;
}

void declare_alert_metrics(Metrics& m) {
    m.declare("glassgate_alerts_total", Metrics::Type::counter,
              "Webhook alert deliveries by event and outcome (delivered, retry, failed, dropped).");
    m.declare("glassgate_alerts_pending", Metrics::Type::gauge,
              "Webhook alerts queued and not yet delivered, all URLs together.");
}

Notifier::Notifier(asio::any_io_executor ex, Metrics& metrics, Options opts)
    : ex_(std::move(ex)), metrics_(metrics), opts_(opts) {}

void Notifier::update_pending_gauge() { metrics_.set("glassgate_alerts_pending", {}, static_cast<double>(pending_)); }

asio::awaitable<bool> Notifier::deliver(const std::string& url, const Pending& p) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto backoff = opts_.first_backoff;
    for (int attempt = 1; !stopped_; ++attempt) {
        http::Request req;
        req.method = "POST";
        req.url = url;
        req.body = p.body;
        req.content_type = "application/json";
        http::ClientOptions o;
        o.timeout = opts_.timeout;
        o.connect_timeout = opts_.timeout;
        o.max_redirects = 0;
        auto res = co_await http::fetch(std::move(req), std::move(o));
        if (res.ok() && res.response->status >= 200 && res.response->status < 300) {
            metrics_.inc("glassgate_alerts_total", {{"event", p.event}, {"outcome", "delivered"}});
            if (attempt == 1) {
                spdlog::info("alert {} delivered to {}", p.event, url);
            } else {
                spdlog::info("alert {} delivered to {} at attempt {}", p.event, url, attempt);
            }
            co_return true;
        }
        const std::string why = res.ok() ? "HTTP " + std::to_string(res.response->status) : res.error->message;
        if (opts_.attempts > 0 && attempt >= opts_.attempts) {
            metrics_.inc("glassgate_alerts_total", {{"event", p.event}, {"outcome", "failed"}});
            spdlog::error("alert {} to {} failed after {} attempt(s): {}; dropped: {}", p.event, url, attempt, why,
                          p.body);
            co_return false;
        }
        metrics_.inc("glassgate_alerts_total", {{"event", p.event}, {"outcome", "retry"}});
        // Every failure of the first few, then every 10th: a receiver down for hours must not flood the log.
        if (attempt <= 3 || attempt % 10 == 0) {
            spdlog::warn("alert {} to {} failed (attempt {}): {}; retrying in {} ms (later alerts to it wait)", p.event,
                         url, attempt, why, backoff.count());
        }
        // Sleep in short slices so stop() (shutdown) is not held up by a long backoff.
        const auto until = std::chrono::steady_clock::now() + backoff;
        while (!stopped_ && std::chrono::steady_clock::now() < until) {
            timer.expires_after(std::min<std::chrono::steady_clock::duration>(until - std::chrono::steady_clock::now(),
                                                                              std::chrono::milliseconds(200)));
            (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        backoff = std::min(backoff * 2, opts_.max_backoff);
    }
    co_return false;
}

asio::awaitable<void> Notifier::drain(std::shared_ptr<Notifier> keep, std::string url) {
    (void)keep;  // holds the notifier while alerts are in flight
    for (;;) {
        Pending head;
        {
            std::lock_guard lk(mu_);
            auto& q = queues_[url];
            if (q.items.empty()) {
                q.draining = false;
                co_return;
            }
            head = q.items.front();
        }
        co_await deliver(url, head);
        std::lock_guard lk(mu_);
        auto& q = queues_[url];
        if (stopped_) {
            for (const auto& p : q.items) {
                metrics_.inc("glassgate_alerts_total", {{"event", p.event}, {"outcome", "failed"}});
                spdlog::error("alert {} to {} not delivered: the proxy is stopping: {}", p.event, url, p.body);
            }
            pending_ -= q.items.size();
            q.items.clear();
            q.draining = false;
            update_pending_gauge();
            co_return;
        }
        // The head may have been dropped meanwhile by send() (queue bound); pop only if it is still there.
        if (!q.items.empty() && q.items.front().body == head.body) {
            q.items.pop_front();
            --pending_;
            update_pending_gauge();
        }
    }
}

void Notifier::send(const std::vector<std::string>& urls, const Alert& alert) {
    if (urls.empty()) return;
    auto obj = to_json(alert);
    std::vector<std::string> start;  // URLs whose queue was idle: a drain starts after the lock is released
    {
        std::lock_guard lk(mu_);
        obj["seq"] = ++seq_;
        if (!opts_.instance.empty()) obj["instance"] = opts_.instance;
        const std::string body = boost::json::serialize(obj);
        for (const auto& url : urls) {
            auto& q = queues_[url];
            if (q.items.size() >= std::max<std::size_t>(opts_.max_queue, 1)) {
                const auto& old = q.items.front();
                metrics_.inc("glassgate_alerts_total", {{"event", old.event}, {"outcome", "dropped"}});
                spdlog::error("alert queue for {} is full ({} alerts waiting); the oldest is dropped: {}", url,
                              q.items.size(), old.body);
                q.items.pop_front();
                --pending_;
            }
            q.items.push_back({alert.event, body});
            ++pending_;
            if (!q.draining) {
                q.draining = true;
                start.push_back(url);
            }
        }
        update_pending_gauge();
    }
    // co_spawn may run the drain inline (send() called on the notifier's own strand), and the drain takes mu_.
    for (auto& url : start) {
        auto self = shared_from_this();
        asio::co_spawn(ex_, drain(std::move(self), std::move(url)), asio::detached);
    }
}

}  // namespace gg::proxy
