#pragma once
// Planning the rewrite of an OpenSSH authorized_keys file for backend key rotation, independent of
// how the file is read and written (proxy/ssh/ssh_rotator does that over an SSH exec channel).
//
// Lines are kept byte for byte (options, comments, blank lines, CRLF endings, a missing final
// newline); only whole lines are added or removed. A line "holds" a key when, after optional
// options (which may contain quoted spaces), its key type and base64 fields equal the key's.

#include <string>
#include <string_view>

#include "glassgate/protocols/ssh/decisions.hpp"

namespace gg::ssh {

/// True if some line of `text` holds `key`.
[[nodiscard]] bool authorized_keys_has(std::string_view text, const PublicKeyLine& key);

/// `text` with "<type> <base64> <comment>\n" appended, unless a line already holds `key` (then `text`
/// unchanged). A missing final newline is added before the new line. `comment` is used only if it
/// is a single word of printable ASCII; otherwise the line gets no comment.
[[nodiscard]] std::string authorized_keys_with(std::string_view text, const PublicKeyLine& key,
                                               std::string_view comment);

/// `text` without the lines that hold `key`; every other byte unchanged.
[[nodiscard]] std::string authorized_keys_without(std::string_view text, const PublicKeyLine& key);

}  // namespace gg::ssh
