#pragma once
// Export of a decoded terminal recording as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/),
// so `asciinema play` / `asciinema cat` replay it. Pure: string in, string out.
//
//   line 1: {"version":2,"width":W,"height":H,"timestamp":<start unix seconds>,"title":"..."}
//   then:   [<seconds with 6 decimals>, "o" | "i" | "r", "<data>"]      one JSON array per line
//
// Mapping: term_output and term_stderr -> "o", term_input -> "i", resize -> "r" ("COLSxROWS").
// W x H comes from the first resize event (80x24 when there is none). Other kinds are not exported.
// Terminal bytes are decoded as UTF-8 per stream; a multi-byte character split across events is
// joined, and every ill-formed sequence becomes U+FFFD (one per maximal ill-formed subpart, as the
// Unicode standard recommends), so each line is valid JSON in valid UTF-8.

#include <string>
#include <string_view>

#include "glassgate/session/recording.hpp"

namespace gg::session {

/// The whole asciicast v2 document, lines separated by '\n' (a trailing '\n' after the last line).
/// Exports whatever events `rec` holds; check rec.report before trusting them.
std::string to_asciicast_v2(const DecodedRecording& rec);

/// Decodes `bytes` as UTF-8, replacing ill-formed sequences with U+FFFD. Exposed for tests.
std::string sanitize_utf8(std::string_view bytes);

/// `s` as a JSON string literal (quotes included). `s` must be valid UTF-8.
std::string json_quote(std::string_view s);

}  // namespace gg::session
