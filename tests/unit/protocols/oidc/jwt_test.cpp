// JWT verification against real keys generated here (OpenSSL EVP) and tokens signed here
// (EVP_DigestSign), one test per refusal, each asserting the precise VerifyError.
#include <doctest/doctest.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/jwt.hpp"

using namespace gg;
using namespace gg::oidc;
using namespace std::chrono_literals;
namespace json = boost::json;
using Clock = std::chrono::system_clock;

namespace {

// ---------------------------------------------------------------------------------------------
// Keys and signing (test side only)

struct PkeyFree {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey keygen(const char* type, int rsa_bits = 0, const char* group = nullptr) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    REQUIRE(ctx != nullptr);
    REQUIRE(EVP_PKEY_keygen_init(ctx) == 1);
    if (rsa_bits) REQUIRE(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, rsa_bits) == 1);
    if (group) REQUIRE(EVP_PKEY_CTX_set_group_name(ctx, group) == 1);
    EVP_PKEY* out = nullptr;
    REQUIRE(EVP_PKEY_keygen(ctx, &out) == 1);
    EVP_PKEY_CTX_free(ctx);
    return Pkey(out);
}

struct Keys {
    Pkey rsa = keygen("RSA", 2048);
    Pkey rsa_other = keygen("RSA", 2048);  // not in any JWKS
    Pkey rsa512 = keygen("RSA", 512);
    Pkey p256 = keygen("EC", 0, "P-256");
    Pkey p256_other = keygen("EC", 0, "P-256");
    Pkey p384 = keygen("EC", 0, "P-384");
    Pkey ed = keygen("ED25519");
};

const Keys& keys() {
    static const Keys k;
    return k;
}

std::string b64(const std::vector<unsigned char>& v) {
    return base64url_encode(ByteView(reinterpret_cast<const std::byte*>(v.data()), v.size()));
}

std::string bn_b64(EVP_PKEY* k, const char* param, std::size_t pad = 0) {
    BIGNUM* bn = nullptr;
    REQUIRE(EVP_PKEY_get_bn_param(k, param, &bn) == 1);
    std::vector<unsigned char> out(pad ? pad : static_cast<std::size_t>(BN_num_bytes(bn)));
    REQUIRE(BN_bn2binpad(bn, out.data(), static_cast<int>(out.size())) > 0);
    BN_free(bn);
    return b64(out);
}

/// The public JWK of a test key; `extra` is appended inside the object (e.g. R"(,"use":"enc")").
std::string jwk(EVP_PKEY* k, std::string_view kid, std::string_view extra = "") {
    std::string out = "{";
    if (!kid.empty()) out += R"("kid":")" + std::string(kid) + "\",";
    if (EVP_PKEY_is_a(k, "RSA")) {
        out += R"("kty":"RSA","n":")" + bn_b64(k, OSSL_PKEY_PARAM_RSA_N) + R"(","e":")" +
               bn_b64(k, OSSL_PKEY_PARAM_RSA_E) + "\"";
    } else if (EVP_PKEY_is_a(k, "EC")) {
        const bool p256 = EVP_PKEY_get_bits(k) == 256;
        const std::size_t field = p256 ? 32 : 48;
        out += R"("kty":"EC","crv":")" + std::string(p256 ? "P-256" : "P-384") + R"(","x":")" +
               bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, field) + R"(","y":")" + bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, field) +
               "\"";
    } else {
        std::vector<unsigned char> raw(32);
        std::size_t len = raw.size();
        REQUIRE(EVP_PKEY_get_raw_public_key(k, raw.data(), &len) == 1);
        out += R"("kty":"OKP","crv":"Ed25519","x":")" + b64(raw) + "\"";
    }
    return out + std::string(extra) + "}";
}

std::string jwks(std::initializer_list<std::string> list) {
    std::string out = R"({"keys":[)";
    bool first = true;
    for (const auto& k : list) {
        out += (first ? "" : ",") + k;
        first = false;
    }
    return out + "]}";
}

KeySet keyset(std::string_view doc) {
    auto set = KeySet::parse(doc);
    REQUIRE(set.has_value());
    REQUIRE(set->rejected().empty());
    return *set;
}

/// The standard set: one key per type.
const KeySet& standard_keys() {
    static const KeySet set = keyset(jwks({jwk(keys().rsa.get(), "rsa1"), jwk(keys().p256.get(), "ec256"),
                                           jwk(keys().p384.get(), "ec384"), jwk(keys().ed.get(), "ed1")}));
    return set;
}

/// Signs in JWS form (ECDSA as raw r||s unless `der`).
std::vector<unsigned char> sign(EVP_PKEY* k, std::string_view alg, std::string_view input, bool der = false) {
    const EVP_MD* md = nullptr;
    if (alg.ends_with("256")) md = EVP_sha256();
    if (alg.ends_with("384")) md = EVP_sha384();
    if (alg.ends_with("512")) md = EVP_sha512();
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    REQUIRE(EVP_DigestSignInit(ctx, &pctx, md, nullptr, k) == 1);
    if (alg.starts_with("PS")) {
        REQUIRE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
        REQUIRE(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1);
        REQUIRE(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1);
    }
    const auto* in = reinterpret_cast<const unsigned char*>(input.data());
    std::size_t len = 0;
    REQUIRE(EVP_DigestSign(ctx, nullptr, &len, in, input.size()) == 1);
    std::vector<unsigned char> sig(len);
    REQUIRE(EVP_DigestSign(ctx, sig.data(), &len, in, input.size()) == 1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg.starts_with("ES") && !der) {
        const unsigned char* p = sig.data();
        ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        REQUIRE(es != nullptr);
        const std::size_t half = alg == "ES256" ? 32 : 48;
        std::vector<unsigned char> raw(2 * half);
        REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw.data(), static_cast<int>(half)) > 0);
        REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw.data() + half, static_cast<int>(half)) > 0);
        ECDSA_SIG_free(es);
        return raw;
    }
    return sig;
}

std::string b64_text(std::string_view s) { return base64url_encode(as_bytes(s)); }

// ---------------------------------------------------------------------------------------------
// Tokens

const Clock::time_point now = Clock::time_point(std::chrono::seconds(1795428300));  // 2026-11-23T10:05:00Z
constexpr std::int64_t now_s = 1795428300;
constexpr std::string_view issuer = "https://idp.example.com/realms/eng";

json::object default_claims() {
    return {{"iss", issuer},
            {"aud", "glassgate"},
            {"sub", "f7c1a2b3-0000-4000-8000-000000000001"},
            {"preferred_username", "alice"},
            {"exp", now_s + 3600},
            {"iat", now_s - 10},
            {"nbf", now_s - 10},
            {"groups", json::array{"dba", "eng"}}};
}

VerifyOptions options() {
    VerifyOptions o;
    o.issuer = std::string(issuer);
    o.audience = {"glassgate"};
    o.client_id = "glassgate";
    o.username_claim = "preferred_username";
    return o;
}

struct Token {
    std::string alg = "RS256";
    std::optional<std::string> kid = "rsa1";
    json::object claims = default_claims();
    EVP_PKEY* key = keys().rsa.get();
    json::object extra_header;
    bool der = false;

    /// Signs as `signing_alg` with `signing_key`, naming `header_kid` in the header (nullopt: no kid).
    Token& signed_by(std::string signing_alg, std::optional<std::string> header_kid, EVP_PKEY* signing_key) {
        alg = std::move(signing_alg);
        kid = std::move(header_kid);
        key = signing_key;
        return *this;
    }

    [[nodiscard]] std::string header_json() const {
        json::object h = extra_header;
        h["alg"] = alg;
        h["typ"] = "JWT";
        if (kid) h["kid"] = *kid;
        return json::serialize(h);
    }
    [[nodiscard]] std::string str() const {
        const std::string input = b64_text(header_json()) + "." + b64_text(json::serialize(claims));
        return input + "." + b64(sign(key, alg, input, der));
    }
};

VerifyResult verify(const std::string& token, const KeySet& set = standard_keys(), const VerifyOptions& o = options()) {
    return verify_jwt(token, set, o, now);
}

/// Checks the precise refusal.
void check_refused(const VerifyResult& r, VerifyError e) {
    CAPTURE(r.reason);
    CHECK(r.error == e);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.identity.has_value());
    CHECK_FALSE(r.reason.empty());
}

/// The default token with `claim` set to `value` is refused with `e`; the log gets `reason`, the client
/// is told `told`.
void check_refused_claim(std::string_view claim, json::value value, VerifyError e, std::string_view reason,
                         std::string_view told) {
    Token t;
    t.claims[claim] = std::move(value);
    auto r = verify(t.str());
    check_refused(r, e);
    CHECK(r.reason == reason);
    CHECK(public_message(r.error) == told);
}

/// The default token naming `kid` (nullopt: none), verified against `set`, is refused as an unknown kid.
VerifyResult refused_kid(std::optional<std::string> kid, const KeySet& set = standard_keys()) {
    Token t;
    t.kid = std::move(kid);
    auto r = verify(t.str(), set);
    check_refused(r, VerifyError::unknown_kid);
    return r;
}

}  // namespace

TEST_SUITE_BEGIN("oidc");

// ---------------------------------------------------------------------------------------------
// Accepted tokens

TEST_CASE("jwt: a valid token for every accepted alg") {
    struct Case {
        const char* alg;
        const char* kid;
        EVP_PKEY* key;
    };
    const Case cases[] = {
        {"RS256", "rsa1", keys().rsa.get()},  {"RS384", "rsa1", keys().rsa.get()},
        {"RS512", "rsa1", keys().rsa.get()},  {"PS256", "rsa1", keys().rsa.get()},
        {"ES256", "ec256", keys().p256.get()}, {"ES384", "ec384", keys().p384.get()},
        {"EdDSA", "ed1", keys().ed.get()},
    };
    for (const auto& c : cases) {
        CAPTURE(c.alg);
        auto r = verify(Token{}.signed_by(c.alg, c.kid, c.key).str());
        CAPTURE(r.reason);
        REQUIRE(r.ok());
        REQUIRE(r.identity.has_value());
        CHECK(r.reason.empty());
        CHECK_FALSE(r.unknown_kid);
        const auto& id = *r.identity;
        CHECK(id.username == "alice");
        CHECK(id.subject == "f7c1a2b3-0000-4000-8000-000000000001");
        CHECK(id.issuer == issuer);
        CHECK(id.groups == std::vector<std::string>{"dba", "eng"});
        CHECK(id.expires == now + 3600s);
        CHECK(id.kid == c.kid);
        CHECK(id.alg == c.alg);
    }
}

TEST_CASE("jwt: no kid is fine when the key set holds exactly one key that fits") {
    const KeySet one = keyset(jwks({jwk(keys().p256.get(), "")}));
    Token t;
    t.signed_by("ES256", std::nullopt, keys().p256.get());
    auto r = verify(t.str(), one);
    REQUIRE(r.ok());
    CHECK(r.identity->kid.empty());

    t.alg = "ES384";
    t.key = keys().p384.get();
    check_refused(verify(t.str(), one), VerifyError::key_mismatch);
}

TEST_CASE("jwt: username defaults to sub") {
    VerifyOptions o = options();
    o.username_claim = "sub";
    auto r = verify(Token{}.str(), standard_keys(), o);
    REQUIRE(r.ok());
    CHECK(r.identity->username == "f7c1a2b3-0000-4000-8000-000000000001");
    CHECK(VerifyOptions{}.username_claim == "sub");
}

TEST_CASE("jwt: clock skew tolerance at the edges") {
    Token t;
    t.claims["exp"] = now_s - 59;
    CHECK(verify(t.str()).ok());
    t.claims["exp"] = now_s - 60;  // exp must be > now - skew
    check_refused(verify(t.str()), VerifyError::expired);
    t = Token{};
    t.claims["nbf"] = now_s + 60;
    CHECK(verify(t.str()).ok());
    t.claims["iat"] = now_s + 60;
    CHECK(verify(t.str()).ok());
}

// ---------------------------------------------------------------------------------------------
// Time claims

TEST_CASE("jwt: expired") {
    check_refused_claim("exp", now_s - 300, VerifyError::expired,  // 2026-11-23T10:00:00Z
                        "token expired at 2026-11-23T10:00:00Z (now 2026-11-23T10:05:00Z, skew 60s)", "token expired");
}

TEST_CASE("jwt: exp missing or not a number") {
    Token t;
    t.claims.erase("exp");
    check_refused(verify(t.str()), VerifyError::missing_claim);
    t.claims["exp"] = "tomorrow";
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["exp"] = -5;
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["exp"] = 1e300;
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["exp"] = static_cast<double>(now_s + 100) + 0.5;  // fractional NumericDate is legal
    CHECK(verify(t.str()).ok());
}

TEST_CASE("jwt: not yet valid (nbf)") {
    check_refused_claim("nbf", now_s + 3600, VerifyError::not_yet_valid,
                        "token not valid before 2026-11-23T11:05:00Z (now 2026-11-23T10:05:00Z, skew 60s)",
                        "token not yet valid");
}

TEST_CASE("jwt: issued in the future (iat)") {
    Token t;
    t.claims["iat"] = now_s + 120;
    check_refused(verify(t.str()), VerifyError::issued_in_future);
}

// ---------------------------------------------------------------------------------------------
// Issuer, audience, azp

TEST_CASE("jwt: wrong issuer") {
    Token t;
    t.claims["iss"] = "https://evil.example.com/realms/eng";
    auto r = verify(t.str());
    check_refused(r, VerifyError::wrong_issuer);
    CHECK(r.reason.find("evil.example.com") != std::string::npos);
    CHECK(public_message(r.error) == "invalid token");
    t.claims["iss"] = std::string(issuer) + "/";  // exact comparison
    check_refused(verify(t.str()), VerifyError::wrong_issuer);
    t.claims.erase("iss");
    check_refused(verify(t.str()), VerifyError::missing_claim);
}

TEST_CASE("jwt: wrong audience, as a string and as an array") {
    Token t;
    t.claims["aud"] = "another-app";
    check_refused(verify(t.str()), VerifyError::wrong_audience);
    t.claims["aud"] = json::array{"another-app", "third-app"};
    check_refused(verify(t.str()), VerifyError::wrong_audience);
    t.claims["aud"] = json::array{};
    check_refused(verify(t.str()), VerifyError::wrong_audience);
    t.claims["aud"] = 7;
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims.erase("aud");
    check_refused(verify(t.str()), VerifyError::missing_claim);

    VerifyOptions none = options();
    none.audience.clear();
    check_refused(verify(Token{}.str(), standard_keys(), none), VerifyError::wrong_audience);
}

TEST_CASE("jwt: audience arrays and azp") {
    Token t;
    t.claims["aud"] = json::array{"account", "glassgate"};
    SUBCASE("several audiences without azp are refused") {
        auto r = verify(t.str());
        check_refused(r, VerifyError::wrong_azp);
        CHECK(r.reason == "token has 2 audiences and no azp claim");
    }
    SUBCASE("several audiences with our azp are accepted") {
        t.claims["azp"] = "glassgate";
        CHECK(verify(t.str()).ok());
    }
    SUBCASE("azp naming another client is refused, even with one audience") {
        t.claims["aud"] = "glassgate";
        t.claims["azp"] = "other-client";
        check_refused(verify(t.str()), VerifyError::wrong_azp);
    }
    SUBCASE("without require_azp_match azp is not checked") {
        t.claims["azp"] = "other-client";
        VerifyOptions o = options();
        o.require_azp_match = false;
        CHECK(verify(t.str(), standard_keys(), o).ok());
    }
    SUBCASE("a single-element array needs no azp") {
        t.claims["aud"] = json::array{"glassgate"};
        CHECK(verify(t.str()).ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Algorithms and headers

TEST_CASE("jwt: alg none, with and without a signature part") {
    const std::string unsigned_input =
        b64_text(R"({"alg":"none","typ":"JWT"})") + "." + b64_text(json::serialize(default_claims()));
    auto r = verify(unsigned_input + ".");
    check_refused(r, VerifyError::unsupported_alg);
    CHECK(r.reason == "alg \"none\" (unsigned token) is never accepted");
    check_refused(verify(unsigned_input + "." + b64_text("anything")), VerifyError::unsupported_alg);
    // The signature-less two-part form is not a JWS at all.
    check_refused(verify(unsigned_input), VerifyError::malformed);
    // Case variants are unknown algs, not "none".
    const std::string upper = b64_text(R"({"alg":"NONE"})") + "." + b64_text(json::serialize(default_claims())) + ".";
    check_refused(verify(upper), VerifyError::unsupported_alg);
}

TEST_CASE("jwt: HS256 signed with the IdP's RSA public key as the HMAC secret") {
    BIO* bio = BIO_new(BIO_s_mem());
    REQUIRE(PEM_write_bio_PUBKEY(bio, keys().rsa.get()) == 1);
    char* pem_data = nullptr;
    const long pem_len = BIO_get_mem_data(bio, &pem_data);
    const std::string pem(pem_data, static_cast<std::size_t>(pem_len));
    BIO_free(bio);
    REQUIRE(pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    const std::string input = b64_text(R"({"alg":"HS256","typ":"JWT","kid":"rsa1"})") + "." +
                              b64_text(json::serialize(default_claims()));
    const auto mac = crypto::hmac_sha256(as_bytes(pem), as_bytes(input));
    auto r = verify(input + "." + base64url_encode(mac));
    check_refused(r, VerifyError::unsupported_alg);
    CHECK(r.reason.find("HMAC") != std::string::npos);
}

TEST_CASE("jwt: other algs are refused") {
    for (auto alg : {"HS384", "HS512", "PS384", "PS512", "ES512", "RSA-OAEP", "rs256", ""}) {
        CAPTURE(alg);
        const std::string input = b64_text(R"({"alg":")" + std::string(alg) + R"(","kid":"rsa1"})") + "." +
                                  b64_text(json::serialize(default_claims()));
        check_refused(verify(input + "." + b64(sign(keys().rsa.get(), "RS256", input))), VerifyError::unsupported_alg);
    }
    const std::string no_alg = b64_text(R"({"kid":"rsa1"})") + "." + b64_text(json::serialize(default_claims()));
    check_refused(verify(no_alg + "." + b64(sign(keys().rsa.get(), "RS256", no_alg))), VerifyError::unsupported_alg);
    const std::string num_alg = b64_text(R"({"alg":256})") + "." + b64_text(json::serialize(default_claims()));
    check_refused(verify(num_alg + ".AAAA"), VerifyError::unsupported_alg);
}

TEST_CASE("jwt: crit header is refused (no extension is understood)") {
    Token t;
    t.extra_header["crit"] = json::array{"exp"};
    t.extra_header["exp"] = now_s;
    check_refused(verify(t.str()), VerifyError::unsupported_header);
}

TEST_CASE("jwt: embedded jwk / jku / x5u / x5c headers are ignored") {
    // The attacker signs with their own key and offers it in the header, with the kid of a real key.
    EVP_PKEY* attacker = keys().rsa_other.get();
    const std::string attacker_jwk = jwk(attacker, "rsa1");
    Token t;
    t.key = attacker;
    t.extra_header["jwk"] = json::parse(attacker_jwk);
    t.extra_header["jku"] = "https://evil.example.com/jwks.json";
    t.extra_header["x5u"] = "https://evil.example.com/cert.pem";
    t.extra_header["x5c"] = json::array{"MIIB..."};
    auto r = verify(t.str());
    check_refused(r, VerifyError::bad_signature);
    CHECK(r.reason == "signature does not verify with key \"rsa1\" (RS256)");

    // Without a kid, against a one-key set: still only the set's key is used.
    const KeySet one = keyset(jwks({jwk(keys().rsa.get(), "rsa1")}));
    t.kid = std::nullopt;
    check_refused(verify(t.str(), one), VerifyError::bad_signature);
    // The same header with the real key's signature verifies: the extra members are just ignored.
    t.key = keys().rsa.get();
    CHECK(verify(t.str(), one).ok());
}

// ---------------------------------------------------------------------------------------------
// Keys

TEST_CASE("jwt: unknown kid asks the caller to refresh") {
    auto r = refused_kid("rotated-2026-11");
    CHECK(r.unknown_kid);
    CHECK(r.reason == "unknown kid \"rotated-2026-11\" (key set holds 4 keys)");

    auto empty = refused_kid(std::nullopt, KeySet{});
    CHECK(empty.unknown_kid);
}

TEST_CASE("jwt: a kid with path and SQL characters is just an unknown kid, escaped in the reason") {
    auto r = refused_kid("../../etc/passwd' OR 1=1");
    CHECK(r.unknown_kid);
    CHECK(r.reason == "unknown kid \"../../etc/passwd' OR 1=1\" (key set holds 4 keys)");

    r = refused_kid("a\"b\\c\nd\x01" + std::string(500, 'z'));
    CHECK(r.reason.find('\n') == std::string::npos);
    CHECK(r.reason.starts_with("unknown kid \"a\\x22b\\x5cc\\x0ad\\x01zzz"));
    CHECK(r.reason.find("...\"") != std::string::npos);  // truncated to 64 bytes of the kid
    CHECK(r.reason.size() < 120);
}

TEST_CASE("jwt: kid of the wrong JSON type is malformed") {
    Token t;
    t.kid = std::nullopt;
    t.extra_header["kid"] = 42;
    check_refused(verify(t.str()), VerifyError::malformed);
}

TEST_CASE("jwt: no kid with several keys in the set") {
    Token t;
    t.kid = std::nullopt;
    check_refused(verify(t.str()), VerifyError::missing_kid);
}

TEST_CASE("jwt: valid signature from a key not in the JWKS, under a JWKS kid") {
    Token t;
    t.key = keys().rsa_other.get();
    check_refused(verify(t.str()), VerifyError::bad_signature);
    Token e;
    e.signed_by("ES256", "ec256", keys().p256_other.get());
    check_refused(verify(e.str()), VerifyError::bad_signature);
}

TEST_CASE("jwt: key type, curve, declared alg and use must fit") {
    SUBCASE("RSA kid with an ES256 header") {
        Token t;
        t.alg = "ES256";
        t.key = keys().p256.get();
        auto r = verify(t.str());
        check_refused(r, VerifyError::key_mismatch);
        CHECK(r.reason == "key \"rsa1\": key type RSA cannot verify ES256");
    }
    SUBCASE("P-256 kid with an ES384 header") {
        Token t;
        t.signed_by("ES384", "ec256", keys().p384.get());
        check_refused(verify(t.str()), VerifyError::key_mismatch);
    }
    SUBCASE("EC kid with EdDSA, OKP kid with RS256") {
        Token t;
        t.signed_by("EdDSA", "ec256", keys().ed.get());
        check_refused(verify(t.str()), VerifyError::key_mismatch);
        t.signed_by("RS256", "ed1", keys().rsa.get());
        check_refused(verify(t.str()), VerifyError::key_mismatch);
    }
    SUBCASE("key declared RS256, token PS256 (correctly signed)") {
        const KeySet set = keyset(jwks({jwk(keys().rsa.get(), "rsa1", R"(,"alg":"RS256","use":"sig")")}));
        Token t;
        CHECK(verify(t.str(), set).ok());
        t.alg = "PS256";
        check_refused(verify(t.str(), set), VerifyError::key_mismatch);
    }
    SUBCASE("key declared for encryption") {
        const KeySet set = keyset(jwks({jwk(keys().rsa.get(), "rsa1", R"(,"use":"enc")")}));
        check_refused(verify(Token{}.str(), set), VerifyError::key_mismatch);
    }
    SUBCASE("key_ops without verify") {
        const KeySet set = keyset(jwks({jwk(keys().rsa.get(), "rsa1", R"(,"key_ops":["encrypt"])")}));
        check_refused(verify(Token{}.str(), set), VerifyError::key_mismatch);
    }
}

TEST_CASE("jwks: RSA 512 is refused with a reason, the rest of the set loads") {
    auto set = KeySet::parse(jwks({jwk(keys().rsa512.get(), "weak"), jwk(keys().rsa.get(), "rsa1")}));
    REQUIRE(set.has_value());
    CHECK(set->size() == 1);
    REQUIRE(set->rejected().size() == 1);
    CHECK(set->rejected()[0].kid == "weak");
    CHECK(set->rejected()[0].reason == "RSA modulus of 512 bits is below the minimum of 2048");

    // A token signed by the weak key is then an unknown kid, never verified with a 512-bit key.
    Token t;
    t.kid = "weak";
    t.key = keys().rsa512.get();
    auto r = verify(t.str(), *set);
    check_refused(r, VerifyError::unknown_kid);
}

TEST_CASE("jwks: generated P-384 and Ed25519 keys round-trip, point off the curve is refused") {
    auto doc = jwk(keys().p384.get(), "p");
    auto set = KeySet::parse(jwks({doc}));
    REQUIRE(set.has_value());
    CHECK(set->find("p")->curve() == Curve::p384);
    CHECK(set->find("p")->bits() == 384);
    // Replace y by x: (x, x) is (overwhelmingly likely) not on the curve.
    const auto x_at = doc.find(R"("x":")") + 5;
    const auto x = doc.substr(x_at, doc.find('"', x_at) - x_at);
    const auto y_at = doc.find(R"("y":")") + 5;
    doc.replace(y_at, doc.find('"', y_at) - y_at, x);
    auto bad = KeySet::parse(jwks({doc}));
    REQUIRE(bad.has_value());
    CHECK(bad->empty());
    REQUIRE(bad->rejected().size() == 1);
    CHECK(bad->rejected()[0].reason == "EC point is not on curve P-384");
}

// ---------------------------------------------------------------------------------------------
// Signature encodings and token structure

TEST_CASE("jwt: ES256 with a DER signature instead of raw r||s is refused") {
    Token t;
    t.signed_by("ES256", "ec256", keys().p256.get());
    t.der = true;
    auto r = verify(t.str());
    check_refused(r, VerifyError::bad_signature);
    CHECK(r.reason.starts_with("ES256 signature must be 64 bytes (JWS r||s form), got "));
    t.signed_by("ES384", "ec384", keys().p384.get());
    check_refused(verify(t.str()), VerifyError::bad_signature);
}

TEST_CASE("jwt: PS256 signature does not pass as RS256 and vice versa") {
    Token t;
    const auto ps = [&] {
        Token p;
        p.alg = "PS256";
        return p;
    }();
    // Take the PS256 signature and put it under an RS256 header: the signed input differs anyway,
    // so build it by hand over the RS256 input.
    const std::string input = b64_text(t.header_json()) + "." + b64_text(json::serialize(t.claims));
    const auto pss_sig = sign(keys().rsa.get(), "PS256", input);
    check_refused(verify(input + "." + b64(pss_sig)), VerifyError::bad_signature);
    const std::string ps_input = b64_text(ps.header_json()) + "." + b64_text(json::serialize(ps.claims));
    const auto pkcs1_sig = sign(keys().rsa.get(), "RS256", ps_input);
    check_refused(verify(ps_input + "." + b64(pkcs1_sig)), VerifyError::bad_signature);
}

TEST_CASE("jwt: truncated tokens") {
    const std::string token = Token{}.str();
    const auto d2 = token.rfind('.');
    check_refused(verify(token.substr(0, d2)), VerifyError::malformed);      // no signature part
    check_refused(verify(token.substr(0, d2 + 1)), VerifyError::bad_signature);  // empty signature
    check_refused(verify(token.substr(0, token.find('.'))), VerifyError::malformed);
    check_refused(verify(""), VerifyError::malformed);
    // Every prefix is refused, never crashes, and none verifies.
    for (std::size_t n = 0; n < token.size(); ++n) {
        auto r = verify(token.substr(0, n));
        CHECK_FALSE(r.ok());
    }
}

TEST_CASE("jwt: three parts, invalid base64url") {
    const std::string token = Token{}.str();
    const auto d1 = token.find('.');
    check_refused(verify("!!!!" + token.substr(d1)), VerifyError::malformed);
    std::string padded = token;
    padded.insert(d1, "==");
    check_refused(verify(padded), VerifyError::malformed);
    check_refused(verify("a.b.c"), VerifyError::malformed);
    check_refused(verify(".."), VerifyError::malformed);
    std::string spaced = token;
    spaced.insert(d1 + 3, " ");
    check_refused(verify(spaced), VerifyError::malformed);
    check_refused(verify(token + "\n"), VerifyError::malformed);
    check_refused(verify(token + ".extra"), VerifyError::malformed);
    // Valid base64url of something that is not a JSON object.
    check_refused(verify(b64_text("[1]") + "." + b64_text("{}") + ".AAAA"), VerifyError::malformed);
    check_refused(verify(b64_text("{\"alg\":\"RS256\"") + "." + b64_text("{}") + ".AAAA"), VerifyError::malformed);
}

TEST_CASE("jwt: claims that are not JSON (after a good signature) are malformed") {
    const std::string input = b64_text(R"({"alg":"RS256","kid":"rsa1"})") + "." + b64_text("not json");
    check_refused(verify(input + "." + b64(sign(keys().rsa.get(), "RS256", input))), VerifyError::malformed);
}

TEST_CASE("jwt: 64 KiB of junk is refused before decoding") {
    std::string junk(64 * 1024, 'A');
    junk[100] = '.';
    junk[200] = '.';
    auto r = verify(junk);
    check_refused(r, VerifyError::token_too_large);
    CHECK(r.reason == "token of 65536 bytes exceeds the limit of 16384");
    std::string exactly(16 * 1024, 'A');
    CHECK(verify(exactly).error == VerifyError::malformed);  // at the limit: decoded, then refused
}

TEST_CASE("jwt: deep JSON in the header is refused") {
    const std::string header = R"({"alg":"RS256","kid":"rsa1","x":)" + std::string(50, '[') + std::string(50, ']') + "}";
    const std::string input = b64_text(header) + "." + b64_text(json::serialize(default_claims()));
    check_refused(verify(input + "." + b64(sign(keys().rsa.get(), "RS256", input))), VerifyError::malformed);
}

TEST_CASE("jwt: the reason never contains the token or its signature") {
    Token t;
    t.key = keys().rsa_other.get();
    const std::string token = t.str();
    const auto sig = token.substr(token.rfind('.') + 1);
    const auto payload = token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1);
    auto r = verify(token);
    check_refused(r, VerifyError::bad_signature);
    CHECK(r.reason.find(sig.substr(0, 16)) == std::string::npos);
    CHECK(r.reason.find(payload.substr(0, 16)) == std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Identity claims

TEST_CASE("jwt: missing or bad username claim") {
    Token t;
    t.claims.erase("preferred_username");
    auto r = verify(t.str());
    check_refused(r, VerifyError::missing_claim);
    CHECK(r.reason == "no \"preferred_username\" claim (the configured username claim)");
    t.claims["preferred_username"] = "";
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["preferred_username"] = json::array{"alice"};
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["preferred_username"] = "alice\nbob";  // would forge a log line
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["preferred_username"] = std::string(300, 'a');
    check_refused(verify(t.str()), VerifyError::invalid_claim);
    t.claims["preferred_username"] = "Zoë";  // non-ASCII names are fine
    CHECK(verify(t.str()).identity->username == "Zoë");
    t.claims.erase("sub");
    check_refused(verify(t.str()), VerifyError::missing_claim);
}

TEST_CASE("jwt: groups as an array, a single string, or absent") {
    Token t;
    SUBCASE("array") {
        t.claims["groups"] = json::array{"dba", "ops", "eng"};
        CHECK(verify(t.str()).identity->groups == std::vector<std::string>{"dba", "ops", "eng"});
    }
    SUBCASE("single string") {
        t.claims["groups"] = "dba";
        CHECK(verify(t.str()).identity->groups == std::vector<std::string>{"dba"});
    }
    SUBCASE("absent") {
        t.claims.erase("groups");
        auto r = verify(t.str());
        REQUIRE(r.ok());
        CHECK(r.identity->groups.empty());
    }
    SUBCASE("empty array") {
        t.claims["groups"] = json::array{};
        CHECK(verify(t.str()).identity->groups.empty());
    }
    SUBCASE("another claim name") {
        VerifyOptions o = options();
        o.groups_claim = "roles";
        t.claims["roles"] = json::array{"admin"};
        CHECK(verify(t.str(), standard_keys(), o).identity->groups == std::vector<std::string>{"admin"});
    }
    SUBCASE("wrong types are refused, not ignored") {
        t.claims["groups"] = 5;
        check_refused(verify(t.str()), VerifyError::invalid_claim);
        t.claims["groups"] = json::array{"dba", 7};
        check_refused(verify(t.str()), VerifyError::invalid_claim);
        t.claims["groups"] = json::array{"dba\r\nadmin"};
        check_refused(verify(t.str()), VerifyError::invalid_claim);
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness

TEST_CASE("jwt: one key set verifies from several threads at once") {
    std::vector<std::string> tokens;
    for (auto [alg, kid, key] : {std::tuple{"RS256", "rsa1", keys().rsa.get()},
                                 std::tuple{"PS256", "rsa1", keys().rsa.get()},
                                 std::tuple{"ES256", "ec256", keys().p256.get()},
                                 std::tuple{"EdDSA", "ed1", keys().ed.get()}}) {
        tokens.push_back(Token{}.signed_by(alg, kid, key).str());
    }
    Token bad;
    bad.key = keys().rsa_other.get();
    const std::string forged = bad.str();
    const KeySet set = standard_keys();  // a copy shares the keys
    const VerifyOptions o = options();
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int th = 0; th < 4; ++th) {
        threads.emplace_back([&, th] {
            for (int i = 0; i < 50; ++i) {
                const auto& tok = tokens[static_cast<std::size_t>(i + th) % tokens.size()];
                if (!verify_jwt(tok, set, o, now).ok()) ++failures;
                if (verify_jwt(forged, set, o, now).ok()) ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(failures.load() == 0);
}

TEST_CASE("jwt: seeded single-character mutations of valid tokens never verify") {
    std::mt19937 rng(20261123);
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    std::vector<std::string> tokens;
    for (auto [alg, kid, key] : {std::tuple{"RS256", "rsa1", keys().rsa.get()},
                                 std::tuple{"ES384", "ec384", keys().p384.get()},
                                 std::tuple{"EdDSA", "ed1", keys().ed.get()}}) {
        tokens.push_back(Token{}.signed_by(alg, kid, key).str());
    }
    int accepted = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string tok = tokens[static_cast<std::size_t>(i) % tokens.size()];
        const auto pos = std::uniform_int_distribution<std::size_t>(0, tok.size() - 1)(rng);
        char c = tok[pos];
        while (c == tok[pos]) c = alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
        tok[pos] = c;
        if (verify(tok).ok()) ++accepted;
    }
    CHECK(accepted == 0);
}

TEST_CASE("jwt: public messages are generic") {
    CHECK(public_message(VerifyError::bad_signature) == "invalid token");
    CHECK(public_message(VerifyError::unknown_kid) == "invalid token");
    CHECK(public_message(VerifyError::wrong_audience) == "invalid token");
    CHECK(public_message(VerifyError::expired) == "token expired");
    CHECK(to_string(VerifyError::wrong_azp) == "wrong_azp");
}

TEST_SUITE_END();

// ---------------------------------------------------------------------------------------------
// Signature cache

TEST_CASE("jwt: a signature cache remembers successes only and never skips the claim checks") {
    SignatureCache cache;
    const std::string token = Token{}.str();
    REQUIRE(verify_jwt(token, standard_keys(), options(), now, &cache).ok());
    CHECK(cache.size() == 1);
    auto again = verify_jwt(token, standard_keys(), options(), now, &cache);
    REQUIRE(again.ok());
    CHECK(again.identity->username == "alice");
    CHECK(cache.size() == 1);

    // Same token later: the cached signature does not keep an expired token alive.
    check_refused(verify_jwt(token, standard_keys(), options(), now + 2h, &cache), VerifyError::expired);
    // Other options: the audience is still checked.
    VerifyOptions other = options();
    other.audience = {"someone-else"};
    check_refused(verify_jwt(token, standard_keys(), other, now, &cache), VerifyError::wrong_audience);

    // Failures are not remembered: a forged signature is refused every time and adds nothing.
    Token forged;
    forged.key = keys().rsa_other.get();
    const std::string bad = forged.str();
    for (int i = 0; i < 2; ++i) check_refused(verify_jwt(bad, standard_keys(), options(), now, &cache), VerifyError::bad_signature);
    CHECK(cache.size() == 1);

    // The claims of a cached token changed, signature kept: a different signing input, refused.
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    json::object claims = default_claims();
    claims["preferred_username"] = "mallory";
    const std::string swapped = token.substr(0, d1) + "." + b64_text(json::serialize(claims)) + token.substr(d2);
    check_refused(verify_jwt(swapped, standard_keys(), options(), now, &cache), VerifyError::bad_signature);
    // The signature of a cached token altered by one bit: refused.
    std::string flipped = token;
    flipped[token.size() - 2] = flipped[token.size() - 2] == 'A' ? 'B' : 'A';
    check_refused(verify_jwt(flipped, standard_keys(), options(), now, &cache), VerifyError::bad_signature);
    CHECK(cache.size() == 1);
}

TEST_CASE("jwt: a signature cache is bounded") {
    SignatureCache cache(3);
    for (int i = 0; i < 7; ++i) {
        Token t;
        t.claims["jti"] = "token-" + std::to_string(i);
        REQUIRE(verify_jwt(t.str(), standard_keys(), options(), now, &cache).ok());
        CHECK(cache.size() <= 3);
        CHECK(cache.size() >= 1);
    }
}
