#pragma once
// Recordings built in memory for the recording, asciicast and pg_transcript tests.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "glassgate/session/recording.hpp"

namespace gg::session::test {

/// The header of session 01HZY3K6J7V4T1X9Q2M8N5B0CD: `identity` on `target` over `protocol`.
inline RecordingHeader header(std::string protocol, std::string target, std::string identity,
                              std::int64_t started_unix_us) {
    RecordingHeader h;
    h.session_id = "01HZY3K6J7V4T1X9Q2M8N5B0CD";
    h.protocol = std::move(protocol);
    h.target = std::move(target);
    h.identity = std::move(identity);
    h.started_unix_us = started_unix_us;
    return h;
}

/// A recording as a reader hands it to the renderers: `header` and `events` (report left default).
inline DecodedRecording decoded(RecordingHeader header, std::vector<Event> events) {
    DecodedRecording rec;
    rec.header = std::move(header);
    rec.events = std::move(events);
    return rec;
}

}  // namespace gg::session::test
