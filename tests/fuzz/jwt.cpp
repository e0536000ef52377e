// JWT verification (protocols/oidc/jwt.hpp verify_jwt): the ID token a client presents or the IdP
// returns. Key set: the RFC 7517 RSA and P-256 example keys and the RFC 8037 Ed25519 key.
//   byte 0 : bit 0 a signature memo that trusts every signature (reaches the claim checks, which a
//            fuzzer cannot sign its way to), bit 1 key set of the Ed25519 key alone (tokens without
//            kid), bit 2 structured: the rest is header JSON '\n' claims JSON '\n' signature bytes,
//            encoded into a token here; otherwise the rest is the token as sent. bit 3: azp not
//            required, username claim "email".
// A token that verifies yields an identity with a usable name; a refusal has a reason and a public
// message. (That the reason never repeats the token is a unit test: a fuzzer learns the reason texts
// and writes them into its tokens.)

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/jwt.hpp"

using namespace gg;
using namespace gg::oidc;

namespace {

constexpr std::string_view rsa_n =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
    "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
    "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJz"
    "KnqDKgw";

const KeySet& keys(bool ed25519_only) {
    static const KeySet all = [] {
        auto r = KeySet::parse(std::string(R"({"keys":[{"kty":"RSA","kid":"rsa1","e":"AQAB","n":")") +
                               std::string(rsa_n) +
                               R"("},{"kty":"EC","kid":"ec1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},)"
                               R"({"kty":"OKP","kid":"ed1","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})");
        GG_FUZZ_CHECK(r.has_value() && r->size() == 3);
        return *r;
    }();
    static const KeySet one = [] {
        auto r = KeySet::parse(
            R"({"keys":[{"kty":"OKP","kid":"ed1","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})");
        GG_FUZZ_CHECK(r.has_value() && r->size() == 1);
        return *r;
    }();
    return ed25519_only ? one : all;
}

class TrustAll final : public SignatureMemo {
public:
    bool contains(std::string_view, std::string_view, std::string_view, std::string_view) const override { return true; }
    void insert(std::string_view, std::string_view, std::string_view, std::string_view) override {}
};

bool has_control(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) return true;
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const unsigned flags = data[0];
    const std::string_view rest = fuzz::text(data + 1, size - 1);
    std::string token;
    if ((flags & 4u) != 0) {
        const auto a = rest.find('\n');
        const auto b = a == std::string_view::npos ? a : rest.find('\n', a + 1);
        if (b == std::string_view::npos) return 0;
        token = base64url_encode(as_bytes(rest.substr(0, a))) + "." +
                base64url_encode(as_bytes(rest.substr(a + 1, b - a - 1))) + "." +
                base64url_encode(as_bytes(rest.substr(b + 1)));
    } else {
        token = std::string(rest);
    }

    VerifyOptions options;
    options.issuer = "https://idp.example.com";
    options.audience = {"glassgate", "glassgate-ssh"};
    options.client_id = "glassgate";
    if ((flags & 8u) != 0) {
        options.require_azp_match = false;
        options.username_claim = "email";
    }
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
    TrustAll trust;
    SignatureCache cache(8);
    SignatureMemo* memo = (flags & 1u) != 0 ? static_cast<SignatureMemo*>(&trust) : &cache;
    const auto& set = keys((flags & 2u) != 0);

    auto r = verify_jwt(token, set, options, now, memo);
    GG_FUZZ_CHECK(r.ok() == r.identity.has_value());
    if (r.ok()) {
        GG_FUZZ_CHECK(!r.identity->username.empty() && !has_control(r.identity->username));
        GG_FUZZ_CHECK(r.identity->issuer == options.issuer);
        for (const auto& g : r.identity->groups) GG_FUZZ_CHECK(!has_control(g));
        GG_FUZZ_CHECK(r.identity->expires + options.skew > now);
    } else {
        GG_FUZZ_CHECK(!r.reason.empty());
        GG_FUZZ_CHECK(!public_message(r.error).empty() && !to_string(r.error).empty());
    }
    // A cache filled by the first call gives the same answer the second time.
    if (memo == &cache) {
        auto again = verify_jwt(token, set, options, now, &cache);
        GG_FUZZ_CHECK(again.error == r.error);
    }
    return 0;
}
