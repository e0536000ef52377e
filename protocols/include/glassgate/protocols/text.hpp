#pragma once
// Text helpers every layer shares: one glob matcher (target names and patterns in the config,
// break-glass rule targets, SSH env rules) and one UTC formatter (logs, audit, CLI, reasons).

#include <chrono>
#include <string>
#include <string_view>

namespace gg {

/// Shell-style match of the whole of `text`: '*' any run of characters (also none), '?' exactly
/// one, '[abc]' / '[a-z]' one of a set ('[!..]' or '[^..]' none of it), '\' makes the next
/// character literal. A malformed set ('[' without ']') matches a literal '['. Iterative, no
/// recursion: linear in practice.
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view text) noexcept;

enum class UtcDigits { seconds, microseconds };

/// UTC time as RFC 3339: "2026-11-23T10:00:00Z", or with microseconds "2026-11-23T10:00:00.123456Z".
/// Times before 1970 are formatted too (the fraction is never negative).
[[nodiscard]] std::string format_utc(std::chrono::system_clock::time_point t, UtcDigits digits = UtcDigits::seconds);

}  // namespace gg
