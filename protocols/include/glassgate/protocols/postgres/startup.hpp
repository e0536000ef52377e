#pragma once
// The start of a client connection up to its login, as a decision machine. Fed the bytes the client
// sent (and what the proxy knows: whether [tls] is configured, whether plaintext is allowed, which
// targets exist), it says what must happen next: read more, answer one byte, run a TLS handshake,
// forward a cancel request, end the connection, refuse the login, or go on with the parsed startup.
// Sans-IO: the caller owns the socket, the buffer and TLS, and does what the actions say.
// https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-START-UP
// https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-SSL
//
//   client                                   glassgate
//   GSSENCRequest (8 bytes)          ->      'N'
//   SSLRequest    (8 bytes)          ->      'S', then a TLS handshake ('N' without [tls])
//   or, as the very first byte, 0x16 ->      TLS handshake (direct TLS), ALPN "postgresql" required
//   ... at most max_rounds of these, then one of:
//   CancelRequest (16 bytes)         ->      forwarded (by the caller) when it matches, then closed
//   StartupMessage                   ->      refused (plaintext, replication, unknown target or
//                                            database), or Proceed: the login goes on
//
// Routing: `database` is a target name, or `target/database` for another database the target lists.
// glassgate's own settings travel in `options` (`-c glassgate.reason=INC-1`, as psql's PGOPTIONS
// sends them) and are taken out; the rest of `options` and the other parameters are forwarded to the
// backend, except `user` and `database` (glassgate's own) and `replication` (refused: a replication
// connection would bypass statement recording).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/frame.hpp"

namespace gg::pg {

/// What the proxy knows that the client's bytes do not say.
struct StartupFacts {
    bool tls_configured = false;     ///< [tls] is set: SSLRequest gets 'S', direct TLS is served
    bool plaintext_allowed = false;  ///< the listener's allow_plaintext: a login without TLS is accepted
};

/// What routing needs of a PostgreSQL target.
struct RouteTarget {
    std::string database;                ///< the target's own database (dbname=target)
    std::vector<std::string> databases;  ///< the others a client may name (dbname=target/db)
};
/// The PostgreSQL target of that name, if the proxy has one (an empty function: none).
using TargetLookup = std::function<std::optional<RouteTarget>(std::string_view name)>;

using StartupParams = std::vector<std::pair<std::string, std::string>>;

// ---- actions -----------------------------------------------------------------------------------
/// More input is needed: at least this many bytes buffered in total; then call next() again.
struct ReadMore {
    std::size_t at_least = 0;
};
/// Write this one byte ('N': no encryption of the kind asked for), then call next() again. A failed
/// write needs no handling of its own: the next read finds the connection dead.
struct Answer {
    char byte = 'N';
};
/// Run the server side of a TLS handshake, then call tls_started() and next(). With answer_s (an
/// SSLRequest) write 'S' first; if that write fails, the connection is over. Without it (direct TLS)
/// the bytes this step consumed are the start of the client's handshake: hand them to it.
struct StartTls {
    bool answer_s = false;
};
/// A CancelRequest: cancel the query of the session whose BackendKeyData the client names, if one
/// matches, then close the connection.
struct ForwardCancel {
    std::int32_t pid = 0;
    std::uint32_t key = 0;
};
/// The connection ends before any login: send a FATAL error with `sqlstate` and `message` unless
/// `sqlstate` is empty, log `log_reason` (a warning) unless it is empty, close. Not audited: nobody
/// has asked to log in yet.
struct Disconnect {
    std::string sqlstate;
    std::string message;
    std::string log_reason;
};
/// The login is refused: audit and log `log_reason` (auth.denied), send FATAL `sqlstate` `message`.
struct Deny {
    std::string sqlstate;
    std::string message;
    std::string log_reason;
    std::string user;    ///< the startup's user
    std::string target;  ///< the target named, empty when refused before routing (plaintext, replication)
};
/// The startup is accepted: authenticate `user` for `target`.
struct Proceed {
    std::string user;
    std::string target;
    std::string database;               ///< on the backend: the target's, or the one after the '/'
    std::optional<std::string> reason;  ///< glassgate.reason from `options` (break-glass)
    StartupParams forward;              ///< for the backend, in the client's order, `options` last
    bool tls = false;                   ///< the connection is encrypted
};
using StartupAction = std::variant<ReadMore, Answer, StartTls, ForwardCancel, Disconnect, Deny, Proceed>;

struct StartupStep {
    StartupAction action;
    std::size_t consumed = 0;  ///< bytes at the front of the input this step used up: drop them
};

/// One client connection's start. Drive it with next() over the bytes buffered so far until it
/// returns ForwardCancel, Disconnect, Deny or Proceed; after that next() returns Disconnect{}.
class StartupNegotiation {
public:
    /// Negotiation requests (SSLRequest, GSSENCRequest, direct TLS) before the startup packet must
    /// come; one more is refused with 08P01 "too many negotiation requests".
    static constexpr int max_rounds = 4;

    StartupNegotiation(StartupFacts facts, TargetLookup targets, Limits limits = {});

    /// What to do with `buffered`, the client's bytes not yet consumed (the caller's buffer).
    [[nodiscard]] StartupStep next(ByteView buffered);
    /// The handshake StartTls asked for succeeded; `alpn` is the protocol it selected (empty: none).
    /// Before it is called, next() fails closed.
    void tls_started(std::string_view alpn);
    /// The connection is encrypted (after tls_started()).
    [[nodiscard]] bool tls() const noexcept { return tls_; }

private:
    enum class State { negotiating, awaiting_tls, awaiting_direct_tls, alpn_missing, done };
    StartupStep end(StartupAction action, std::size_t consumed = 0);
    StartupAction login(const StartupMessage& m) const;

    StartupFacts facts_;
    TargetLookup targets_;
    Limits limits_;
    State state_ = State::negotiating;
    int rounds_ = 0;
    bool tls_ = false;
};

// ---- the `options` startup parameter ------------------------------------------------------------
/// `options` split into arguments as the server does it (pg_split_opts): whitespace (space, tab, LF,
/// CR, VT, FF: isspace() in the C locale) separates; a backslash takes the next character literally
/// (a final backslash stays as it is).
std::vector<std::string> split_options(std::string_view options);
/// The inverse for the server: arguments joined with spaces, with whitespace and backslash escaped,
/// so that split_options(join_options(args)) == args for any args.
std::string join_options(const std::vector<std::string>& args);

/// `options` without glassgate's own settings (any `glassgate.*` given as `-c name=value`,
/// `-cname=value` or `--name=value`).
struct GlassgateOptions {
    std::optional<std::string> reason;   ///< the value of glassgate.reason
    std::optional<std::string> forward;  ///< what is left for the backend; absent if nothing
};
GlassgateOptions take_glassgate_options(std::string_view options);

/// Startup parameters glassgate consumes instead of forwarding: user, database, replication, options
/// (forwarded only as what take_glassgate_options leaves).
bool consumed_param(std::string_view name) noexcept;

}  // namespace gg::pg
