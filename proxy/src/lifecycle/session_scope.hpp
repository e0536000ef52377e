#pragma once
// Private to proxy/: the part of a proxied session that is the same for every protocol — the
// sessions index row, the recording (opened before the backend is contacted: fail closed), audit
// events, the active-sessions gauge, and the close (recording sealed on the blocking pool, never on
// an io thread; index, audit session.end, metrics).
//
// Store writes of the session's lifecycle (index row + session.start, the row turning active, the
// seal + row + session.end) run in order on a strand of the blocking pool, not on the io thread: a
// SQLite commit costs more than the rest of a connection's start. audit() writes at once when
// nothing of the session is queued there, else it queues behind it, so the audit chain keeps the
// session's order; close() returns after every queued write is done.
//
// Owned by one connection strand; not thread-safe.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "glassgate/proxy/cluster/recording_shipper.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/recording/recording_writer.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/recording.hpp"
#include "glassgate/session/session.hpp"

namespace gg::proxy {

/// Who and what an audit event is about (the time is taken when it is written).
struct AuditSubject {
    std::string session_id;
    std::string identity;
    std::string target;
    std::string source;
};
/// Appends one audit event now. A store failure is logged, never thrown: being unable to describe a
/// session must not crash the connection that is being described.
void write_audit(StateStore& store, const AuditSubject& who, std::string type, std::string outcome, std::string reason,
                 boost::json::object details = {});
/// The audit event write_audit appends, stamped now.
session::AuditEvent make_audit_event(const AuditSubject& who, std::string type, std::string outcome, std::string reason,
                                     boost::json::object details = {});

struct SessionDeps {
    StateStore& store;
    RecordingService& recordings;
    Metrics& metrics;
    std::atomic<std::uint64_t>& active_sessions;
    boost::asio::thread_pool& blocking;
    std::string instance;  ///< [server] instance: written into each session's index row
    /// Ships recordings into a shared store (nullptr: the embedded store, nothing to ship).
    cluster::RecordingShipper* shipper = nullptr;
};

class SessionScope {
public:
    SessionScope(SessionDeps deps, session::Protocol protocol, std::string peer)
        : deps_(deps), protocol_(protocol), peer_(std::move(peer)), writes_(boost::asio::make_strand(deps.blocking)) {}

    struct Open {
        std::string identity;
        session::AuthMethod method = session::AuthMethod::sso;
        std::string auth_detail;                          ///< "token", "device", "sso-cache", ...
        std::string target;
        std::optional<std::chrono::microseconds> cap;     ///< session time cap
        std::string reason;                               ///< break-glass reason
        boost::json::object extra;                        ///< recording header extras
        boost::json::object audit_details;                ///< more details for the session.start audit event
    };
    /// Creates the session, its index row and its recording, and audits session.start. Returns
    /// false when the recording cannot be opened: the session is then failed, saved and audited,
    /// and must be refused.
    bool open(const Open& o);
    /// The session id, chosen now if open() has not run yet (break-glass consumes an account for a
    /// session id before the session opens).
    const std::string& reserve_id();

    /// Appends one recording event; false when recording failed (the caller must end the session
    /// without forwarding what it could not record).
    bool record(session::EventKind kind, session::Direction dir, ByteView payload);
    bool annotate(std::string_view text) {
        return record(session::EventKind::annotation, session::Direction::none, as_bytes(text));
    }
    /// True when an event of `payload_bytes` can be recorded now without waiting.
    [[nodiscard]] bool has_room(std::size_t payload_bytes) const { return !rec_ || rec_->has_room(payload_bytes); }
    /// Back-pressure: returns once an event of `payload_bytes` fits in the recording buffer (or the
    /// recording failed, which the next record() reports). The caller stops relaying meanwhile.
    boost::asio::awaitable<void> make_room(std::size_t payload_bytes);
    /// Recording bytes not yet taken by the writer thread.
    [[nodiscard]] std::size_t buffered() const { return rec_ ? rec_->buffered_bytes() : 0; }
    [[nodiscard]] std::string recording_failure() const { return rec_ ? rec_->failure() : std::string(); }
    /// True when the recording failed because its storage is full (ENOSPC, EDQUOT): the user is told so.
    [[nodiscard]] bool recording_storage_full() const;

    /// Backend ready: the session becomes active.
    void activate();
    /// An audit event about this session (identity/target/source filled in).
    void audit(std::string type, std::string outcome, std::string reason, boost::json::object details = {});
    /// Ends the session: seals the recording off the io thread, saves the index, audits session.end
    /// and counts glassgate_sessions_total. Idempotent.
    boost::asio::awaitable<void> close(session::CloseReason why, std::string detail, std::uint64_t bytes_in,
                                       std::uint64_t bytes_out);

    [[nodiscard]] bool opened() const noexcept { return session_.has_value(); }
    /// Why the session ended (after close()).
    [[nodiscard]] session::CloseReason close_reason() const { return session_->record().close_reason; }
    [[nodiscard]] const std::string& id() const { return session_->id(); }
    [[nodiscard]] spdlog::logger& log() const { return *log_; }
    /// Microseconds since open (the recording's time base).
    [[nodiscard]] std::uint64_t t_us() const;
    [[nodiscard]] std::chrono::steady_clock::time_point started() const noexcept { return t0_; }

private:
    void save();
    /// Runs `job` on writes_ after the session's earlier queued writes.
    void write_later(std::function<void()> job);
    /// Queues the index row (as it is now) with an audit event, in one store transaction.
    void save_and_audit_later(std::string type, std::string outcome, std::string reason, boost::json::object details);

    SessionDeps deps_;
    session::Protocol protocol_;
    std::string peer_;
    std::string identity_;
    std::string target_;
    std::string method_label_;
    std::string reserved_id_;
    std::optional<session::Session> session_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<RecordingHandle> rec_;
    std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
    boost::asio::strand<boost::asio::thread_pool::executor_type> writes_;
    std::shared_ptr<std::atomic<int>> queued_ = std::make_shared<std::atomic<int>>(0);  ///< jobs on writes_
    bool counted_ = false;
    bool closed_ = false;
};

}  // namespace gg::proxy
