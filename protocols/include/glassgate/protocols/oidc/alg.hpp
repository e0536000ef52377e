#pragma once
// The JWS signature algorithms glassgate accepts (RFC 7518 section 3, RFC 8037 for EdDSA).
// Deliberately absent: "none" (no signature) and HS256/384/512 (a shared secret: an IdP's public key
// must never be usable as an HMAC key, the classic algorithm-confusion attack).

#include <optional>
#include <string_view>

namespace gg::oidc {

enum class JwsAlg { rs256, rs384, rs512, ps256, es256, es384, eddsa };

/// "RS256" -> JwsAlg::rs256 etc. (case-sensitive, as RFC 7515 requires); std::nullopt for anything else.
[[nodiscard]] std::optional<JwsAlg> parse_jws_alg(std::string_view name) noexcept;

/// The registered name, e.g. "PS256".
[[nodiscard]] std::string_view to_string(JwsAlg alg) noexcept;

}  // namespace gg::oidc
