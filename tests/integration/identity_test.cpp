// The identity layer against the real oidc-provider: device-code sign-in, `glassgate login`, token
// verification from the cached JWKS during an outage (also after a restart), unknown-kid refresh, and
// the health monitor of a running `glassgate serve` following the IdP going away and coming back.

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <thread>

#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "harness/files.hpp"
#include "harness/idp_peer.hpp"
#include "harness/jwt.hpp"
#include "harness/net.hpp"
#include "harness/process.hpp"

using namespace gg;
using namespace gg::harness;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

config::IdpConfig idp_config(const IdpPeer& idp) {
    config::IdpConfig c;
    c.issuer = idp.issuer();
    c.client_id = idp.client_id();
    c.audience = {idp.client_id()};
    c.probe_interval = 1s;
    c.probe_timeout = 500ms;
    return c;
}

/// The identity layer as `glassgate serve` builds it: an IdentityProvider over a state store, against
/// the real IdP.
struct Identity {
    IdpPeer idp;
    TempDir dir;
    proxy::StateDir sd{dir / "state"};
    std::unique_ptr<proxy::StateStore> store = proxy::open_sqlite_store(sd.store_file(), sd.audit_key());
    proxy::Metrics metrics;
    asio::io_context io;

    explicit Identity(IdpOptions options = {}) : idp(std::move(options)) {}
    /// A new provider over `on` (default: this state store), as after a restart.
    std::shared_ptr<proxy::identity::IdentityProvider> provider(proxy::StateStore* on = nullptr) {
        return std::make_shared<proxy::identity::IdentityProvider>(io.get_executor(), idp_config(idp),
                                                                   on != nullptr ? *on : *store, metrics);
    }
};

template <typename T>
T run_on(asio::io_context& io, asio::awaitable<T> a) {
    auto fut = asio::co_spawn(io, std::move(a), asio::use_future);
    io.restart();
    io.run();
    return fut.get();
}

/// A device-code sign-in through a new provider of `s`. `user` is called with the authorization when the
/// sign-in URL is shown and returns what the user then does (approve, deny), which runs on a thread of its
/// own, as a person at a browser would act; it is joined before this returns.
auto device_login(Identity& s, const std::function<std::function<void()>(const oidc::DeviceAuthorization&)>& user) {
    auto provider = s.provider();
    std::thread approver;
    std::function<void(const oidc::DeviceAuthorization&)> show = [&](const oidc::DeviceAuthorization& a) {
        approver = std::thread(user(a));
    };
    auto res = run_on(s.io, provider->device_login(std::move(show)));
    if (approver.joinable()) approver.join();
    return res;
}

/// The ID token issued for `user` as JSON claims.
boost::json::object claims_of(const std::string& token) {
    auto parts = decode_jwt(token);
    REQUIRE(parts.has_value());
    return boost::json::parse(parts->payload).as_object();
}

boost::json::object status_json(const std::filesystem::path& cfg) {
    auto r = run({GG_BINARY, "status", "--json", "--config", cfg.string()}, {.timeout = 10s});
    if (r.exit_code != 0) return {};
    boost::system::error_code ec;
    auto v = boost::json::parse(r.out, ec);
    return ec || !v.is_object() ? boost::json::object{} : v.as_object();
}

std::string idp_state(const std::filesystem::path& cfg) {
    auto s = status_json(cfg);
    auto* i = s.if_contains("idp");
    if (!i || !i->is_object()) return "";
    return std::string(i->as_object().at("state").as_string());
}

}  // namespace

TEST_SUITE_BEGIN("identity");

TEST_CASE("device-code sign-in through the real IdP yields a verified identity with groups") {
    Identity s;
    auto res = device_login(s, [&](const oidc::DeviceAuthorization& a) -> std::function<void()> {
        REQUIRE(a.verification_uri_complete.has_value());
        CHECK(!a.user_code.empty());
        return [&idp = s.idp, uri = *a.verification_uri_complete] {
            auto r = idp.approve(uri, "alice");
            CHECK_MESSAGE(r.exit_code == 0, r.describe());
        };
    });
    REQUIRE_MESSAGE(res.identity.has_value(), res.reason);
    CHECK(res.identity->username == "alice");
    CHECK(res.identity->groups == std::vector<std::string>{"dba"});
    CHECK(claims_of(res.id_token).at("sub").as_string() == "alice");
    CHECK(s.metrics.get("glassgate_auth_total", {{"method", "device"}, {"outcome", "ok"}}) == 1);
}

TEST_CASE("a denied device-code sign-in is refused with a reason") {
    Identity s;
    auto res = device_login(s, [&](const oidc::DeviceAuthorization& a) -> std::function<void()> {
        return [&idp = s.idp, uri = *a.verification_uri_complete] { (void)idp.approve(uri, "alice", true); };
    });
    CHECK_FALSE(res.identity.has_value());
    CHECK(res.public_message == "sign-in was denied");
    CHECK(res.reason.find("access_denied") != std::string::npos);
}

TEST_CASE("glassgate login prints the URL on stderr and only the token on stdout") {
    IdpPeer idp;
    TempDir dir;
    auto out = dir / "token.out";
    auto err = dir / "login.err";
    auto cache_home = dir / "cache";
    const std::string cmd = std::string("exec '") + GG_BINARY + "' login --issuer " + idp.issuer() +
                            " --client-id glassgate --cache >" + out.string() + " 2>" + err.string();
    auto p = Process::start({.argv = {"sh", "-c", cmd}, .env = {.set = {{"XDG_CACHE_HOME", cache_home.string()}}}}, dir / "sh.log");
    const auto shown = wait_for_text(err, "open ", '\n', 20s);
    REQUIRE(shown.has_value());
    const std::string uri = *shown;
    CHECK(uri.rfind(idp.issuer(), 0) == 0);
    auto approved = idp.approve(uri, "bob");
    REQUIRE_MESSAGE(approved.exit_code == 0, approved.describe());
    auto code = p.wait_for(30s);
    REQUIRE(code.has_value());
    CHECK_MESSAGE(*code == 0, read_file(err));
    auto token = read_file(out);
    REQUIRE(!token.empty());
    CHECK(token.back() == '\n');
    token.pop_back();
    CHECK(token.find('\n') == std::string::npos);  // stdout holds the token and nothing else
    CHECK(claims_of(token).at("sub").as_string() == "bob");
    CHECK(read_file(err).find("signed in as bob") != std::string::npos);

    // --cache: the second run prints the cached token without a new sign-in.
    auto again = run({GG_BINARY, "login", "--issuer", idp.issuer(), "--client-id", "glassgate", "--cache"},
                     {.env = {.set = {{"XDG_CACHE_HOME", cache_home.string()}}}, .timeout = 10s});
    CHECK(again.exit_code == 0);
    CHECK(again.out == token + "\n");
    bool found = false;
    for (const auto& e : std::filesystem::recursive_directory_iterator(cache_home)) {
        if (e.is_regular_file()) {
            found = true;
            CHECK((std::filesystem::status(e.path()).permissions() & std::filesystem::perms::all) ==
                  (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
        }
    }
    CHECK(found);
}

TEST_CASE("glassgate login against an unreachable IdP fails with exit 1 and a reason") {
    auto port = free_port();
    auto r = run({GG_BINARY, "login", "--issuer", "http://127.0.0.1:" + std::to_string(port), "--client-id", "x"},
                 {.timeout = 20s});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("connection refused") != std::string::npos);
    CHECK(r.out.empty());
}

TEST_CASE("tokens keep validating from the cached JWKS during an outage, also after a restart") {
    Identity s;
    auto& io = s.io;
    const auto token = s.idp.device_login_token("alice");
    {
        auto provider = s.provider();
        run_on(io, provider->probe_once());
        CHECK(provider->health().cached_keys >= 1);
        auto ok = run_on(io, provider->verify_token(token));
        REQUIRE_MESSAGE(ok.ok(), ok.reason);
        s.idp.stop();
        auto during = run_on(io, provider->verify_token(token));
        CHECK_MESSAGE(during.ok(), during.reason);
    }
    // "Restart": a new provider over the same state store, with the IdP still down.
    auto restarted = s.provider();
    auto after = run_on(io, restarted->verify_token(token));
    CHECK_MESSAGE(after.ok(), after.reason);
    CHECK(after.identity->username == "alice");
    // A tampered token is still refused from the cache.
    auto bad = token;
    bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
    CHECK_FALSE(run_on(io, restarted->verify_token(bad)).ok());

    // Without a cache (fresh state) and without the IdP, nothing validates: fail closed.
    TempDir other;
    proxy::StateDir sd2(other / "state");
    auto store2 = proxy::open_sqlite_store(sd2.store_file(), sd2.audit_key());
    auto cold = s.provider(store2.get());
    auto none = run_on(io, cold->verify_token(token));
    CHECK_FALSE(none.ok());
    CHECK(none.reason.find("no JWKS") != std::string::npos);
}

TEST_CASE("an unknown kid triggers one JWKS refresh, then refreshes are rate-limited") {
    TempDir keys;
    IdpPeer::make_jwks(keys / "k1.json", {"k1"});
    IdpPeer::make_jwks(keys / "k2.json", {"k2"});
    IdpPeer::make_jwks(keys / "k3.json", {"k3"});
    Identity s({.jwks_file = keys / "k1.json"});
    auto& idp = s.idp;
    auto& io = s.io;
    auto& metrics = s.metrics;
    auto provider = s.provider();
    run_on(io, provider->probe_once());

    idp.restart(keys / "k2.json");  // key rotation at the IdP
    auto t2 = idp.device_login_token("alice");
    CHECK(boost::json::parse(decode_jwt(t2)->header).as_object().at("kid").as_string() == "k2");
    const double before = metrics.get("glassgate_jwks_refresh_total", {{"outcome", "ok"}});
    auto r2 = run_on(io, provider->verify_token(t2));
    CHECK_MESSAGE(r2.ok(), r2.reason);
    CHECK(metrics.get("glassgate_jwks_refresh_total", {{"outcome", "ok"}}) == before + 1);

    idp.restart(keys / "k3.json");
    auto t3 = idp.device_login_token("alice");
    for (int i = 0; i < 5; ++i) {
        auto r3 = run_on(io, provider->verify_token(t3));
        CHECK_FALSE(r3.ok());
        CHECK(r3.unknown_kid);
    }
    // Five unknown-kid tokens within 30 s caused no further fetch.
    CHECK(metrics.get("glassgate_jwks_refresh_total", {{"outcome", "ok"}}) == before + 1);
    // The scheduled probe still picks the new key up.
    run_on(io, provider->probe_once());
    CHECK(run_on(io, provider->verify_token(t3)).ok());
}

TEST_CASE("serve: the IdP monitor goes unreachable within interval x threshold + timeout, and back") {
    IdpPeer idp;
    TempDir dir;
    auto cfg = dir / "glassgate.toml";
    const auto metrics_port = free_port();
    std::ofstream(cfg) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n"
                       << "[admin]\nlisten = \"127.0.0.1:" << metrics_port << "\"\n"
                       << "[idp]\nissuer = \"" << idp.issuer() << "\"\nclient_id = \"glassgate\"\n"
                       << "probe_interval = \"1s\"\nprobe_timeout = \"500ms\"\nunreachable_after = 3\nhealthy_after = 2\n";
    auto serve = Process::start({.argv = {GG_BINARY, "serve", "--config", cfg.string()}}, dir / "serve.log");
    REQUIRE_MESSAGE(wait_until([&] { return idp_state(cfg) == "healthy"; }, 15s), read_file(dir / "serve.log"));

    auto m = http_get("127.0.0.1", metrics_port, "/metrics");
    REQUIRE(m.has_value());
    CHECK(m->body.find("glassgate_idp_up 1") != std::string::npos);
    CHECK(m->body.find("glassgate_idp_state 1") != std::string::npos);
    CHECK(http_get("127.0.0.1", metrics_port, "/healthz")->status == 200);

    idp.stop();
    const auto stopped = std::chrono::steady_clock::now();
    REQUIRE(wait_until([&] { return idp_state(cfg) == "unreachable"; }, 15s, 100ms));
    const auto took = std::chrono::steady_clock::now() - stopped;
    MESSAGE("unreachable after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(took <= 1s * 3 + 500ms + 1s);  // probe_interval x unreachable_after + probe_timeout (+1 s)
    auto st = status_json(cfg);
    CHECK(st.at("mode").as_string() == "emergency");
    auto m2 = http_get("127.0.0.1", metrics_port, "/metrics");
    CHECK(m2->body.find("glassgate_idp_up 0") != std::string::npos);
    CHECK(m2->body.find("glassgate_idp_state 3") != std::string::npos);

    idp.restart();
    REQUIRE(wait_until([&] { return idp_state(cfg) == "healthy"; }, 15s, 100ms));
    CHECK(status_json(cfg).at("mode").as_string() == "normal");

    auto human = run({GG_BINARY, "status", "--config", cfg.string()}, {.timeout = 10s});
    CHECK(human.exit_code == 0);
    CHECK(human.out.find("idp         healthy since") != std::string::npos);

    serve.signal_group(SIGTERM);
    CHECK(serve.wait_for(15s).value_or(-1) == 0);

    // Every transition is in the audit log with its evidence.
    proxy::StateDir sd(dir / "state");
    auto store = proxy::open_sqlite_store(sd.store_file(), sd.audit_key());
    std::vector<std::string> transitions;
    for (const auto& l : store->audit_lines(1, 0)) {
        auto o = boost::json::parse(l).as_object();
        if (o.at("event").as_string() == "idp.health") {
            transitions.push_back(std::string(o.at("details").as_object().at("from").as_string()) + "->" +
                                  std::string(o.at("details").as_object().at("to").as_string()));
            CHECK(!o.at("reason").as_string().empty());
        }
    }
    CHECK(transitions == std::vector<std::string>{"unknown->healthy", "healthy->degraded", "degraded->unreachable",
                                                  "unreachable->healthy"});
    auto down = run({GG_BINARY, "status", "--config", cfg.string()}, {.timeout = 10s});
    CHECK(down.exit_code == 1);
    CHECK(down.err.find("not running") != std::string::npos);
}

TEST_SUITE_END();
