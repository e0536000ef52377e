#pragma once
// base64url without padding (RFC 4648 section 5, as used by JWS/JWK: RFC 7515 section 2).
// Strict: padding '=', whitespace, characters outside [A-Za-z0-9_-], a length of 1 mod 4 and
// non-zero unused trailing bits are all refused, so every byte string has exactly one accepted
// encoding (a token cannot be altered without changing its signed text).

#include <optional>
#include <string>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"

namespace gg::oidc {

/// Decodes; std::nullopt on any of the refusals listed above.
[[nodiscard]] std::optional<Bytes> base64url_decode(std::string_view text);

/// Encodes without padding.
[[nodiscard]] std::string base64url_encode(ByteView data);

}  // namespace gg::oidc
