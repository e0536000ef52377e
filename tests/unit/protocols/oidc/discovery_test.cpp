#include <doctest/doctest.h>

#include "glassgate/protocols/oidc/discovery.hpp"

#include <boost/system/system_error.hpp>

using namespace gg::oidc;

TEST_SUITE_BEGIN("oidc");

namespace {

constexpr std::string_view issuer = "https://idp.example.com/realms/eng";

constexpr std::string_view keycloak_like = R"({
  "issuer": "https://idp.example.com/realms/eng",
  "authorization_endpoint": "https://idp.example.com/realms/eng/protocol/openid-connect/auth",
  "token_endpoint": "https://idp.example.com/realms/eng/protocol/openid-connect/token",
  "userinfo_endpoint": "https://idp.example.com/realms/eng/protocol/openid-connect/userinfo",
  "jwks_uri": "https://idp.example.com/realms/eng/protocol/openid-connect/certs",
  "device_authorization_endpoint": "https://idp.example.com/realms/eng/protocol/openid-connect/auth/device",
  "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
  "id_token_signing_alg_values_supported": ["PS384", "RS256", "ES256", "EdDSA"],
  "claims_supported": ["sub", "iss", "groups"],
  "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.example.com/token"}
})";

}  // namespace

TEST_CASE("discovery: a provider's document") {
    auto d = parse_discovery(keycloak_like, issuer);
    REQUIRE(d.has_value());
    CHECK(d->issuer == issuer);
    CHECK(d->jwks_uri == "https://idp.example.com/realms/eng/protocol/openid-connect/certs");
    CHECK(d->token_endpoint == "https://idp.example.com/realms/eng/protocol/openid-connect/token");
    CHECK(d->device_authorization_endpoint.value() ==
          "https://idp.example.com/realms/eng/protocol/openid-connect/auth/device");
    CHECK(d->id_token_signing_alg_values_supported.size() == 4);
    CHECK(d->grant_types_supported.size() == 2);
}

TEST_CASE("discovery: device endpoint optional; http on loopback parses (policy is the caller's)") {
    auto d = parse_discovery(
        R"({"issuer":"http://127.0.0.1:4000","jwks_uri":"http://127.0.0.1:4000/jwks","token_endpoint":"http://127.0.0.1:4000/token"})",
        "http://127.0.0.1:4000");
    REQUIRE(d.has_value());
    CHECK_FALSE(d->device_authorization_endpoint.has_value());
}

TEST_CASE("discovery: refusals") {
    SUBCASE("another issuer's document") {
        auto d = parse_discovery(keycloak_like, "https://idp.example.com/realms/ops");
        REQUIRE(d.has_error());
        CHECK(d.error().code == errc::wrong_issuer);
        CHECK(d.error().reason.find("realms/eng") != std::string::npos);
    }
    SUBCASE("issuer compared exactly: trailing slash and case matter") {
        CHECK(parse_discovery(keycloak_like, "https://idp.example.com/realms/eng/").error().code == errc::wrong_issuer);
        CHECK(parse_discovery(keycloak_like, "https://IDP.example.com/realms/eng").error().code == errc::wrong_issuer);
    }
    SUBCASE("a 200 with an HTML error page") {
        auto d = parse_discovery("<!DOCTYPE html><html><body>Sign-in service unavailable</body></html>", issuer);
        REQUIRE(d.has_error());
        CHECK(d.error().code == errc::not_json);
        CHECK(d.error().reason.find("<!DOCTYPE html>") != std::string::npos);
    }
    SUBCASE("missing jwks_uri") {
        auto d = parse_discovery(R"({"issuer":"https://idp.example.com/realms/eng","token_endpoint":"https://t/"})",
                                 issuer);
        REQUIRE(d.has_error());
        CHECK(d.error().code == errc::bad_shape);
        CHECK(d.error().reason == "discovery document has no jwks_uri");
    }
    SUBCASE("missing token_endpoint") {
        auto d = parse_discovery(R"({"issuer":"https://idp.example.com/realms/eng","jwks_uri":"https://j/"})", issuer);
        CHECK(d.error().code == errc::bad_shape);
    }
    SUBCASE("jwks_uri that is not an http(s) URL") {
        for (auto uri : {"file:///etc/passwd", "//evil/jwks", "https://", "https://a b/", "javascript:alert(1)"}) {
            CAPTURE(uri);
            std::string doc = R"({"issuer":"https://idp.example.com/realms/eng","token_endpoint":"https://t/","jwks_uri":")" +
                              std::string(uri) + "\"}";
            auto d = parse_discovery(doc, issuer);
            REQUIRE(d.has_error());
            CHECK(d.error().code == errc::bad_value);
        }
    }
    SUBCASE("no issuer, not an object, too large") {
        CHECK(parse_discovery(R"({"jwks_uri":"https://j/"})", issuer).error().code == errc::bad_shape);
        CHECK(parse_discovery("[1,2]", issuer).error().code == errc::bad_shape);
        CHECK(parse_discovery("", issuer).error().code == errc::not_json);
        CHECK(parse_discovery(std::string(300 * 1024, ' '), issuer).error().code == errc::too_large);
    }
}

TEST_CASE("discovery: URL of the document") {
    CHECK(discovery_url("https://idp.example.com/realms/eng") ==
          "https://idp.example.com/realms/eng/.well-known/openid-configuration");
    CHECK(discovery_url("https://accounts.google.com/") == "https://accounts.google.com/.well-known/openid-configuration");
}

TEST_CASE("discovery: Result::value() on an error throws system_error with the reason") {
    auto d = parse_discovery("nope", issuer);
    CHECK_THROWS_WITH_AS(d.value(), doctest::Contains("not JSON"), boost::system::system_error);
    CHECK(make_error_code(errc::wrong_issuer).category().name() == std::string("oidc"));
}

TEST_SUITE_END();
