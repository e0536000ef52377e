#include <doctest/doctest.h>

#include "glassgate/protocols/oidc/device_flow.hpp"

#include <chrono>

using namespace gg::oidc;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {

const Clock::time_point t0 = Clock::time_point(std::chrono::seconds(1795428000));

constexpr std::string_view authorization_json = R"({
  "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
  "user_code": "WDJB-MJHT",
  "verification_uri": "https://idp.example.com/device",
  "verification_uri_complete": "https://idp.example.com/device?user_code=WDJB-MJHT",
  "expires_in": 600,
  "interval": 5
})";

DevicePoll started(Clock::time_point now = t0) {
    auto a = parse_device_authorization(authorization_json);
    REQUIRE(a.has_value());
    DevicePoll p(*a);
    auto w = p.start(now);
    CHECK(w.duration == 5s);
    return p;
}

constexpr std::string_view pending = R"({"error":"authorization_pending"})";

}  // namespace

TEST_SUITE_BEGIN("oidc");

TEST_CASE("device: request bodies are form-urlencoded") {
    CHECK(device_authorization_request_body("glassgate") == "client_id=glassgate&scope=openid+profile+groups");
    CHECK(device_token_request_body("a+b/c=d&e f", "my client") ==
          "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=a%2Bb%2Fc%3Dd%26e+f"
          "&client_id=my+client");
    CHECK(form_urlencode("AZaz09*-._~\xc3\xa9") == "AZaz09*-._%7E%C3%A9");
}

TEST_CASE("device: authorization response") {
    auto a = parse_device_authorization(authorization_json);
    REQUIRE(a.has_value());
    CHECK(a->device_code == "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS");
    CHECK(a->user_code == "WDJB-MJHT");
    CHECK(a->verification_uri == "https://idp.example.com/device");
    CHECK(a->verification_uri_complete.value() == "https://idp.example.com/device?user_code=WDJB-MJHT");
    CHECK(a->expires_in == 600s);
    CHECK(a->interval == 5s);

    SUBCASE("interval defaults to 5 s; Google's verification_url is accepted") {
        auto b = parse_device_authorization(
            R"({"device_code":"d","user_code":"u","verification_url":"https://g/device","expires_in":1800})");
        REQUIRE(b.has_value());
        CHECK(b->interval == 5s);
        CHECK(b->verification_uri == "https://g/device");
        CHECK_FALSE(b->verification_uri_complete.has_value());
    }
    SUBCASE("interval 0 is raised to the minimum, a huge one capped; lifetime capped") {
        auto b = parse_device_authorization(
            R"({"device_code":"d","user_code":"u","verification_uri":"https://i/d","expires_in":99999,"interval":0})");
        REQUIRE(b.has_value());
        CHECK(b->interval == 1s);
        CHECK(b->expires_in == 3600s);
        auto c = parse_device_authorization(
            R"({"device_code":"d","user_code":"u","verification_uri":"https://i/d","expires_in":60,"interval":100000})");
        REQUIRE(c.has_value());
        CHECK(c->interval == 60s);
    }
    SUBCASE("refusals") {
        CHECK(parse_device_authorization("<html>oops</html>").error().code == errc::not_json);
        CHECK(parse_device_authorization("[]").error().code == errc::bad_shape);
        CHECK(parse_device_authorization(R"({"user_code":"u","verification_uri":"x","expires_in":5})")
                  .error()
                  .code == errc::bad_shape);
        CHECK(parse_device_authorization(
                  R"({"device_code":"d","user_code":"u","verification_uri":"x","expires_in":0})")
                  .error()
                  .code == errc::bad_value);
        CHECK(parse_device_authorization(R"({"device_code":"d","user_code":"u","verification_uri":"x"})")
                  .error()
                  .code == errc::bad_shape);
        CHECK(parse_device_authorization(
                  R"({"device_code":"","user_code":"u","verification_uri":"x","expires_in":5})")
                  .error()
                  .code == errc::bad_value);
    }
}

TEST_CASE("device: authorization_pending -> wait the interval") {
    auto p = started();
    CHECK(p.next_poll_at() == t0 + 5s);
    auto s = p.on_token_response(400, pending, t0 + 5s);
    REQUIRE(std::holds_alternative<Wait>(s));
    CHECK(std::get<Wait>(s).duration == 5s);
    CHECK(p.next_poll_at() == t0 + 10s);
    CHECK_FALSE(p.finished());
}

TEST_CASE("device: slow_down adds 5 s to this and every later interval") {
    auto p = started();
    auto s = p.on_token_response(400, R"({"error":"slow_down"})", t0 + 5s);
    REQUIRE(std::holds_alternative<Wait>(s));
    CHECK(std::get<Wait>(s).duration == 10s);
    CHECK(p.next_poll_at() == t0 + 15s);
    s = p.on_token_response(400, pending, t0 + 15s);
    CHECK(std::get<Wait>(s).duration == 10s);
    s = p.on_token_response(400, R"({"error":"slow_down"})", t0 + 25s);
    CHECK(std::get<Wait>(s).duration == 15s);
    CHECK(p.interval() == 15s);
}

TEST_CASE("device: success -> done") {
    auto p = started();
    auto s = p.on_token_response(
        200, R"({"access_token":"at","token_type":"Bearer","expires_in":3600,"id_token":"h.p.s","scope":"openid"})",
        t0 + 10s);
    REQUIRE(std::holds_alternative<Done>(s));
    const auto& d = std::get<Done>(s);
    CHECK(d.id_token == "h.p.s");
    CHECK(d.access_token == "at");
    CHECK(d.expires_in.value() == 3600s);
    CHECK(p.finished());
    auto again = p.on_token_response(400, pending, t0 + 15s);
    REQUIRE(std::holds_alternative<Failed>(again));
    CHECK(std::get<Failed>(again).kind == DeviceFailure::finished);
}

TEST_CASE("device: refusals end the flow") {
    struct Case {
        const char* name;
        int status;
        std::string_view body;
        DeviceFailure kind;
    };
    const Case cases[] = {
        {"expired_token", 400, R"({"error":"expired_token"})", DeviceFailure::expired},
        {"access_denied", 400, R"({"error":"access_denied","error_description":"End-User aborted interaction"})",
         DeviceFailure::denied},
        {"other OAuth error", 400, R"({"error":"invalid_grant"})", DeviceFailure::idp_error},
        {"invalid_client on 401", 401, R"({"error":"invalid_client"})", DeviceFailure::idp_error},
        {"malformed JSON", 400, R"({"error":"authorization_pen)", DeviceFailure::malformed},
        {"HTML error page", 400, "<html><body>Bad Request</body></html>", DeviceFailure::malformed},
        {"error without a code", 400, R"({"message":"nope"})", DeviceFailure::malformed},
        {"200 without id_token", 200, R"({"access_token":"at","token_type":"Bearer"})", DeviceFailure::malformed},
        {"200 with an HTML body", 200, "<html></html>", DeviceFailure::malformed},
        {"5xx", 503, "Service Unavailable", DeviceFailure::server_error},
        {"redirect", 302, "", DeviceFailure::malformed},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto p = started();
        auto s = p.on_token_response(c.status, c.body, t0 + 5s);
        REQUIRE(std::holds_alternative<Failed>(s));
        CHECK(std::get<Failed>(s).kind == c.kind);
        CHECK_FALSE(std::get<Failed>(s).reason.empty());
        CHECK(p.finished());
    }
}

TEST_CASE("device: error text from the IdP is escaped in the reason") {
    auto p = started();
    auto s = p.on_token_response(400, R"({"error":"access_denied","error_description":"line1\nFAKE LOG LINE"})",
                                 t0 + 5s);
    REQUIRE(std::holds_alternative<Failed>(s));
    const auto& r = std::get<Failed>(s).reason;
    CHECK(r.find('\n') == std::string::npos);
    CHECK(r.find("line1\\x0aFAKE LOG LINE") != std::string::npos);
}

TEST_CASE("device: the device code expires by time") {
    auto p = started();
    CHECK_FALSE(p.check_expiry(t0 + 599s).has_value());
    auto f = p.check_expiry(t0 + 600s);
    REQUIRE(f.has_value());
    CHECK(f->kind == DeviceFailure::expired);
    CHECK(p.finished());

    SUBCASE("a pending answer after the lifetime is an expiry, not a wait") {
        auto q = started();
        auto s = q.on_token_response(400, pending, t0 + 601s);
        REQUIRE(std::holds_alternative<Failed>(s));
        CHECK(std::get<Failed>(s).kind == DeviceFailure::expired);
    }
    SUBCASE("tokens that arrive are still accepted (the IdP decides about its own code)") {
        auto q = started();
        auto s = q.on_token_response(200, R"({"id_token":"a.b.c"})", t0 + 601s);
        CHECK(std::holds_alternative<Done>(s));
    }
}

TEST_SUITE_END();
