#pragma once
// Helpers shared by the PostgreSQL codec tests: byte tables from integers or strings with NULs.

#include <cstddef>
#include <initializer_list>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"

namespace gg::pg::test {

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

}  // namespace gg::pg::test
