#pragma once
// Text helpers for the reasons the OIDC layer writes into logs and audit records. Values that come
// from a token or a remote document (kid, issuer, error codes) pass through printable() so that a
// hostile value cannot forge log lines, break quoting, or flood a record.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "glassgate/protocols/text.hpp"

namespace gg::oidc {

/// Copies at most `max` bytes of `text`; printable ASCII stays as is, anything else (control bytes,
/// bytes >= 0x7F, '"' and '\\') becomes \xNN. When input was cut, "..." is appended.
[[nodiscard]] std::string printable(std::string_view text, std::size_t max = 64);

/// UTC times: gg::format_utc (glassgate/protocols/text.hpp).
using gg::format_utc;

}  // namespace gg::oidc
