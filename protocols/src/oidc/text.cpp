#include "glassgate/protocols/oidc/text.hpp"

#include <cstdio>

namespace gg::oidc {

std::string printable(std::string_view text, std::size_t max) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    const std::size_t n = text.size() < max ? text.size() : max;
    out.reserve(n + 3);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0x0F]);
        }
    }
    if (text.size() > max) out += "...";
    return out;
}

}  // namespace gg::oidc
