#pragma once
// RFC 4648 test vectors, checked the same way for base64 (postgres/scram_test.cpp) and base64url
// (oidc/base64url_test.cpp).

#include <doctest/doctest.h>

#include <span>
#include <string_view>
#include <utility>

#include "glassgate/protocols/bytes.hpp"

namespace gg::test {

/// Plain text and its encoding.
using Base64Vector = std::pair<std::string_view, std::string_view>;

/// Each plain text encodes to its vector, and the vector decodes to the plain text.
template <typename Encode, typename Decode>
void check_base64_vectors(std::span<const Base64Vector> vectors, Encode encode, Decode decode) {
    for (const auto& v : vectors) {
        const auto plain = v.first;  // not a structured binding: clang < 16 cannot capture those
        const auto enc = v.second;
        CAPTURE(plain);
        CHECK(encode(as_bytes(plain)) == enc);
        auto dec = decode(enc);
        REQUIRE(dec.has_value());
        CHECK(as_chars(*dec) == plain);
    }
}

}  // namespace gg::test
