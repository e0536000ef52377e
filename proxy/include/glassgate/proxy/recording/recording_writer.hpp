#pragma once
// The I/O side of session recording: one append-only file per session (<dir>/<session-id>.ggrec, the
// format is session/recording.hpp and docs/recording-format.md) and ONE writer thread for all sessions.
//
//   session strand --append()--> per-session bounded buffer (mutex + memcpy, never disk I/O)
//   writer thread, at least every flush_interval (<= 200 ms) and early when a buffer is 1/4 full:
//     swap the buffer out -> encode (CRC, SHA-256 chain) -> checkpoint (HMAC, Ed25519) -> one write(2)
//     -> fdatasync at most every sync_interval per file, and always at seal
//
// The hash chain and checkpoints are computed on the writer thread, so callers pay only a memcpy.
// Back-pressure: a producer asks has_room() before it appends and waits (it stops reading its
// peers) while the writer is behind; the buffer bound is never a reason to end a session.
// Fail closed: when the file cannot be written (or a producer appends without room), append()
// returns false from then on and the on_failure callback fires once (from the writer thread); the
// session must end.
// After a crash (kill -9, power loss) a file reads up to its last complete event, authenticated up
// to its last checkpoint (at most about flush_interval behind), and shows as not sealed.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/session/recording.hpp"

namespace gg::proxy {

namespace detail {
struct RecordingCore;
struct RecordingFile;
}  // namespace detail

struct RecordingOptions {
    /// Longest time an appended event waits in memory. Must be in (0, 200 ms].
    std::chrono::milliseconds flush_interval{200};
    /// Bound on the event bytes queued per session (payload + 14 bytes per event). Producers wait for
    /// room (has_room) instead of exceeding it; an event larger than the bound is taken alone, when
    /// the queue is empty (events are at most session::recording_max_payload). At least 4096.
    std::size_t buffer_bytes = 4u * 1024u * 1024u;
    /// Least time between two checkpoints of one file; 0 = a checkpoint after every flush that wrote
    /// events (the default: at most flush_interval of a crashed file is unauthenticated).
    std::chrono::milliseconds checkpoint_interval{0};
    /// Least time between two fdatasync calls on one file (the seal is always synced). Never per event.
    std::chrono::milliseconds sync_interval{1000};
    /// Ed25519 private key (32-byte seed, StateDir::signing_seed()): every checkpoint and seal is also
    /// signed (format version 2), so recordings verify by public key. Empty: unsigned version 1 files.
    /// The service keeps one copy (wiped on destruction) and clears this one.
    std::vector<std::byte> signing_seed;
};

class RecordingHandle;

/// Owns the recordings directory and the writer thread. Thread-safe.
class RecordingService {
public:
    using Options = RecordingOptions;

    /// Creates `dir` (0700) if missing. The key authenticates checkpoints (wiped on destruction).
    /// Throws std::system_error (naming the path) if the directory cannot be created or opened, and
    /// std::invalid_argument for options out of range (a signing_seed that is neither empty nor 32 bytes).
    RecordingService(std::filesystem::path dir, std::vector<std::byte> hmac_key, Options opts = {});
    /// Flushes every open file (checkpoint + fdatasync, no seal: a session still open at shutdown shows
    /// as not sealed), closes them and joins the writer. Handles outliving the service refuse appends.
    ~RecordingService();
    RecordingService(const RecordingService&) = delete;
    RecordingService& operator=(const RecordingService&) = delete;

    /// Creates <dir>/<session-id>.ggrec with O_CREAT|O_EXCL|O_APPEND, mode 0600, and writes the file
    /// header and header record before returning. Throws std::system_error whose message names the path
    /// if the id is not a safe file name ([A-Za-z0-9._-], 1-200 characters, not starting with '.'), the
    /// file exists (symlinks included: O_EXCL never follows them) or cannot be created or written; the
    /// caller then refuses the session (fail closed).
    std::shared_ptr<RecordingHandle> open(const session::RecordingHeader& header);

    [[nodiscard]] const std::filesystem::path& directory() const noexcept;
    /// Where the recording of `session_id` lives.
    [[nodiscard]] std::filesystem::path path_for(std::string_view session_id) const;

    struct Stats {
        std::uint64_t open_files = 0;
        std::uint64_t bytes_written = 0;
        std::uint64_t events_written = 0;
        std::uint64_t syncs = 0;
        std::uint64_t failures = 0;  ///< files that failed (buffer full or disk error)
    };
    [[nodiscard]] Stats stats() const;

private:
    std::shared_ptr<detail::RecordingCore> core_;
};

/// One session's recording. Thread-safe: append() may be called from several threads; events land in
/// the order their append() calls took the handle's mutex. Destroying a handle without close() flushes
/// what was appended (checkpointed, synced) but leaves the file unsealed, which marks an abnormal end.
class RecordingHandle {
public:
    ~RecordingHandle();
    RecordingHandle(const RecordingHandle&) = delete;
    RecordingHandle& operator=(const RecordingHandle&) = delete;

    /// Queues one event (payload copied). Returns false, and from then on always false, if the event
    /// does not fit (has_room was false: the caller did not wait), the file has hit a write error, or
    /// the handle is closed: the caller MUST end the session without forwarding the event. Never
    /// blocks on disk I/O.
    /// Throws std::invalid_argument for header/checkpoint/seal (reserved kinds) or an invalid direction.
    bool append(session::EventKind kind, session::Direction direction, ByteView payload, std::uint64_t t_us);

    /// True when an event of `payload_bytes` can be appended now (or when appending is pointless:
    /// failed or closed, so that a waiting producer stops waiting and learns it from append()).
    [[nodiscard]] bool has_room(std::size_t payload_bytes) const;
    [[nodiscard]] bool failed() const;
    /// Why the recording failed, e.g. "write /var/rec/x.ggrec: No space left on device"; "" if it has not.
    [[nodiscard]] std::string failure() const;
    /// Invoked once, from the writer thread, on the first failure (also if it happened before this call).
    /// Must not call close() (it would wait for the thread running it); post to the session instead.
    void set_on_failure(std::function<void(std::string)> callback);
    /// Bytes queued and not yet taken by the writer (callers may use it to slow a fast producer down).
    [[nodiscard]] std::size_t buffered_bytes() const;

    struct SealInfo {
        std::uint64_t events = 0;    ///< data events in the file
        std::string chain_hash_hex;  ///< the chain hash the seal authenticates; store both in the sessions index
        bool ok = false;             ///< the seal is written and synced: the file is complete
        std::string error;           ///< why not, when !ok
    };
    /// Writes the remaining events and the seal, fdatasyncs and closes the file; blocks until the writer
    /// has done so (call it off the session's hot path, never from the failure callback). After a buffer
    /// overflow the file is still sealed (ok, with failed() true); after a write error it is not.
    /// Idempotent: later calls return the same result.
    SealInfo close(std::uint64_t t_us);

    [[nodiscard]] std::filesystem::path path() const;

private:
    friend class RecordingService;
    RecordingHandle(std::shared_ptr<detail::RecordingCore> core, std::shared_ptr<detail::RecordingFile> file);

    std::shared_ptr<detail::RecordingCore> core_;
    std::shared_ptr<detail::RecordingFile> file_;
};

}  // namespace gg::proxy
