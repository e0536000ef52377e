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
              "Webhook alert deliveries by event and outcome (delivered, retry, failed).");
}

Notifier::Notifier(asio::any_io_executor ex, Metrics& metrics, Options opts)
    : ex_(std::move(ex)), metrics_(metrics), opts_(opts) {}

namespace {

asio::awaitable<void> deliver(std::shared_ptr<Notifier> keep, const std::atomic<bool>& stopped, Metrics& metrics,
                              Notifier::Options opts, std::string url, std::string event, std::string body) {
    (void)keep;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto backoff = opts.first_backoff;
    for (int attempt = 1; attempt <= opts.attempts && !stopped; ++attempt) {
        http::Request req;
        req.method = "POST";
        req.url = url;
        req.body = body;
        req.content_type = "application/json";
        http::ClientOptions o;
        o.timeout = opts.timeout;
        o.connect_timeout = opts.timeout;
        o.max_redirects = 0;
        auto res = co_await http::fetch(std::move(req), std::move(o));
        std::string why;
        if (res.ok() && res.response->status >= 200 && res.response->status < 300) {
            metrics.inc("glassgate_alerts_total", {{"event", event}, {"outcome", "delivered"}});
            spdlog::info("alert {} delivered to {}", event, url);
            co_return;
        }
        why = res.ok() ? "HTTP " + std::to_string(res.response->status) : res.error->message;
        if (attempt == opts.attempts) {
            metrics.inc("glassgate_alerts_total", {{"event", event}, {"outcome", "failed"}});
            spdlog::error("alert {} to {} failed after {} attempt(s): {}", event, url, attempt, why);
            co_return;
        }
        metrics.inc("glassgate_alerts_total", {{"event", event}, {"outcome", "retry"}});
        spdlog::warn("alert {} to {} failed (attempt {}): {}; retrying in {} ms", event, url, attempt, why, backoff.count());
        // Sleep in short slices so stop() (shutdown) is not held up by a long backoff.
        const auto until = std::chrono::steady_clock::now() + backoff;
        while (!stopped && std::chrono::steady_clock::now() < until) {
            timer.expires_after(std::min<std::chrono::steady_clock::duration>(until - std::chrono::steady_clock::now(),
                                                                              std::chrono::milliseconds(200)));
            (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        backoff = std::min(backoff * 2, std::chrono::milliseconds(60'000));
    }
    if (stopped) {
        metrics.inc("glassgate_alerts_total", {{"event", event}, {"outcome", "failed"}});
        spdlog::error("alert {} to {} not delivered: the proxy is stopping", event, url);
    }
}

}  // namespace

void Notifier::send(const std::vector<std::string>& urls, const Alert& alert) {
    if (urls.empty()) return;
    const std::string body = boost::json::serialize(to_json(alert));
    // Named arguments, not temporaries: GCC 12 destroys temporaries bound to coroutine parameters twice.
    auto self = shared_from_this();
    for (const auto& url : urls) {
        asio::co_spawn(ex_, deliver(self, stopped_, metrics_, opts_, url, alert.event, body), asio::detached);
    }
}

}  // namespace gg::proxy
