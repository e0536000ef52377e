#pragma once
// Helpers shared by the PostgreSQL codec tests: byte tables from integers or strings with NULs, and
// tables of inputs a parser must refuse. `using namespace gg::pg::test;` is the one using-directive a
// test file here needs: it also brings gg, gg::pg and the string_view literals ("...\0..."sv).

#include <doctest/doctest.h>

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/error.hpp"

namespace gg::pg::test {

using namespace gg;
using namespace gg::pg;
using namespace std::string_view_literals;

/// Bytes from a list of small integers: bytes({0x00, 0x04, 0xd2}).
inline Bytes bytes(std::initializer_list<int> v) {
    Bytes out;
    out.reserve(v.size());
    for (int b : v) out.push_back(static_cast<std::byte>(b));
    return out;
}

/// Concatenation of byte ranges and strings (string_view literals keep their embedded NULs).
inline void append(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }
inline void append(Bytes& out, std::string_view s) { append(out, as_bytes(s)); }
inline void append(Bytes& out, const Bytes& b) { append(out, ByteView(b)); }
template <typename... Parts>
Bytes cat(const Parts&... parts) {
    Bytes out;
    (append(out, parts), ...);
    return out;
}

/// A named input that a decoder or view must refuse with `code`.
struct BadInput {
    const char* name;
    Bytes input;
    errc code;
};

/// Feeds each case to `parse` (ByteView -> Result<T>): each must fail, with its case's code.
template <typename Parse>
void check_refused(std::span<const BadInput> cases, Parse parse) {
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto r = parse(ByteView(c.input));
        REQUIRE(r.has_error());
        CHECK(r.error().code == c.code);
    }
}

}  // namespace gg::pg::test
