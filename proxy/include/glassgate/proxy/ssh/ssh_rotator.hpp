#pragma once
// Rotation of an SSH target's backend key after a break-glass session (the rotation worker's
// Rotator for config::Protocol::ssh). Blocking libssh: runs on the worker's pool, never on an io thread.
//
// apply(): logs in as backend_user with the current key (pinned host key verified), adds the new
// public key to the target's `authorized_keys` file (atomic rewrite on the backend: temp file in
// the same directory + mv, key material on stdin, never in a command line), verifies a second login
// with the new key, only then removes the old key's line, and checks that the old key is refused.
// If the current key is already refused but the pending one logs in (an earlier attempt got that
// far), it finishes the removal and reports used_pending.

#include <set>

#include "glassgate/config/config.hpp"
#include "glassgate/protocols/secret.hpp"
#include "glassgate/proxy/rotation/rotation.hpp"

namespace gg::proxy::ssh {

/// A new Ed25519 private key as an OpenSSH private key PEM ("-----BEGIN OPENSSH PRIVATE KEY-----").
Secret generate_backend_key();

/// Changes the backend's authorized key from `current` to `next` (both OpenSSH private keys).
rotation::Outcome rotate_backend_key(const config::Target& target, const Secret& current, const Secret& next,
                                     const std::set<int>& keep_pids);

/// {generate_backend_key, rotate_backend_key}.
rotation::Rotator backend_key_rotator();

}  // namespace gg::proxy::ssh
