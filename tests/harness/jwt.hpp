// Reads (does not verify) a compact JWS such as an ID token, so tests can check what a peer issued.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gg::harness {

/// base64url without padding (RFC 4648 section 5) to bytes; empty on invalid input.
[[nodiscard]] std::optional<std::string> base64url_decode(std::string_view text);

struct JwtParts {
    std::string header{};   ///< decoded JSON text of the protected header
    std::string payload{};  ///< decoded JSON text of the claims
    std::string signature{};///< raw signature bytes
};

/// Splits "h.p.s" and decodes the three parts; empty if it is not three valid base64url parts.
[[nodiscard]] std::optional<JwtParts> decode_jwt(std::string_view token);

}  // namespace gg::harness
