#pragma once
// Renders a recorded PostgreSQL session as a psql-like transcript: time offset, statements (simple
// and extended protocol), parameters, result rows as recorded, command tags, errors and notices,
// COPY traffic, and the proxy's annotations (time-cap warnings, cut rows). Pure.

#include <cstddef>
#include <string>

#include "glassgate/session/recording.hpp"

namespace gg::session {

struct TranscriptOptions {
    bool rows = true;               ///< show recorded result rows
    std::size_t max_value = 200;    ///< longer values are cut with "..."
};

/// The transcript, one line per item, "+SSS.mmms  KIND  text".
std::string render_pg_transcript(const DecodedRecording& rec, const TranscriptOptions& opts = {});

}  // namespace gg::session
