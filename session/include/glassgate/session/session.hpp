#pragma once
// The session model and its lifecycle state machine. Pure: every transition takes the time as a
// parameter; nothing here reads a clock or touches storage.
//
//   authenticating --authorize()--> connecting --activate()--> active --begin_close()--> closing --finish()--> closed
//   any state but closed --fail()--> closed (close_reason set: refusals, errors)
//
// A session is stored in the sessions index at every transition (proxy/ does that), so a crash
// leaves a record whose state says how far it got.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

namespace gg::session {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::time_point<Clock, std::chrono::microseconds>;

enum class Protocol : std::uint8_t { postgres, ssh };
enum class AuthMethod : std::uint8_t { none, sso, breakglass };
enum class State : std::uint8_t { authenticating, connecting, active, closing, closed };

/// Why a session ended. Stored as text in the index and the audit log.
enum class CloseReason : std::uint8_t {
    none,               ///< not closed yet
    client_disconnect,  ///< the client ended the session
    backend_disconnect, ///< the backend ended it
    time_cap,           ///< deadline reached
    idle_timeout,
    auth_failed,
    denied,             ///< policy refused
    backend_error,      ///< could not connect/authenticate to the backend
    recording_failed,   ///< recording could not be written: ended fail-closed
    protocol_error,     ///< malformed input from either side
    shutdown,           ///< the proxy is stopping
    admin_kill,         ///< ended by an operator
    internal_error,
    proxy_restarted,    ///< the proxy stopped (crash, kill -9, power loss) while the session was open; found
                        ///< open in the index when it started again. The recording is authenticated up to its
                        ///< last checkpoint (at most the writer's flush interval before the stop).
};

std::string_view to_string(Protocol) noexcept;
std::string_view to_string(AuthMethod) noexcept;
std::string_view to_string(State) noexcept;
std::string_view to_string(CloseReason) noexcept;
std::optional<Protocol> protocol_from_string(std::string_view) noexcept;
std::optional<AuthMethod> auth_method_from_string(std::string_view) noexcept;
std::optional<State> state_from_string(std::string_view) noexcept;
std::optional<CloseReason> close_reason_from_string(std::string_view) noexcept;

/// A new session id: 26 characters, time-ordered (48-bit ms time + 80 random bits, Crockford base32),
/// so lexical order is start order. `random10` must be 10 random bytes.
std::string make_session_id(TimePoint now, const std::uint8_t (&random10)[10]);
/// True if `id` has the shape make_session_id produces (safe to use in a file name).
bool is_valid_session_id(std::string_view id) noexcept;

/// Everything the index keeps about a session.
struct SessionRecord {
    std::string id;
    Protocol protocol = Protocol::postgres;
    std::string identity;          ///< SSO identity or break-glass account; empty before authentication
    AuthMethod auth = AuthMethod::none;
    std::string target;
    std::string client_address;    ///< "ip:port"
    std::string reason;            ///< stated reason (break-glass), may be empty
    State state = State::authenticating;
    TimePoint started{};
    std::optional<TimePoint> deadline;
    std::optional<TimePoint> ended;
    std::uint64_t bytes_client_to_server = 0;
    std::uint64_t bytes_server_to_client = 0;
    CloseReason close_reason = CloseReason::none;
    std::string close_detail;      ///< human-readable detail of the close reason
    std::string recording;         ///< recording file name relative to state_dir/recordings
    std::optional<std::uint64_t> sealed_events;  ///< from the recording's seal (truncation check)
    std::string sealed_chain_hash;               ///< hex, from the seal
    std::string instance;          ///< the glassgate instance carrying the session ([server] instance)
};

boost::json::object to_json(const SessionRecord&);

/// Outcome of a transition attempt: ok, or the reason it is not allowed from the current state.
struct Transition {
    bool ok = true;
    std::string error;
    explicit operator bool() const noexcept { return ok; }
};

/// The lifecycle of one session. Owned by one strand; not thread-safe.
class Session {
public:
    Session(std::string id, Protocol protocol, std::string client_address, TimePoint now);

    /// Identity verified and policy allowed: records who, how, where; sets the deadline if capped.
    Transition authorize(std::string identity, AuthMethod method, std::string target,
                         std::optional<std::chrono::microseconds> max_session, std::string reason);
    /// Backend connected and authenticated: the relay starts.
    Transition activate();
    /// Starts an orderly close (the relay is winding down).
    Transition begin_close(CloseReason why, std::string detail);
    /// The session is over: end time fixed. Valid from `closing` only.
    Transition finish(TimePoint now);
    /// Ends the session from any non-closed state at once (refusals, errors).
    Transition fail(CloseReason why, std::string detail, TimePoint now);

    void add_bytes(std::uint64_t client_to_server, std::uint64_t server_to_client) noexcept;
    void set_recording(std::string file) { rec_.recording = std::move(file); }
    void set_instance(std::string instance) { rec_.instance = std::move(instance); }
    void set_seal(std::uint64_t events, std::string chain_hash);

    /// Time left before the deadline (zero when passed); std::nullopt without a cap.
    [[nodiscard]] std::optional<std::chrono::microseconds> remaining(TimePoint now) const noexcept;
    [[nodiscard]] const SessionRecord& record() const noexcept { return rec_; }
    [[nodiscard]] State state() const noexcept { return rec_.state; }
    [[nodiscard]] const std::string& id() const noexcept { return rec_.id; }

private:
    Transition move(State from, State to);
    SessionRecord rec_;
};

}  // namespace gg::session
