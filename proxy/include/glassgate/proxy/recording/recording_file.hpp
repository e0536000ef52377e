#pragma once
// Reading a recording file from disk into a RecordingReader, in 1 MiB chunks: a recording of a bulk
// session (record_copy = "full") can be far larger than memory should hold. Used by verify (by
// session or by path), the restart's check of interrupted sessions, and the key CLI.

#include <filesystem>
#include <functional>
#include <istream>
#include <string>
#include <string_view>

#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/recording.hpp"
#include "glassgate/session/session.hpp"

namespace gg::proxy {

/// Feeds everything `in` holds to `reader`; false when reading failed (the stream went bad).
bool feed_recording(session::RecordingReader& reader, std::istream& in);

/// Where read_session_recording() found a recording.
struct RecordingSource {
    std::string where;        ///< the file's path, or "the state store (N bytes shipped, complete|incomplete)"
    bool from_store = false;
    bool complete = true;     ///< from the store: whether the whole file was shipped
};

/// Reads the recording of `rec` in order, calling `sink` with at most 1 MiB at a time: the local file
/// under `recordings_dir` when this machine has it (at least as much of it as the store), else the
/// chunks shipped into the shared store (each checked against its SHA-256), so any instance can read
/// any session's recording. Throws OperationalError when neither has it or a read fails.
RecordingSource read_session_recording(const std::filesystem::path& recordings_dir, StateStore& store,
                                       const session::SessionRecord& rec,
                                       const std::function<void(std::string_view)>& sink);

}  // namespace gg::proxy
