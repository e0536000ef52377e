#pragma once
// Standard base64 (RFC 4648 section 4, with padding), as SCRAM (RFC 5802) uses it.

#include <optional>
#include <string>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"

namespace gg::pg {

std::string base64_encode(ByteView b);
/// Strict: length a multiple of 4, '=' only as 1 or 2 final padding characters, no whitespace,
/// unused bits zero (the canonical encoding). std::nullopt otherwise.
std::optional<Bytes> base64_decode(std::string_view s);

}  // namespace gg::pg
