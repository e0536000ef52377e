#pragma once
// Text helpers every layer shares: one glob matcher (target names and patterns in the config,
// break-glass rule targets, SSH env rules), one UTC formatter (logs, audit, CLI, reasons) and the
// UTF-8 check that keeps JSON records (audit lines, SFTP events) parseable whatever bytes a peer sent.

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

/// Length of the well-formed UTF-8 sequence at the front of `s` (Unicode 15, table 3-7: no overlong
/// forms, no surrogates, nothing above U+10FFFF), or 0 if it is ill-formed or `s` is empty.
[[nodiscard]] std::size_t utf8_sequence(std::string_view s) noexcept;
/// True iff all of `s` is well-formed UTF-8.
[[nodiscard]] bool is_utf8(std::string_view s) noexcept;
/// `s` with every ill-formed byte replaced by U+FFFD (EF BF BD); `s` itself when it is well-formed.
[[nodiscard]] std::string to_utf8_lossy(std::string_view s);

}  // namespace gg
