#pragma once
// Private to proxy/ssh: the fields of client requests that libssh 0.10 reads only through message
// accessors it marks deprecated (in favour of server callbacks, which cannot hold a request while
// the backend answers it). With the message API they are still the supported way; each wrapper
// silences the deprecation warning for its own calls and nothing else.

#include <libssh/libssh.h>
#include <libssh/server.h>

#include <string>

namespace gg::proxy::ssh {

/// The state of a publickey sign-in request: NONE (a key offered), VALID (its signature verified),
/// WRONG (a bad signature).
inline ssh_publickey_state_e auth_publickey_state(ssh_message m) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return ssh_message_auth_publickey_state(m);
#pragma GCC diagnostic pop
}

/// The public key of a publickey sign-in request (owned by the message).
inline ssh_key auth_pubkey(ssh_message m) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return ssh_message_auth_pubkey(m);
#pragma GCC diagnostic pop
}

/// The terminal type and size of a pty-req or window-change request.
struct PtyFields {
    std::string term;  ///< "xterm" when the request names none
    int cols = 0;
    int rows = 0;
};
inline PtyFields pty_fields(ssh_message m) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    const char* term = ssh_message_channel_request_pty_term(m);
    return {term ? term : "xterm", ssh_message_channel_request_pty_width(m), ssh_message_channel_request_pty_height(m)};
#pragma GCC diagnostic pop
}

}  // namespace gg::proxy::ssh
