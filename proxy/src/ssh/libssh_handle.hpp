#pragma once
// Private to proxy/ssh: ownership of libssh objects. One move-only handle template, instantiated with
// each object's free function, so no code frees a libssh object by hand.
//
// Ordering rules the types cannot express (../shared/DESIGN.md, "SSH on Asio with libssh"):
// - a channel goes before its session: free it (after taking its callbacks off, ChannelPair) or
//   release() it to the session, whose ssh_free frees the channels it still has;
// - after ssh_bind_accept_fd libssh owns the accepted fd and closes it; with SSH_OPTIONS_FD (libssh
//   0.10) neither ssh_disconnect nor ssh_free closes the fd (ssh_disconnect forgets it), except a failed
//   ssh_connect, which closes it: the owner reads ssh_get_fd before the disconnect and closes that
//   (Connection::teardown);
// - a session leaves its ssh_event before either is freed (SessionEvent).

#include <libssh/libssh.h>
#include <libssh/server.h>

#include <utility>

namespace gg::proxy::ssh {

/// Owns one libssh object `T` (a pointer type such as ssh_session) and frees it with `Free`.
template <class T, auto Free>
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(T p) noexcept : p_(p) {}
    Handle(Handle&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    [[nodiscard]] T get() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    /// Gives up ownership: libssh (or the caller) frees the object.
    [[nodiscard]] T release() noexcept { return std::exchange(p_, nullptr); }
    void reset(T p = nullptr) noexcept {
        if (p_) Free(p_);
        p_ = p;
    }
    /// For libssh's out-parameters (`ssh_pki_import_privkey_base64(..., key.out())`); frees the
    /// object held so far.
    [[nodiscard]] T* out() noexcept {
        reset();
        return &p_;
    }

private:
    T p_ = nullptr;
};

/// ssh_disconnect (SSH_MSG_DISCONNECT to a peer that is still there), then ssh_free.
inline void disconnect_and_free(ssh_session s) noexcept {
    ssh_disconnect(s);
    ssh_free(s);
}
inline void free_pubkey_hash(unsigned char* h) noexcept { ssh_clean_pubkey_hash(&h); }

using SessionHandle = Handle<ssh_session, &ssh_free>;                 ///< ssh_free only: no goodbye to a peer
using PeerSessionHandle = Handle<ssh_session, &disconnect_and_free>;  ///< ssh_disconnect, then ssh_free
using ChannelHandle = Handle<ssh_channel, &ssh_channel_free>;
using MessageHandle = Handle<ssh_message, &ssh_message_free>;
using KeyHandle = Handle<ssh_key, &ssh_key_free>;
using EventHandle = Handle<ssh_event, &ssh_event_free>;
using BindHandle = Handle<ssh_bind, &ssh_bind_free>;
using CharHandle = Handle<char*, &ssh_string_free_char>;                 ///< strings libssh allocates
using HashHandle = Handle<unsigned char*, &free_pubkey_hash>;

/// The ssh_event that makes libssh process one session's socket. One event per session: never two
/// sessions in one event (re-entrancy). The session must outlive it, or reset() it first.
class SessionEvent {
public:
    SessionEvent() = default;
    SessionEvent(const SessionEvent&) = delete;
    SessionEvent& operator=(const SessionEvent&) = delete;
    ~SessionEvent() { reset(); }

    /// Lets libssh read and write whatever `s`'s socket has (timeout 0), up to 16 rounds. True if it
    /// processed anything. The event is created on the first call that can add the session
    /// (ssh_event_add_session fails until the session has been polled once).
    bool pump(ssh_session s) {
        if (!s) return false;
        if (!ev_) {
            EventHandle ev(ssh_event_new());
            if (!ev || ssh_event_add_session(ev.get(), s) != SSH_OK) return false;
            ev_ = std::move(ev);
            session_ = s;
        }
        bool any = false;
        for (int i = 0; i < 16 && ssh_event_dopoll(ev_.get(), 0) == SSH_OK; ++i) any = true;
        return any;
    }
    /// Takes the session out of the event and frees the event.
    void reset() noexcept {
        if (ev_ && session_) ssh_event_remove_session(ev_.get(), session_);
        ev_.reset();
        session_ = nullptr;
    }

private:
    EventHandle ev_;
    ssh_session session_ = nullptr;  ///< not owned
};

}  // namespace gg::proxy::ssh
