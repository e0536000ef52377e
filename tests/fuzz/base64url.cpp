// The strict base64 decoders: base64url without padding (protocols/oidc/base64url.hpp: JWS, JWK) and
// standard base64 (protocols/postgres/base64.hpp: SCRAM). Each byte string has exactly one accepted
// encoding: whatever decodes re-encodes to the same text, and every encoding decodes back.
//   byte 0 : bit 0 standard base64 instead of base64url; rest: the text

#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/postgres/base64.hpp"

using namespace gg;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const auto text = fuzz::text(data + 1, size - 1);
    const auto bytes = fuzz::view(data + 1, size - 1);
    if ((data[0] & 1u) != 0) {
        if (auto d = pg::base64_decode(text)) GG_FUZZ_CHECK(pg::base64_encode(*d) == text);
        auto e = pg::base64_encode(bytes);
        auto back = pg::base64_decode(e);
        GG_FUZZ_CHECK(back.has_value() && as_chars(*back) == text);
    } else {
        if (auto d = oidc::base64url_decode(text)) GG_FUZZ_CHECK(oidc::base64url_encode(*d) == text);
        auto e = oidc::base64url_encode(bytes);
        auto back = oidc::base64url_decode(e);
        GG_FUZZ_CHECK(back.has_value() && as_chars(*back) == text);
    }
    return 0;
}
