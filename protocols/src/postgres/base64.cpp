#include "glassgate/protocols/postgres/base64.hpp"

#include <array>
#include <cstdint>

namespace gg::pg {
namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_table() {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (std::size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
    return t;
}
constexpr auto table = make_table();

}  // namespace

std::string base64_encode(ByteView b) {
    std::string out;
    out.reserve((b.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= b.size(); i += 3) {
        const std::uint32_t v = std::to_integer<std::uint32_t>(b[i]) << 16 | std::to_integer<std::uint32_t>(b[i + 1]) << 8 |
                                std::to_integer<std::uint32_t>(b[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (const std::size_t rest = b.size() - i; rest > 0) {
        std::uint32_t v = std::to_integer<std::uint32_t>(b[i]) << 16;
        if (rest == 2) v |= std::to_integer<std::uint32_t>(b[i + 1]) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<Bytes> base64_decode(std::string_view s) {
    if (s.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    if (!s.empty() && s.back() == '=') pad = (s.size() >= 2 && s[s.size() - 2] == '=') ? 2 : 1;
    Bytes out;
    out.reserve(s.size() / 4 * 3);
    for (std::size_t i = 0; i < s.size(); i += 4) {
        const bool last = i + 4 == s.size();
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char c = s[i + k];
            std::int8_t d = 0;
            if (c == '=') {
                if (!last || k < 4 - pad) return std::nullopt;  // padding only at the very end
            } else {
                d = table[static_cast<unsigned char>(c)];
                if (d < 0) return std::nullopt;
            }
            v = v << 6 | static_cast<std::uint32_t>(d);
        }
        const std::size_t n = last ? 3 - pad : 3;
        if (last && pad > 0 && (v & ((1u << (8 * pad)) - 1)) != 0) return std::nullopt;  // non-canonical
        for (std::size_t k = 0; k < n; ++k) out.push_back(static_cast<std::byte>((v >> (16 - 8 * k)) & 0xFFu));
    }
    return out;
}

}  // namespace gg::pg
