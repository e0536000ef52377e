#include <doctest/doctest.h>

#include "glassgate/protocols/bytes.hpp"

using namespace gg;

TEST_SUITE_BEGIN("bytes");

TEST_CASE("ByteWriter writes big-endian and ByteReader reads it back") {
    ByteWriter w;
    w.u8(0x01);
    w.u16(0x0203);
    w.u32(0x04050607);
    w.u64(0x08090A0B0C0D0E0Full);
    w.cstring("hi");
    const auto& b = w.data();
    REQUIRE(b.size() == 1 + 2 + 4 + 8 + 3);
    CHECK(to_hex(b) == "0102030405060708090a0b0c0d0e0f686900");

    ByteReader r(b);
    CHECK(r.u8().value() == 0x01);
    CHECK(r.u16().value() == 0x0203);
    CHECK(r.u32().value() == 0x04050607u);
    CHECK(r.u64().value() == 0x08090A0B0C0D0E0Full);
    CHECK(r.cstring().value() == "hi");
    CHECK(r.remaining() == 0);
    CHECK(r.ok());
}

TEST_CASE("ByteReader fails on every short read and stays failed") {
    const Bytes b = {std::byte{0x00}, std::byte{0x01}, std::byte{0x02}};
    ByteReader r(b);
    CHECK_FALSE(r.u32().has_value());
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.u8().has_value());  // sticky failure
    ByteReader r2(b);
    CHECK(r2.cstring().value().empty());  // first byte is NUL: empty string
    ByteReader r3(ByteView(b).subspan(1));
    CHECK_FALSE(r3.cstring().has_value());  // no terminator
    ByteReader r4(b);
    CHECK_FALSE(r4.take(4).has_value());
}

TEST_CASE("patch_u32 overwrites a length prefix") {
    ByteWriter w;
    w.u32(0);
    w.str("abc");
    w.patch_u32(0, static_cast<std::uint32_t>(w.size()));
    CHECK(to_hex(w.data()) == "00000007616263");
}

TEST_CASE("hex round trip and rejection") {
    CHECK(to_hex(from_hex("00ffA0").value()) == "00ffa0");
    CHECK_FALSE(from_hex("0").has_value());
    CHECK_FALSE(from_hex("zz").has_value());
    CHECK(from_hex("").value().empty());
}

TEST_SUITE_END();
