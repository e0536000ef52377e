#pragma once
// The state store: sessions index, audit chain, secrets, and (later) break-glass account states,
// rotation jobs and the JWKS cache — behind one interface so a shared PostgreSQL store can be
// added for multi-instance deployments without touching callers.
//
// Every method is thread-safe and may block briefly on storage; call it off latency-critical
// paths where possible. Failures throw StoreError with a message that names the store and the
// operation; callers on security paths treat a failure as a denial (fail closed).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <filesystem>

#include "glassgate/session/audit_chain.hpp"
#include "glassgate/session/session.hpp"

namespace gg::proxy {

struct StoreError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Writes a store could not take (no space, I/O error) and keeps in memory until it can; see
/// with_write_backlog().
struct StoreBacklogStatus {
    std::size_t queued = 0;            ///< writes waiting, in order (audit events and index rows)
    std::size_t audit_events = 0;      ///< audit events among them
    std::size_t limit = 0;             ///< the bound of the queue (0: this store keeps no backlog)
    std::uint64_t write_failures = 0;  ///< failed write attempts since start (first tries and retries)
    std::uint64_t dropped = 0;         ///< writes lost because the queue was at its bound
    std::string last_error;            ///< the last write failure ("" if none)
};

/// What the store holds of one session's recording (see put_recording_chunk).
struct ShippedRecording {
    std::uint64_t bytes = 0;   ///< contiguous bytes from the start of the file
    std::uint64_t chunks = 0;
    bool complete = false;     ///< the last chunk (with the seal) is stored
};

struct SessionFilter {
    std::optional<std::string> identity;
    std::optional<std::string> target;
    std::optional<session::TimePoint> since;        ///< started at or after
    std::optional<session::AuthMethod> auth;
    std::optional<session::State> state;
    std::optional<std::string> instance;           ///< carried by this instance
    std::size_t limit = 0;                         ///< 0: no limit; newest first when limited
};

class StateStore {
public:
    virtual ~StateStore() = default;

    // --- key/value, grouped in namespaces ("secret", "breakglass", "jwks", ...). Values are bytes.
    virtual std::optional<std::string> get(std::string_view ns, std::string_view key) = 0;
    virtual void put(std::string_view ns, std::string_view key, std::string_view value) = 0;
    virtual bool erase(std::string_view ns, std::string_view key) = 0;
    /// All keys of a namespace with their values, ordered by key.
    virtual std::vector<std::pair<std::string, std::string>> list(std::string_view ns) = 0;
    /// Atomically replaces the value if it currently equals `expected` (std::nullopt: key absent).
    /// `desired` std::nullopt deletes. Returns true if this call made the change. Exactly one of any
    /// number of concurrent callers with the same `expected` wins, across threads and processes.
    virtual bool compare_and_set(std::string_view ns, std::string_view key, const std::optional<std::string>& expected,
                                 const std::optional<std::string>& desired) = 0;

    // --- sessions index
    virtual void save_session(const session::SessionRecord& rec) = 0;  ///< insert or replace by id
    virtual std::optional<session::SessionRecord> find_session(std::string_view id) = 0;
    /// Matching sessions, oldest first (newest `limit` when a limit is set).
    virtual std::vector<session::SessionRecord> list_sessions(const SessionFilter& filter) = 0;

    // --- audit chain (see session/audit_chain.hpp). Appending computes the chain atomically.
    virtual std::uint64_t append_audit(const session::AuditEvent& ev) = 0;  ///< returns the entry's seq
    /// save_session and append_audit in one transaction (both or neither); returns the entry's seq.
    virtual std::uint64_t save_session_and_audit(const session::SessionRecord& rec, const session::AuditEvent& ev) = 0;
    /// Lines with seq >= from_seq, in order; at most `limit` (0: all).
    virtual std::vector<std::string> audit_lines(std::uint64_t from_seq, std::size_t limit) = 0;

        // --- recordings shipped into the store, so every instance can read every session's recording.
    // A recording is shipped as consecutive chunks of its file: chunk k starts where chunk k-1 ends.
    // The store keeps each chunk's SHA-256 and checks it when the chunk is read back.
    /// Stores the chunk of `session_id`'s recording that starts at byte `offset`. `offset` must equal
    /// shipped_recording().bytes (the chunks are contiguous); putting a chunk that is already stored
    /// with the same bytes is a no-op (a retry after a lost reply), with other bytes a StoreError.
    /// `last`: this chunk ends the recording (its seal is in it); no chunk may follow.
    virtual void put_recording_chunk(std::string_view session_id, std::uint64_t offset, std::string_view bytes,
                                     bool last) = 0;
    /// How much of the recording the store holds (contiguous from 0) and whether it is complete.
    virtual ShippedRecording shipped_recording(std::string_view session_id) = 0;
    /// The chunk that starts at `offset` (std::nullopt: none); a StoreError if its SHA-256 does not match.
    virtual std::optional<std::string> recording_chunk(std::string_view session_id, std::uint64_t offset) = 0;

    /// Writes waiting for storage (only a store made by with_write_backlog() keeps any).
    [[nodiscard]] virtual StoreBacklogStatus backlog_status() const { return {}; }
};

/// Appends one audit event; a store failure is logged (naming the event) and returns false, never
/// throws: describing what happened must not break what is happening. The one "log and continue"
/// audit write of the proxy; callers that must not lose an event check the result.
bool append_audit_logged(StateStore& store, const session::AuditEvent& ev) noexcept;

struct StoreBacklogOptions {
    /// Bound of the in-memory queue (audit events and index rows). At the bound a write is dropped,
    /// counted and logged as an error; the proxy refuses new sessions long before (any backlog).
    std::size_t max_entries = 10000;
    /// How often a background thread retries the queue while it is not empty.
    std::chrono::milliseconds retry_interval{500};
};

/// Wraps `inner` for `serve`: the sessions index rows and audit events (save_session, append_audit,
/// save_session_and_audit) that `inner` cannot write — typically because the state directory is full —
/// are not lost but kept, in order, in a bounded in-memory queue, retried every retry_interval and
/// written in that order once the store takes writes again. While the queue is not empty every new
/// write of those kinds goes behind it, so the audit chain keeps the order in which events happened.
/// A queued write returns normally (append_audit returns seq 0). Everything else (key/value,
/// compare-and-set: decisions that must fail closed, and reads) passes straight through. The first
/// failure, the recovery and every drop are logged; backlog_status() feeds the metrics. What is still
/// queued when the wrapper is destroyed is written if possible, else reported in the log as lost.
std::unique_ptr<StateStore> with_write_backlog(std::unique_ptr<StateStore> inner, StoreBacklogOptions options = {});

/// Opens (creating if needed) the embedded SQLite store at `file`. `audit_key` MACs the audit chain;
/// `signing_seed` (StateDir::signing_seed(), empty: none) signs each new audit line with Ed25519.
std::unique_ptr<StateStore> open_sqlite_store(const std::filesystem::path& file, Bytes audit_key,
                                              Bytes signing_seed = {});

/// Connects to the shared PostgreSQL store (`[store] postgres`, a libpq connection string), creating or
/// migrating its schema (versioned; safe when several instances start at once). `audit_key` and
/// `signing_seed` as for open_sqlite_store: every instance of a deployment shares them (one master key).
/// Throws StoreError naming the store (host, database) without the connection string's secrets.
std::unique_ptr<StateStore> open_postgres_store(const std::string& conninfo, Bytes audit_key, Bytes signing_seed = {});

}  // namespace gg::proxy
