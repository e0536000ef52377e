#include <doctest/doctest.h>

#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/text.hpp"
#include "../base64_vectors.hpp"

#include <chrono>
#include <string>

using namespace gg;
using namespace gg::oidc;

TEST_SUITE_BEGIN("oidc");

TEST_CASE("base64url: RFC 4648 test vectors, unpadded, URL alphabet") {
    // RFC 4648 section 10 with padding removed.
    const test::Base64Vector vectors[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
    };
    test::check_base64_vectors(vectors, [](ByteView b) { return base64url_encode(b); },
                               [](std::string_view s) { return base64url_decode(s); });
    const Bytes high = {std::byte{0xFB}, std::byte{0xFF}, std::byte{0xBF}};
    CHECK(base64url_encode(high) == "-_-_");
    CHECK(base64url_decode("-_-_").value() == high);
}

TEST_CASE("base64url: round trip of every length and byte value") {
    Bytes data;
    for (int i = 0; i < 300; ++i) {
        auto enc = base64url_encode(data);
        auto dec = base64url_decode(enc);
        REQUIRE(dec.has_value());
        CHECK(*dec == data);
        data.push_back(static_cast<std::byte>((i * 37 + 11) & 0xFF));
    }
}

TEST_CASE("base64url: strict refusals") {
    const std::string_view refused[] = {
        "Zg==",      // padding
        "Zm8=",      // padding
        "Z",         // length 1 mod 4 carries no whole byte
        "Zm9vY",     // same
        "Zm9v+g",    // '+' is standard base64, not base64url
        "Zm9v/g",    // '/'
        "Zm 9v",     // whitespace
        "Zm9v\n",    // newline
        "Zh",        // non-zero trailing bits ("Zg" is the canonical form of "f")
        "Zm9",       // non-zero trailing bits ("Zm8" is canonical for "fo")
        std::string_view("Zm\0v", 4),
    };
    for (auto s : refused) {
        CAPTURE(s);
        CHECK_FALSE(base64url_decode(s).has_value());
    }
}

TEST_CASE("printable escapes and truncates") {
    CHECK(printable("abc") == "abc");
    CHECK(printable("a\"b\\c") == "a\\x22b\\x5cc");
    CHECK(printable(std::string_view("\x00\n\x7f\xff", 4)) == "\\x00\\x0a\\x7f\\xff");
    CHECK(printable(std::string(100, 'k')) == std::string(64, 'k') + "...");
    CHECK(printable("abcdef", 3) == "abc...");
}

TEST_SUITE_END();
