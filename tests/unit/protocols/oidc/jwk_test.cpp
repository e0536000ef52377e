// JWKS parsing with the fixed example keys of RFC 7517 (appendix A.1) and RFC 8037 (appendix A),
// so that interoperability is checked against data we did not produce ourselves.
#include <doctest/doctest.h>

#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/jwk.hpp"

#include <string>

using namespace gg;
using namespace gg::oidc;

namespace {

constexpr std::string_view rfc7517_ec_x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
constexpr std::string_view rfc7517_ec_y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
constexpr std::string_view rfc7517_rsa_n =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
    "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
    "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJz"
    "KnqDKgw";
constexpr std::string_view rfc8037_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

std::string ec_key(std::string_view kid, std::string_view x, std::string_view y, std::string_view crv = "P-256") {
    return R"({"kty":"EC","crv":")" + std::string(crv) + R"(","x":")" + std::string(x) + R"(","y":")" +
           std::string(y) + R"(","kid":")" + std::string(kid) + "\"}";
}

std::string rsa_key(std::string_view kid, std::string_view extra = "") {
    return R"({"kty":"RSA","n":")" + std::string(rfc7517_rsa_n) + R"(","e":"AQAB","kid":")" + std::string(kid) +
           "\"" + std::string(extra) + "}";
}

std::string okp_key(std::string_view kid) {
    return R"({"kty":"OKP","crv":"Ed25519","x":")" + std::string(rfc8037_x) + R"(","kid":")" + std::string(kid) + "\"}";
}

std::string jwks(std::initializer_list<std::string> keys) {
    std::string out = R"({"keys":[)";
    bool first = true;
    for (const auto& k : keys) {
        if (!first) out += ",";
        out += k;
        first = false;
    }
    return out + "]}";
}

/// Flips the last base64url character to another valid one, changing the value.
std::string tweak(std::string_view b64) {
    auto bytes = base64url_decode(b64).value();
    bytes.back() ^= std::byte{0x01};
    return base64url_encode(bytes);
}

}  // namespace

TEST_SUITE_BEGIN("oidc");

TEST_CASE("jwks: RFC 7517 A.1 and RFC 8037 example keys load") {
    auto set = KeySet::parse(jwks({ec_key("1", rfc7517_ec_x, rfc7517_ec_y), rsa_key("2011-04-29", R"(,"alg":"RS256")"),
                                   okp_key("ed")}));
    REQUIRE(set.has_value());
    CHECK(set->rejected().empty());
    REQUIRE(set->size() == 3);
    const auto* ec = set->find("1");
    REQUIRE(ec != nullptr);
    CHECK(ec->kty() == KeyType::ec);
    CHECK(ec->curve() == Curve::p256);
    CHECK(ec->bits() == 256);
    const auto* rsa = set->find("2011-04-29");
    REQUIRE(rsa != nullptr);
    CHECK(rsa->kty() == KeyType::rsa);
    CHECK(rsa->bits() == 2048);
    CHECK(rsa->alg().value() == "RS256");
    CHECK_FALSE(rsa->use().has_value());
    CHECK(set->find("ed")->curve() == Curve::ed25519);
    CHECK(set->find("nope") == nullptr);
    CHECK(set->find("") == nullptr);
}

TEST_CASE("jwks: RFC 8037 A.4 Ed25519 signature verifies (known answer)") {
    auto set = KeySet::parse(jwks({okp_key("ed")}));
    REQUIRE(set.has_value());
    const auto sig =
        base64url_decode("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg").value();
    const std::string_view input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    const auto& key = set->keys().front();
    CHECK(key.verify(JwsAlg::eddsa, as_bytes(input), sig));
    CHECK_FALSE(key.verify(JwsAlg::eddsa, as_bytes(std::string(input) + "x"), sig));
    CHECK_FALSE(key.verify(JwsAlg::es256, as_bytes(input), sig));  // wrong type for the alg
}

TEST_CASE("jwks: document-level errors") {
    CHECK(KeySet::parse("not json").error().code == errc::not_json);
    CHECK(KeySet::parse("<html><body>502 Bad Gateway</body></html>").error().code == errc::not_json);
    CHECK(KeySet::parse("").error().code == errc::not_json);
    CHECK(KeySet::parse("[]").error().code == errc::bad_shape);
    CHECK(KeySet::parse("{}").error().code == errc::bad_shape);
    CHECK(KeySet::parse(R"({"keys":{}})").error().code == errc::bad_shape);
    CHECK(KeySet::parse(R"({"Keys":[]})").error().reason == "JWKS document has no \"keys\" array");
    KeyPolicy small;
    small.max_document_bytes = 10;
    CHECK(KeySet::parse(R"({"keys":[    ]})", small).error().code == errc::too_large);
    // Depth bound: a deeply nested document is refused as not parseable, not with a stack overflow.
    std::string deep = R"({"keys":[{"x":)" + std::string(10000, '[') + std::string(10000, ']') + "}]}";
    CHECK(KeySet::parse(deep).error().code == errc::not_json);
}

TEST_CASE("jwks: an empty keys array is an empty set, not an error") {
    auto set = KeySet::parse(R"({"keys":[]})");
    REQUIRE(set.has_value());
    CHECK(set->empty());
}

TEST_CASE("jwks: bad keys are skipped with a reason, the others load") {
    struct Case {
        const char* name;
        std::string key;
        std::string reason_contains;
    };
    const std::string off_curve_y = tweak(rfc7517_ec_y);
    const Case cases[] = {
        {"unknown kty", R"({"kty":"XYZ","kid":"a"})", "unsupported kty \"XYZ\""},
        {"symmetric key", R"({"kty":"oct","kid":"a","alg":"HS256"})", "symmetric keys"},
        {"no kty", R"({"kid":"a","n":"AQAB"})", "no \"kty\""},
        {"not an object", R"("hello")", "not a JSON object"},
        {"EC point not on the curve", ec_key("a", rfc7517_ec_x, off_curve_y), "EC point is not on curve P-256"},
        {"EC coordinates of the wrong size", ec_key("a", "AQAB", "AQAB"), "must be 32 bytes"},
        {"EC unsupported curve", ec_key("a", rfc7517_ec_x, rfc7517_ec_y, "secp256k1"), "unsupported EC curve"},
        {"EC P-256 coordinates labelled P-384", ec_key("a", rfc7517_ec_x, rfc7517_ec_y, "P-384"), "must be 48 bytes"},
        {"EC missing y", R"({"kty":"EC","crv":"P-256","kid":"a","x":")" + std::string(rfc7517_ec_x) + "\"}",
         "no \"y\" member"},
        {"EC x not base64url", ec_key("a", "MKBC+NIc", rfc7517_ec_y), "\"x\" is not valid base64url"},
        {"RSA without e", R"({"kty":"RSA","kid":"a","n":")" + std::string(rfc7517_rsa_n) + "\"}", "no \"e\" member"},
        {"RSA with private exponent", rsa_key("a", R"(,"d":"AQAB")"), "private or symmetric"},
        {"RSA even exponent", R"({"kty":"RSA","kid":"a","e":"AQAA","n":")" + std::string(rfc7517_rsa_n) + "\"}",
         "exponent"},
        {"OKP X25519", R"({"kty":"OKP","crv":"X25519","kid":"a","x":")" + std::string(rfc8037_x) + "\"}",
         "only Ed25519 signs"},
        {"OKP short key", R"({"kty":"OKP","crv":"Ed25519","kid":"a","x":"AQAB"})", "must be 32 bytes"},
        {"kid not a string", R"({"kty":"OKP","crv":"Ed25519","kid":5,"x":")" + std::string(rfc8037_x) + "\"}",
         "\"kid\" is not a string"},
        {"use not a string", R"({"kty":"OKP","crv":"Ed25519","use":["sig"],"x":")" + std::string(rfc8037_x) + "\"}",
         "\"use\" is not a string"},
        {"key_ops not strings", R"({"kty":"OKP","crv":"Ed25519","key_ops":[1],"x":")" + std::string(rfc8037_x) + "\"}",
         "key_ops"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto set = KeySet::parse(jwks({okp_key("good"), c.key}));
        REQUIRE(set.has_value());
        CHECK(set->size() == 1);
        CHECK(set->keys().front().kid() == "good");
        REQUIRE(set->rejected().size() == 1);
        CHECK(set->rejected()[0].index == 1);
        CHECK(set->rejected()[0].reason.find(c.reason_contains) != std::string::npos);
    }
}

TEST_CASE("jwks: duplicate kid keeps the first; too many keys are rejected") {
    auto set = KeySet::parse(jwks({okp_key("k"), ec_key("k", rfc7517_ec_x, rfc7517_ec_y)}));
    REQUIRE(set.has_value());
    REQUIRE(set->size() == 1);
    CHECK(set->find("k")->kty() == KeyType::okp);
    REQUIRE(set->rejected().size() == 1);
    CHECK(set->rejected()[0].kid == "k");
    CHECK(set->rejected()[0].reason.find("duplicate kid") != std::string::npos);

    KeyPolicy two;
    two.max_keys = 2;
    auto many = KeySet::parse(jwks({okp_key("a"), okp_key("b"), okp_key("c")}), two);
    REQUIRE(many.has_value());
    CHECK(many->size() == 2);
    REQUIRE(many->rejected().size() == 1);
    CHECK(many->rejected()[0].kid == "c");
}

TEST_CASE("jwks: a hostile kid is stored escaped in the rejection") {
    auto set = KeySet::parse(jwks({R"({"kty":"nope","kid":"a\nb\"c"})"}));
    REQUIRE(set.has_value());
    REQUIRE(set->rejected().size() == 1);
    CHECK(set->rejected()[0].kid == "a\\x0ab\\x22c");
}

TEST_CASE("jwk: unfit_for checks type, curve, declared alg, use and key_ops") {
    auto set = KeySet::parse(jwks({
        rsa_key("rsa"),
        rsa_key("rsa-enc", R"(,"use":"enc")"),
        rsa_key("rsa-ps", R"(,"alg":"PS256")"),
        rsa_key("rsa-ops", R"(,"key_ops":["encrypt"])"),
        rsa_key("rsa-ops-ok", R"(,"key_ops":["verify"],"use":"sig","alg":"RS384")"),
        ec_key("ec", rfc7517_ec_x, rfc7517_ec_y),
        okp_key("ed"),
    }));
    REQUIRE(set.has_value());
    REQUIRE(set->size() == 7);
    auto unfit = [&](std::string_view kid, JwsAlg alg) { return set->find(kid)->unfit_for(alg); };
    CHECK_FALSE(unfit("rsa", JwsAlg::rs256).has_value());
    CHECK_FALSE(unfit("rsa", JwsAlg::rs512).has_value());
    CHECK_FALSE(unfit("rsa", JwsAlg::ps256).has_value());
    CHECK(unfit("rsa", JwsAlg::es256).value() == "key type RSA cannot verify ES256");
    CHECK(unfit("rsa-enc", JwsAlg::rs256).value().find("use \"enc\"") != std::string::npos);
    CHECK(unfit("rsa-ps", JwsAlg::rs256).value().find("declared for alg PS256") != std::string::npos);
    CHECK_FALSE(unfit("rsa-ps", JwsAlg::ps256).has_value());
    CHECK(unfit("rsa-ops", JwsAlg::rs256).value().find("key_ops") != std::string::npos);
    CHECK_FALSE(unfit("rsa-ops-ok", JwsAlg::rs384).has_value());
    CHECK_FALSE(unfit("ec", JwsAlg::es256).has_value());
    CHECK(unfit("ec", JwsAlg::es384).value() == "key type EC P-256 cannot verify ES384");
    CHECK(unfit("ec", JwsAlg::eddsa).has_value());
    CHECK_FALSE(unfit("ed", JwsAlg::eddsa).has_value());
    CHECK(unfit("ed", JwsAlg::rs256).has_value());
}

TEST_CASE("jws alg names") {
    for (auto name : {"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}) {
        auto alg = parse_jws_alg(name);
        REQUIRE(alg.has_value());
        CHECK(to_string(*alg) == name);
    }
    for (auto name : {"none", "None", "HS256", "HS384", "HS512", "rs256", "PS384", "PS512", "ES512", "ES256K", "Ed25519", ""}) {
        CAPTURE(name);
        CHECK_FALSE(parse_jws_alg(name).has_value());
    }
}

TEST_SUITE_END();
