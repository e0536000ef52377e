#pragma once
// Private to proxy/ssh: keys and the client side of glassgate's connections to SSH targets — the
// public-key line every part of the SSH path compares and prints, glassgate's own host key, backend
// credentials, and the options and pinned-host-key check shared by the proxy's backend leg, key
// rotation and `glassgate target pin`.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "glassgate/config/config.hpp"
#include "libssh_handle.hpp"

namespace gg::proxy::ssh {

/// "<type> <base64>" of a public (or private) key, the form of authorized_keys and known_hosts lines
/// and of a target's `host_key`; empty when libssh cannot export the key. The one helper of its kind
/// in proxy/ssh: compare lines with gg::ssh::parse_public_key_line.
std::string public_key_line(ssh_key key);

/// "SHA256:..." of a public key; empty on failure.
std::string key_fingerprint(ssh_key key);

/// glassgate's host key at `path`, generated as Ed25519 (0600) when the file does not exist.
/// Throws OperationalError naming the file (unreadable, readable by group/others, not a key).
KeyHandle load_or_create_host_key(const std::filesystem::path& path);

/// True when a stored credential is a private key (PEM/OpenSSH), not a password.
bool is_private_key(std::string_view credential);
/// Imports a PEM/OpenSSH private key (no passphrase); an empty handle when it is not usable. The
/// temporary copy handed to libssh is wiped.
KeyHandle import_private_key(std::string_view pem);

/// Options of a client session to an SSH target. The machine's ssh config files and known_hosts are
/// never read: the pinned key is checked instead (presented_host_key).
struct ClientOptions {
    const char* user = nullptr;         ///< nullptr: not set (no sign-in follows)
    std::optional<long> timeout_s;      ///< blocking sessions only
    std::string hostkeys;               ///< host key algorithms to offer
    const char* ciphers = nullptr;      ///< both directions; nullptr: libssh's default
    std::optional<int> fd;              ///< SSH_OPTIONS_FD: an already connected socket (the caller closes it)
};
void set_client_options(ssh_session s, const config::SocketAddress& address, const ClientOptions& o);

/// The host key a connected client session's server presented, as public_key_line(); empty if none.
std::string presented_host_key(ssh_session s);

}  // namespace gg::proxy::ssh
