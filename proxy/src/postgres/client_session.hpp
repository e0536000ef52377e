#pragma once
// Private to the PostgreSQL path: one client connection from accept to close. Its parts live in
// their own files:
//   session_start.cpp    run(): negotiate (protocols/postgres/startup.hpp decides, this does the I/O),
//                        open the session, the one exit (FATAL, audit, close)
//   authenticate.cpp     the password packet, SSO (token or device-code sign-in), break-glass
//   session_backend.cpp  the backend leg: stored secret, pool or new connection, the client's
//                        greeting, the relay, keeping the connection for reuse
//   relay.cpp            the two pumps (bulk data: messages relayed and recorded in pieces)
//   record_decisions.cpp what the recording gets of each message (rows, COPY, redaction)
//   watchdog.cpp         the pre-authentication deadline, time-cap warnings and ends, idle timeout

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/postgres/startup.hpp"
#include "glassgate/proxy/postgres/pg_proxy.hpp"
#include "glassgate/session/session.hpp"
#include "glassgate/session/time_cap.hpp"
#include "../lifecycle/session_scope.hpp"
#include "pg_backend.hpp"
#include "pg_conn.hpp"

namespace gg::proxy::postgres {

/// Coroutines this path spawns complete with logging::LogEscaped (ops/logging.hpp).
using logging::LogEscaped;

/// Forwards a client's CancelRequest to the backend of the session it names, if (pid, key) match
/// one (cancel_registry.cpp); anything else is counted, logged and dropped.
asio::awaitable<void> forward_cancel(Services& svc, const std::string& peer, std::int32_t pid, std::uint32_t key);
/// Publishes / withdraws a session's cancel key in the shared store (no-op without cross_instance).
void publish_cancel_key(Services& svc, std::int32_t pid, std::uint32_t key);
void withdraw_cancel_key(Services& svc, std::int32_t pid, std::uint32_t key);

/// Why the start of a session stops short of the relay: what the client is told, and whether it
/// was a refused login (logged and audited as auth.denied).
struct Refusal {
    std::string sqlstate;  ///< FATAL to the client; empty: the connection is closed without a word
    std::string message;
    std::string denied;    ///< a refused login: the reason for the log line and the audit event
};

class ClientSession : public std::enable_shared_from_this<ClientSession> {
public:
    ClientSession(tcp::socket sock, std::shared_ptr<Services> svc);

    /// The whole connection: negotiate, authenticate, open, backend, relay, close.
    asio::awaitable<void> run();

private:
    using Step = std::optional<Refusal>;  ///< nothing: go on with the next step

    // --- the steps of run() (each ends in a Refusal or lets the next one go on) ---------------
    asio::awaitable<Step> negotiate();
    asio::awaitable<Step> authenticate();
    asio::awaitable<Step> authenticate_breakglass(std::string& password);
    asio::awaitable<Step> authenticate_sso(std::string& password);
    asio::awaitable<Step> read_password(std::string& out);
    /// Refuses a new session while recording storage is full or store writes are waiting (53100), or
    /// when the open-file limit is nearly used up (53300).
    Step check_storage();
    Step open_session();
    asio::awaitable<Step> open_backend();
    /// Greets the client, relays to the end, then parks or closes the backend connection.
    asio::awaitable<void> serve();
    /// The one exit: FATAL and audit for a refusal, the client closed, the session closed.
    asio::awaitable<void> finish(const Step& refusal);
    std::optional<Secret> read_secret();

    // --- client I/O before the relay -------------------------------------------------------
    asio::awaitable<bool> fill(std::size_t at_least);
    void consume(std::size_t n);
    asio::awaitable<void> send(const Bytes& b) { (void)co_await write_client(asio::buffer(b)); }
    /// Writes to one leg; the lock orders the pump's writes with the watchdog's and the closer's
    /// (uncontended on the hot path: no suspension, no timer).
    asio::awaitable<boost::system::error_code> write_client(asio::const_buffer b);
    /// Sends a buffer this coroutine owns (for fire-and-forget sends).
    asio::awaitable<void> send_owned(std::shared_ptr<Bytes> b) { co_await send(*b); }

    /// Each pump's read buffer (grown only for a message larger than this).
    static constexpr std::size_t relay_buffer = 64 * 1024;
    /// Messages above this size are relayed in pieces even when the recording keeps them whole.
    static constexpr std::size_t stream_above = 1024 * 1024;
    /// PostgreSQL's own bound for a message (1 GB - 1, PQ_LARGE_MESSAGE_LIMIT).
    static constexpr std::size_t max_message = (std::size_t{1} << 30) - 1;
    /// Consecutive messages of one read are recorded as one event up to this size.
    static constexpr std::size_t record_batch = 256 * 1024;
    /// Writes up to this size try the socket at once, without a coroutine frame per layer.
    static constexpr std::size_t fast_write_max = 256 * 1024;
    // Coroutine parameters are references (callers always co_await at once): GCC 12 destroys
    // temporaries bound to by-value coroutine parameters twice (see http::fetch).
    asio::awaitable<void> fatal(const std::string& sqlstate, const std::string& message, const std::string& detail = {});
    /// Sends a message of glassgate's own between relayed messages; false (nothing sent) while the
    /// client holds part of a message relayed in pieces, or when the write fails.
    asio::awaitable<bool> send_own(const Bytes& b);

    // --- the relay -------------------------------------------------------------------------
    asio::awaitable<void> relay(BackendSession& backend, const config::Target& target);
    void arm_pre_auth_deadline();
    asio::awaitable<void> watch(const config::Target& target, Conn& backend);

    /// One direction of the relay: its read buffer, the message relayed in pieces, the COPY data.
    struct Flow {
        explicit Flow(bool client)
            : from_client(client),
              kind(client ? session::EventKind::pg_frontend : session::EventKind::pg_backend),
              dir(client ? session::Direction::client_to_server : session::Direction::server_to_client) {}
        const bool from_client;
        const session::EventKind kind;
        const session::Direction dir;
        Bytes buf;
        std::size_t len = 0;
        std::size_t need = 0;  ///< size of the partial message at the front, once its header is in
        /// A message larger than whole_max_: relayed and recorded piece by piece as it arrives.
        struct Large {
            bool active = false;
            char type = 0;
            std::size_t size = 0;  ///< the whole message on the wire
            std::size_t done = 0;  ///< relayed so far
            std::size_t keep = 0;  ///< bytes of it the recording gets
            std::size_t kept = 0;
            bool summarize = true; ///< pg_large_end at its end (false: a row beyond record_rows, left out)
            bool redacted = false; ///< a Bind whose values are redacted: no bytes, no hash
            bool copy = false;     ///< CopyData: its body counts for the COPY summary
            crypto::Sha256 sha;
        } large;
        /// The CopyData messages since the last other message of this direction (one COPY).
        struct Copy {
            bool active = false;
            std::uint64_t messages = 0;
            std::uint64_t bytes = 0;     ///< payload bytes (message bodies)
            std::uint64_t recorded = 0;  ///< messages recorded (whole, or up to the value cap)
            crypto::Sha256 sha;          ///< of the payloads, in order: the COPY data as a file holds it
        } copy;
        long rows = 0;  ///< DataRows of the current statement (backend)
    };
    /// What the recording gets of one message (decide() also tracks the session state it shows).
    struct Decision {
        bool record = true;
        std::optional<Bytes> replacement;  ///< recorded instead (redacted Bind)
        std::string note;                  ///< an annotation: before the message, or instead of it
        bool note_before = false;
        const char* copy_end = nullptr;    ///< the COPY data before this message ended: "done", "fail", "error"
        bool refuse = false;               ///< COPY BOTH: end the session
        bool redacted = false;             ///< (large Bind) its values are redacted
    };
    asio::awaitable<void> pump(Flow& f, Conn& backend);
    Decision decide(Flow& f, char type, ByteView msg, bool whole);
    asio::awaitable<bool> flush_run(Flow& f, std::size_t& run, std::size_t upto);
    asio::awaitable<bool> stream_large(Flow& f, ByteView chunk);
    /// The pg_copy summary of f's COPY data (resets it).
    std::string copy_summary(Flow& f, std::string_view end);
    /// Records one event, waiting for room in the recording buffer first; false (the session is ended
    /// with a FATAL to the client) when recording failed.
    asio::awaitable<bool> put(session::EventKind kind, session::Direction dir, ByteView payload);
    asio::awaitable<bool> note(const std::string& text) {
        co_return co_await put(session::EventKind::annotation, session::Direction::none, as_bytes(text));
    }
    asio::awaitable<void> recording_failed();

    bool record(session::EventKind kind, session::Direction dir, ByteView payload);
    spdlog::logger& log() { return scope_.log(); }
    bool annotate(const std::string& text) {
        return record(session::EventKind::annotation, session::Direction::none, as_bytes(text));
    }
    /// Ends the relay: the client closed, the backend closed (or, kept for reuse, its read cancelled).
    void end(session::CloseReason why, std::string detail);
    /// The backend is at rest: everything sent was answered, the last ReadyForQuery said idle (no
    /// transaction), no extended-protocol messages wait for a Sync, and the backend pump is waiting
    /// for input with nothing half-read.
    [[nodiscard]] bool backend_at_rest() const {
        return outstanding_ == 0 && !extended_open_ && backend_status_ == 'I' && backend_waiting_ && !backend_partial_;
    }
    void audit(std::string type, std::string outcome, std::string reason, boost::json::object details = {}) {
        write_audit(svc_->store, {scope_.opened() ? scope_.id() : std::string(), identity_, target_name_, peer_},
                    std::move(type), std::move(outcome), std::move(reason), std::move(details));
    }

    std::shared_ptr<Services> svc_;
    asio::any_io_executor ex_;
    Conn client_;
    Conn* backend_ = nullptr;
    AsyncLock client_lock_;
    AsyncLock backend_lock_;
    asio::steady_timer watchdog_;
    std::string peer_;
    SessionScope scope_;  ///< index row, recording, audit, close
    Bytes buf_;
    std::size_t len_ = 0;

    // The login (from the startup packet and the authentication).
    std::string user_;
    std::string identity_;
    std::string target_name_;
    const config::Target* target_ = nullptr;
    std::string database_;                   ///< on the backend
    std::optional<std::string> login_reason_;  ///< glassgate.reason from the startup's options
    pg::StartupParams forward_;              ///< startup parameters for the backend
    std::string auth_method_ = "token";      ///< "token", "device" or "breakglass"
    bool sent_auth_ok_ = false;              ///< the device-code sign-in sent AuthenticationOk already

    std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
    bool ended_ = false;
    session::CloseReason reason_ = session::CloseReason::none;
    std::string detail_;
    std::uint64_t c2s_ = 0, s2c_ = 0;
    // The time cap and where it comes from (the target's, or a break-glass rule's capped by the target's).
    session::TimeLimits limits_;
    std::string cap_source_;
    std::optional<breakglass::Grant> grant_;  ///< the consumed emergency account, for break-glass sessions
    // Bind redaction (the target's redact_params / redact_params_for).
    bool redact_all_ = false;
    std::vector<std::regex> redact_for_;
    std::unordered_map<std::string, bool> redacted_statements_;  ///< prepared statement -> its Binds are redacted
    // Backend reuse (the target's pool_size): whether this session may leave its backend connection,
    // and the state that tells whether it is at rest.
    std::optional<BackendSession> backend_leg_;       ///< the backend connection, once open
    std::string pool_key_;                            ///< what a reused connection must match
    bool reused_ = false;                             ///< backend_leg_ came from the pool
    bool poolable_ = false;
    bool keep_backend_ = false;                       ///< the session ended at rest: reset and park it
    BackendSession* backend_session_ = nullptr;       ///< its parameters follow ParameterStatus reports
    int outstanding_ = 0;                             ///< Query/Sync/FunctionCall sent, ReadyForQuery not yet seen
    bool extended_open_ = false;                      ///< extended-protocol messages since the last Sync
    char backend_status_ = 'I';                       ///< of the last ReadyForQuery
    bool backend_waiting_ = false;                    ///< the backend pump waits in a read
    bool backend_partial_ = false;                    ///< the backend pump holds part of a message
    // The relay (see pump()).
    Flow c2s_flow_{true};
    Flow s2c_flow_{false};
    int record_rows_ = 100;
    bool record_copy_full_ = false;
    std::size_t value_cap_ = 64 * 1024;   ///< the target's record_value_bytes (no cap: SIZE_MAX)
    std::size_t whole_max_ = 64 * 1024;   ///< larger messages are relayed in pieces
    bool client_mid_message_ = false;     ///< part of a message went to the client, the rest has not
    bool backend_mid_message_ = false;    ///< the same towards the backend

    enum class Redaction { as_is, replaced, dropped };
    /// What the recording gets for a client message under the target's redaction rules; `out` holds
    /// the replacement. Parse and Close maintain which statements are redacted.
    Redaction redact(char type, ByteView whole, Bytes& out);
};

}  // namespace gg::proxy::postgres
