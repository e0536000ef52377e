#pragma once
// Reading a recording file from disk into a RecordingReader, in 1 MiB chunks: a recording of a bulk
// session (record_copy = "full") can be far larger than memory should hold. Used by verify (by
// session or by path), the restart's check of interrupted sessions, and the key CLI.

#include <istream>

#include "glassgate/session/recording.hpp"

namespace gg::proxy {

/// Feeds everything `in` holds to `reader`; false when reading failed (the stream went bad).
bool feed_recording(session::RecordingReader& reader, std::istream& in);

}  // namespace gg::proxy
