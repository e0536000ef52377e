// Seeded random input into every parser of the OIDC layer: nothing may crash, hang or be accepted.
#include <doctest/doctest.h>

#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/device_flow.hpp"
#include "glassgate/protocols/oidc/discovery.hpp"
#include "glassgate/protocols/oidc/jwk.hpp"
#include "glassgate/protocols/oidc/jwt.hpp"

#include <chrono>
#include <random>
#include <string>

using namespace gg;
using namespace gg::oidc;

namespace {

const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1795428300));

std::string random_bytes(std::mt19937& rng, std::size_t max_len) {
    std::string s(std::uniform_int_distribution<std::size_t>(0, max_len)(rng), '\0');
    for (auto& c : s) c = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    return s;
}

/// Random text from JSON's own punctuation and a few words: reaches deeper into the parsers than bytes.
std::string random_jsonish(std::mt19937& rng, std::size_t pieces) {
    static const char* const vocab[] = {"{", "}", "[", "]", ",", ":", "\"", "\"keys\"", "\"kty\"", "\"RSA\"",
                                        "\"EC\"", "\"OKP\"", "\"crv\"", "\"P-256\"", "\"Ed25519\"", "\"x\"",
                                        "\"y\"", "\"n\"", "\"e\"", "\"AQAB\"", "\"kid\"", "\"alg\"", "\"none\"",
                                        "\"RS256\"", "0", "-1", "1e999", "true", "null", "\"\\u0000\"", " "};
    std::string s;
    const auto n = std::uniform_int_distribution<std::size_t>(0, pieces)(rng);
    for (std::size_t i = 0; i < n; ++i) s += vocab[std::uniform_int_distribution<std::size_t>(0, std::size(vocab) - 1)(rng)];
    return s;
}

KeySet some_keys() {
    // RFC 7517 A.1 example keys.
    auto set = KeySet::parse(
        R"({"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",)"
        R"("y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"},)"
        R"({"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJEC)"
        R"(PebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8)"
        R"(KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0L)"
        R"(s1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","kid":"2011-04-29"}]})");
    REQUIRE(set.has_value());
    REQUIRE(set->size() == 2);
    return *set;
}

}  // namespace

TEST_SUITE_BEGIN("oidc");

TEST_CASE("random input: verify_jwt never crashes or accepts") {
    std::mt19937 rng(8628);
    const KeySet keys = some_keys();
    VerifyOptions o;
    o.issuer = "https://idp.example.com";
    o.audience = {"glassgate"};
    for (int i = 0; i < 3000; ++i) {
        std::string token;
        switch (i % 3) {
            case 0: token = random_bytes(rng, 600); break;
            case 1:  // three base64url parts of random JSON-ish text
                token = base64url_encode(as_bytes(random_jsonish(rng, 30))) + "." +
                        base64url_encode(as_bytes(random_jsonish(rng, 30))) + "." +
                        base64url_encode(as_bytes(random_bytes(rng, 300)));
                break;
            default:  // a header that selects a real key and alg, random claims and signature
                token = base64url_encode(as_bytes(i % 2 ? R"({"alg":"ES256","kid":"1"})" : R"({"alg":"RS256","kid":"2011-04-29"})")) +
                        "." + base64url_encode(as_bytes(random_jsonish(rng, 40))) + "." +
                        base64url_encode(as_bytes(random_bytes(rng, 300)));
                break;
        }
        auto r = verify_jwt(token, keys, o, now);
        CHECK_FALSE(r.ok());
        CHECK_FALSE(r.reason.empty());
    }
}

TEST_CASE("random input: KeySet::parse never crashes") {
    std::mt19937 rng(7517);
    for (int i = 0; i < 3000; ++i) {
        const std::string doc = i % 2 ? random_bytes(rng, 400) : R"({"keys":[)" + random_jsonish(rng, 60) + "]}";
        auto set = KeySet::parse(doc);
        if (set.has_value()) {
            CHECK(set->size() + set->rejected().size() <= doc.size());
        } else {
            CHECK_FALSE(set.error().reason.empty());
        }
    }
}

TEST_CASE("random input: discovery, device authorization and token responses never crash") {
    std::mt19937 rng(1);
    DeviceAuthorization a;
    a.device_code = "d";
    a.user_code = "u";
    a.verification_uri = "https://i/d";
    a.expires_in = std::chrono::seconds(600);
    for (int i = 0; i < 2000; ++i) {
        const std::string doc = i % 2 ? random_bytes(rng, 300) : "{" + random_jsonish(rng, 40) + "}";
        (void)parse_discovery(doc, "https://idp.example.com");
        (void)parse_device_authorization(doc);
        DevicePoll p(a);
        (void)p.start(now);
        (void)p.on_token_response(i % 600, doc, now);
        (void)base64url_decode(doc);
    }
    CHECK(true);
}

TEST_SUITE_END();
