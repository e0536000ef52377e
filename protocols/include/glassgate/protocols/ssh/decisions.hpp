#pragma once
// What glassgate decides about SSH, independent of libssh (which owns the socket and lives in
// proxy/ssh/): how a login name names a target, which channel requests are relayed, which
// environment variables pass, and how a pinned backend host key is compared.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gg::ssh {

/// The SSH login name: "TARGET" or "HINT:TARGET". The hint is the SSO identity the user expects
/// (it must match the identity the sign-in yields) or a break-glass account.
struct Login {
    std::string hint;    ///< empty when the login name has no ':'
    std::string target;
};

/// Parses a login name. On failure `login` is empty and `problem` says why, in words for the user.
struct LoginParse {
    std::optional<Login> login;
    std::string problem;
};
[[nodiscard]] LoginParse parse_login(std::string_view user);

/// True if `name` matches one of `globs` (shell patterns: *, ?, [..]).
[[nodiscard]] bool env_allowed(const std::vector<std::string>& globs, std::string_view name);

/// A public key as written in known_hosts / authorized_keys: "<type> <base64>" (comment ignored).
struct PublicKeyLine {
    std::string type;
    std::string base64;
    friend bool operator==(const PublicKeyLine&, const PublicKeyLine&) = default;
};
[[nodiscard]] std::optional<PublicKeyLine> parse_public_key_line(std::string_view line);

/// The host key algorithms to offer a backend whose pinned key has type `key_type`, so that the
/// backend presents exactly the pinned key (an RSA key is signed with rsa-sha2-*, never ssh-rsa/SHA-1).
[[nodiscard]] std::string hostkey_algorithms_for(std::string_view key_type);

/// Channel requests a client can make on a session channel (RFC 4254 section 6).
enum class ChannelRequest { pty_req, shell, exec, env, window_change, subsystem, signal, x11_req, auth_agent, other };

[[nodiscard]] ChannelRequest channel_request_kind(std::string_view name) noexcept;

/// Whether a session channel request is relayed to the backend, and if not, the message the user
/// gets (written to the channel's stderr) and the reason recorded.
struct RequestDecision {
    bool relay = false;
    std::string message;  ///< empty when relayed
};
struct RequestPolicy {
    std::vector<std::string> env_allow;
    bool allow_sftp = true;
};
[[nodiscard]] RequestDecision decide_channel_request(ChannelRequest kind, std::string_view detail,
                                                     const RequestPolicy& policy);

/// Channel types (RFC 4254 section 5.1) and whether they are relayed.
enum class ChannelType { session, direct_tcpip, forwarded_tcpip, x11, other };
struct OpenDecision {
    bool accept = false;
    std::string message;  ///< reason sent with the open failure
};
[[nodiscard]] OpenDecision decide_channel_open(ChannelType type, bool allow_port_forwarding);

}  // namespace gg::ssh
