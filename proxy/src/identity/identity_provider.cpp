#include "glassgate/proxy/identity/identity_provider.hpp"

#include <boost/asio/co_spawn.hpp>
#include "glassgate/proxy/ops/logging.hpp"
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include "glassgate/session/audit_chain.hpp"

namespace gg::proxy::identity {
namespace asio = boost::asio;
using SysClock = std::chrono::system_clock;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view jwks_ns = "jwks";
constexpr auto kid_refresh_min_gap = 30s;

session::TimePoint to_tp(SysClock::time_point t) {
    return std::chrono::time_point_cast<std::chrono::microseconds>(t);
}

std::string_view state_name(oidc::IdpHealth h) {
    switch (h) {
        case oidc::IdpHealth::unknown: return "unknown";
        case oidc::IdpHealth::healthy: return "healthy";
        case oidc::IdpHealth::degraded: return "degraded";
        case oidc::IdpHealth::unreachable: return "unreachable";
    }
    return "unknown";
}

/// An HTTP outcome counts against the IdP when it could not be talked to: network errors and 5xx.
bool is_outage(const http::Result& r) { return !r.ok() || r.response->status >= 500; }

std::string describe(std::string_view what, const http::Result& r) {
    if (!r.ok()) return std::string(what) + ": " + r.error->message;
    return std::string(what) + " HTTP " + std::to_string(r.response->status);
}

}  // namespace

void declare_metrics(Metrics& m) {
    m.declare("glassgate_idp_up", Metrics::Type::gauge, "1 if the identity provider is healthy, else 0.");
    m.declare("glassgate_idp_state", Metrics::Type::gauge,
              "Identity provider health: 0 unknown, 1 healthy, 2 degraded, 3 unreachable.");
    m.declare("glassgate_auth_total", Metrics::Type::counter, "Authentication attempts by method and outcome.");
    m.declare("glassgate_jwks_refresh_total", Metrics::Type::counter, "JWKS fetches by outcome.");
    m.declare("glassgate_idp_probe_total", Metrics::Type::counter, "IdP health probes by outcome.");
}

http::ClientOptions idp_http_options(const config::IdpConfig& cfg, std::chrono::milliseconds timeout) {
    http::ClientOptions o;
    o.connect_timeout = timeout;
    o.timeout = timeout;
    o.ca_file = cfg.ca_file;
    o.max_body = 1u << 20;
    o.max_redirects = 2;
    return o;
}

asio::awaitable<DiscoveryFetch> fetch_discovery_and_jwks(const config::IdpConfig& cfg, std::chrono::milliseconds timeout) {
    DiscoveryFetch out;
    auto opts = idp_http_options(cfg, timeout);
    auto dreq = http::get_request(oidc::discovery_url(cfg.issuer));
    auto d = co_await http::fetch(std::move(dreq), opts);
    if (!d.ok() || d.response->status != 200) {
        out.error = describe("discovery", d);
        out.evidence = out.error;
        co_return out;
    }
    auto disc = oidc::parse_discovery(d.response->body, cfg.issuer);
    if (!disc) {
        out.error = "discovery document rejected: " + disc.error().reason;
        out.evidence = out.error;
        co_return out;
    }
    out.discovery = std::move(*disc);
    auto jreq = http::get_request(out.discovery->jwks_uri);
    auto j = co_await http::fetch(std::move(jreq), opts);
    if (!j.ok() || j.response->status != 200) {
        out.error = describe("jwks", j);
        out.evidence = "discovery 200, " + out.error;
        co_return out;
    }
    auto keys = oidc::KeySet::parse(j.response->body);
    if (!keys) {
        out.error = "JWKS rejected: " + keys.error().reason;
        out.evidence = "discovery 200, " + out.error;
        co_return out;
    }
    if (keys->empty()) {
        out.error = "JWKS has no usable key";
        for (const auto& r : keys->rejected()) out.error += "; key " + std::to_string(r.index) + ": " + r.reason;
        out.evidence = "discovery 200, " + out.error;
        co_return out;
    }
    out.evidence = "discovery 200, jwks 200 (" + std::to_string(keys->size()) + " key" + (keys->size() == 1 ? ")" : "s)");
    out.jwks_json = std::move(j.response->body);
    out.keys = std::move(*keys);
    co_return out;
}

asio::awaitable<DeviceLoginResult> run_device_login(
    const config::IdpConfig& cfg, const oidc::Discovery& discovery,
    std::function<void(const oidc::DeviceAuthorization&)> show,
    std::function<asio::awaitable<oidc::VerifyResult>(std::string)> verify,
    std::function<void(bool ok, const std::string& evidence)> on_http) {
    DeviceLoginResult out;
    if (!discovery.device_authorization_endpoint) {
        out.reason = "the identity provider does not advertise a device_authorization_endpoint";
        out.public_message = "device sign-in is not available";
        co_return out;
    }
    auto opts = idp_http_options(cfg, 10s);
    auto areq = http::post_form_request(*discovery.device_authorization_endpoint,
                                        oidc::device_authorization_request_body(cfg.client_id));
    auto r = co_await http::fetch(std::move(areq), opts);
    on_http(!is_outage(r), describe("device authorization", r));
    if (!r.ok() || r.response->status != 200) {
        out.reason = describe("device authorization request", r) + (r.ok() ? ": " + r.response->body.substr(0, 200) : "");
        out.public_message = "the identity provider did not start a sign-in";
        co_return out;
    }
    auto auth = oidc::parse_device_authorization(r.response->body);
    if (!auth) {
        out.reason = "device authorization response rejected: " + auth.error().reason;
        out.public_message = "the identity provider did not start a sign-in";
        co_return out;
    }
    show(*auth);
    oidc::DevicePoll poll(*auth);
    auto wait = poll.start(SysClock::now());
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    for (;;) {
        timer.expires_after(wait.duration);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (auto f = poll.check_expiry(SysClock::now())) {
            out.reason = f->reason;
            out.public_message = "the sign-in code expired";
            co_return out;
        }
        auto treq = http::post_form_request(discovery.token_endpoint,
                                            oidc::device_token_request_body(auth->device_code, cfg.client_id));
        auto t = co_await http::fetch(std::move(treq), opts);
        on_http(!is_outage(t), describe("token", t));
        if (!t.ok()) {
            // A network failure while polling: keep polling until the code expires (the IdP may be back).
            wait = oidc::Wait{poll.interval()};
            continue;
        }
        auto step = poll.on_token_response(t.response->status, t.response->body, SysClock::now());
        if (auto* w = std::get_if<oidc::Wait>(&step)) {
            wait = *w;
            continue;
        }
        if (auto* f = std::get_if<oidc::Failed>(&step)) {
            out.reason = f->reason;
            out.public_message = f->kind == oidc::DeviceFailure::denied    ? "sign-in was denied"
                                 : f->kind == oidc::DeviceFailure::expired ? "the sign-in code expired"
                                                                           : "sign-in failed";
            co_return out;
        }
        auto& done = std::get<oidc::Done>(step);
        auto v = co_await verify(done.id_token);
        if (!v.ok()) {
            out.reason = "ID token from the device flow refused: " + v.reason;
            out.public_message = std::string(oidc::public_message(v.error));
            co_return out;
        }
        out.identity = std::move(v.identity);
        out.id_token = std::move(done.id_token);
        co_return out;
    }
}

IdentityProvider::IdentityProvider(asio::any_io_executor ex, config::IdpConfig cfg, StateStore& store, Metrics& metrics)
    : ex_(std::move(ex)),
      cfg_(std::move(cfg)),
      store_(store),
      metrics_(metrics),
      monitor_(oidc::HealthConfig{cfg_.unreachable_after, cfg_.healthy_after}, SysClock::now()) {
    declare_metrics(metrics_);
    // The cached JWKS keeps tokens verifiable across a restart during an IdP outage.
    try {
        if (auto cached = store_.get(jwks_ns, cfg_.issuer)) {
            boost::system::error_code ec;
            auto v = boost::json::parse(*cached, ec);
            const boost::json::object* o = (!ec && v.is_object()) ? &v.as_object() : nullptr;
            const auto* jwks = o ? o->if_contains("jwks") : nullptr;
            const auto* at = o ? o->if_contains("fetched_us") : nullptr;
            if (jwks && jwks->is_string() && at && at->is_int64()) {
                auto keys = oidc::KeySet::parse(std::string_view(jwks->as_string()));
                if (keys && !keys->empty()) {
                    install_keys(std::move(*keys), std::string(jwks->as_string()),
                                 SysClock::time_point(std::chrono::microseconds(at->as_int64())), false);
                    spdlog::info("identity: loaded {} cached JWKS key(s) for {}", keys_->size(), cfg_.issuer);
                }
            } else {
                spdlog::warn("identity: ignoring an unreadable JWKS cache entry for {}", cfg_.issuer);
            }
        }
    } catch (const StoreError& e) {
        spdlog::warn("identity: cannot read the JWKS cache: {}", e.what());
    }
    update_gauges();
}

void IdentityProvider::start() {
    asio::co_spawn(ex_, [self = shared_from_this()]() { return self->probe_loop(); }, logging::LogEscaped{"IdP health probe"});
}

void IdentityProvider::stop() { stopped_ = true; }

asio::awaitable<void> IdentityProvider::probe_loop() {
    asio::steady_timer timer(ex_);
    auto next = std::chrono::steady_clock::now();
    while (!stopped_) {
        co_await probe_once();
        next += cfg_.probe_interval;
        const auto now = std::chrono::steady_clock::now();
        if (next < now) next = now;  // a slow probe does not cause a burst
        // Sleep in short steps so stop() takes effect promptly.
        while (!stopped_ && std::chrono::steady_clock::now() < next) {
            timer.expires_at(std::min(next, std::chrono::steady_clock::now() + 200ms));
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }
}

asio::awaitable<void> IdentityProvider::probe_once() {
    auto f = co_await fetch_discovery_and_jwks(cfg_, cfg_.probe_timeout);
    const bool ok = f.keys.has_value();
    const auto now = SysClock::now();
    metrics_.inc("glassgate_idp_probe_total", {{"outcome", ok ? "ok" : "failed"}});
    if (f.discovery) metrics_.inc("glassgate_jwks_refresh_total", {{"outcome", ok ? "ok" : "failed"}});
    std::optional<oidc::Transition> t;
    {
        std::lock_guard lk(mu_);
        last_probe_at_ = now;
        last_probe_ok_ = ok;
        last_probe_evidence_ = f.evidence;
        if (f.discovery) discovery_ = f.discovery;
        t = monitor_.on_probe(ok, f.evidence, now);
    }
    if (ok) install_keys(std::move(*f.keys), std::move(f.jwks_json), now, true);
    if (!ok) spdlog::debug("identity: probe failed: {}", f.evidence);
    record_transition(t);
}

void IdentityProvider::install_keys(oidc::KeySet keys, std::string json, SysClock::time_point fetched, bool persist) {
    bool changed = true;
    {
        std::lock_guard lk(mu_);
        keys_ = std::make_shared<const oidc::KeySet>(std::move(keys));
        sig_cache_ = std::make_shared<LockedSignatureCache>();
        jwks_fetched_at_ = fetched;
    }
    if (!persist) return;
    try {
        auto prev = store_.get(jwks_ns, cfg_.issuer);
        if (prev) {
            boost::system::error_code ec;
            auto v = boost::json::parse(*prev, ec);
            if (!ec && v.is_object()) {
                if (auto* j = v.as_object().if_contains("jwks"); j && j->is_string() && j->as_string() == json) changed = false;
            }
        }
        // Rewrite when the keys changed, or at most every minute to refresh the timestamp.
        if (changed || !jwks_fetched_at_ || !prev) {
            boost::json::object o{{"jwks", json},
                                  {"fetched_us", std::chrono::duration_cast<std::chrono::microseconds>(
                                                     fetched.time_since_epoch()).count()}};
            store_.put(jwks_ns, cfg_.issuer, boost::json::serialize(o));
            if (changed) spdlog::info("identity: JWKS for {} updated ({} key(s))", cfg_.issuer, keys_->size());
        }
    } catch (const StoreError& e) {
        spdlog::warn("identity: cannot persist the JWKS cache: {}", e.what());
    }
}

void IdentityProvider::record_transition(const std::optional<oidc::Transition>& t) {
    update_gauges();
    if (!t) return;
    const auto from = state_name(t->from);
    const auto to = state_name(t->to);
    const auto source = t->source == oidc::EvidenceSource::probe ? "probe" : "sign-in";
    if (t->to == oidc::IdpHealth::healthy) {
        spdlog::info("identity: IdP {} is now {} (was {}; {}: {})", cfg_.issuer, to, from, source, t->evidence);
    } else {
        spdlog::warn("identity: IdP {} is now {} (was {}; {}: {})", cfg_.issuer, to, from, source, t->evidence);
    }
    session::AuditEvent ev;
    ev.time = to_tp(t->at);
    ev.type = "idp.health";
    ev.target = cfg_.issuer;
    ev.outcome = std::string(to);
    ev.reason = t->evidence;
    ev.details = {{"from", from}, {"to", to}, {"source", source}};
    append_audit_logged(store_, ev);
}

void IdentityProvider::update_gauges() {
    oidc::IdpHealth s;
    {
        std::lock_guard lk(mu_);
        s = monitor_.state();
    }
    metrics_.set("glassgate_idp_up", {}, s == oidc::IdpHealth::healthy ? 1 : 0);
    metrics_.set("glassgate_idp_state", {}, static_cast<double>(static_cast<int>(s)));
}

void IdentityProvider::passive_evidence(bool ok, const std::string& evidence) {
    std::optional<oidc::Transition> t;
    {
        std::lock_guard lk(mu_);
        t = monitor_.on_passive(ok, evidence, SysClock::now());
    }
    record_transition(t);
}

oidc::VerifyOptions IdentityProvider::verify_options() const {
    oidc::VerifyOptions o;
    o.issuer = cfg_.issuer;
    o.audience = cfg_.audience.empty() ? std::vector<std::string>{cfg_.client_id} : cfg_.audience;
    o.client_id = cfg_.client_id;
    o.username_claim = cfg_.username_claim;
    o.groups_claim = cfg_.groups_claim;
    o.skew = std::chrono::duration_cast<std::chrono::seconds>(cfg_.clock_skew);
    return o;
}

asio::awaitable<bool> IdentityProvider::refresh_for_unknown_kid() {
    {
        std::lock_guard lk(mu_);
        const auto now = std::chrono::steady_clock::now();
        if (last_kid_refresh_ && now - *last_kid_refresh_ < kid_refresh_min_gap) co_return false;
        last_kid_refresh_ = now;
    }
    auto f = co_await fetch_discovery_and_jwks(cfg_, cfg_.probe_timeout);
    metrics_.inc("glassgate_jwks_refresh_total", {{"outcome", f.keys ? "ok" : "failed"}});
    passive_evidence(f.keys.has_value(), "JWKS refresh for an unknown kid: " + f.evidence);
    if (!f.keys) co_return false;
    install_keys(std::move(*f.keys), std::move(f.jwks_json), SysClock::now(), true);
    co_return true;
}

asio::awaitable<oidc::VerifyResult> IdentityProvider::verify_token(std::string token, std::string_view method) {
    std::shared_ptr<const oidc::KeySet> keys;
    std::shared_ptr<LockedSignatureCache> cache;
    auto current = [&] {
        std::lock_guard lk(mu_);
        keys = keys_;
        cache = sig_cache_;
    };
    current();
    const auto opts = verify_options();
    oidc::VerifyResult r;
    if (!keys) {
        if (co_await refresh_for_unknown_kid()) current();
    }
    if (!keys) {
        r.error = oidc::VerifyError::unknown_kid;
        r.unknown_kid = true;
        r.reason = "no JWKS available: the identity provider has not been reached yet and nothing is cached";
    } else {
        r = oidc::verify_jwt(token, *keys, opts, SysClock::now(), cache.get());
        if (!r.ok() && r.unknown_kid && co_await refresh_for_unknown_kid()) {
            current();
            r = oidc::verify_jwt(token, *keys, opts, SysClock::now(), cache.get());
        }
    }
    metrics_.inc("glassgate_auth_total",
                 {{"method", std::string(method)}, {"outcome", r.ok() ? "ok" : std::string(oidc::to_string(r.error))}});
    co_return r;
}

asio::awaitable<DeviceLoginResult> IdentityProvider::device_login(std::function<void(const oidc::DeviceAuthorization&)> show) {
    std::optional<oidc::Discovery> disc;
    {
        std::lock_guard lk(mu_);
        disc = discovery_;
    }
    if (!disc) {
        auto f = co_await fetch_discovery_and_jwks(cfg_, cfg_.probe_timeout);
        passive_evidence(f.keys.has_value(), "discovery for a sign-in: " + f.evidence);
        if (!f.discovery) {
            metrics_.inc("glassgate_auth_total", {{"method", "device"}, {"outcome", "idp_unavailable"}});
            co_return DeviceLoginResult{{}, {}, "cannot reach the identity provider: " + f.evidence,
                                        "the identity provider is unavailable"};
        }
        disc = f.discovery;
        std::lock_guard lk(mu_);
        discovery_ = disc;
    }
    auto self = shared_from_this();
    std::function<asio::awaitable<oidc::VerifyResult>(std::string)> verify = [self](std::string tok) {
        return self->verify_token(std::move(tok), "device");
    };
    std::function<void(bool, const std::string&)> on_http = [self](bool ok, const std::string& ev) {
        self->passive_evidence(ok, ev);
    };
    auto res = co_await run_device_login(cfg_, *disc, std::move(show), std::move(verify), std::move(on_http));
    if (!res.identity && res.id_token.empty()) {
        metrics_.inc("glassgate_auth_total", {{"method", "device"}, {"outcome", "failed"}});
    }
    co_return res;
}

HealthSnapshot IdentityProvider::health() const {
    std::lock_guard lk(mu_);
    HealthSnapshot h;
    h.state = monitor_.state();
    h.since = monitor_.since();
    h.last_probe_at = last_probe_at_;
    h.last_probe_ok = last_probe_ok_;
    h.last_probe_evidence = last_probe_evidence_;
    h.consecutive_failures = monitor_.consecutive_failures();
    h.cached_keys = keys_ ? keys_->size() : 0;
    h.jwks_fetched_at = jwks_fetched_at_;
    return h;
}

oidc::IdpHealth IdentityProvider::state() const {
    std::lock_guard lk(mu_);
    return monitor_.state();
}

}  // namespace gg::proxy::identity
