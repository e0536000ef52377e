#pragma once
// Private to proxy/ssh: one relayed channel — the client's channel (server side) paired with the
// backend's (client side), the requests held until the backend answers them, the bounded queues of
// each direction and where EOF and close stand.

#include <libssh/callbacks.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "glassgate/protocols/ssh/sftp.hpp"
#include "glassgate/session/recording.hpp"
#include "libssh_handle.hpp"

namespace gg::proxy::ssh {

class Connection;

/// A byte queue with a read offset (compacted lazily): the pending data of one relay direction.
class Pending {
public:
    [[nodiscard]] std::size_t size() const noexcept { return buf_.size() - off_; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] const char* data() const noexcept { return buf_.data() + off_; }
    void append(const char* p, std::size_t n) {
        if (off_ > 0 && off_ >= buf_.size() / 2) {
            buf_.erase(0, off_);
            off_ = 0;
        }
        buf_.append(p, n);
    }
    void append(std::string_view s) { append(s.data(), s.size()); }
    void consume(std::size_t n) noexcept {
        off_ += n;
        if (off_ == buf_.size()) {
            buf_.clear();
            off_ = 0;
        }
    }

private:
    std::string buf_;
    std::size_t off_ = 0;
};

constexpr std::size_t pending_cap = 256 * 1024;  ///< per direction, before we stop reading the source
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t unflushed_cap = 1u << 20;  ///< bytes handed to libssh while its socket is backed up
constexpr std::size_t max_channels = 16;         ///< per connection

enum class ChannelKind { session, direct_tcpip };
enum class Use { none, shell, exec, subsystem };

struct ChannelPair {
    ChannelPair() = default;
    ChannelPair(const ChannelPair&) = delete;
    ChannelPair& operator=(const ChannelPair&) = delete;
    /// Takes the callbacks off before the channels go: libssh keeps a locally freed channel until
    /// the peer's close arrives and then runs its callbacks, which must not point here any more.
    /// Then the backend channel is freed, then the client's (members in reverse order).
    ~ChannelPair() { detach_callbacks(); }

    void detach_callbacks() noexcept {
        if (c) ssh_remove_channel_callbacks(c.get(), &c_cb);
        if (b) ssh_remove_channel_callbacks(b.get(), &b_cb);
    }
    /// At the connection's end: the channels are freed with their sessions (ssh_free), as libssh
    /// does for every channel a session still has.
    void leave_channels_to_sessions() noexcept {
        detach_callbacks();
        requests.clear();
        (void)b.release();
        (void)c.release();
    }
    /// Queues a line from glassgate for the user: into the terminal under a pty, else on stderr.
    void tell_user(const std::string& text) {
        if (pty) {
            to_client.append("\r\n" + text + "\r\n");
        } else {
            to_client_err.append(text + "\n");
        }
    }

    ChannelKind kind = ChannelKind::session;
    ChannelHandle c;  ///< the client's channel (server side)
    ChannelHandle b;  ///< the backend's channel (client side)
    bool b_open = false;
    bool b_opening = false;
    bool b_failed = false;
    std::string fwd_host;
    int fwd_port = 0;
    std::string orig_host;
    int orig_port = 0;
    std::deque<MessageHandle> requests;  ///< client requests waiting for the backend, in order
    bool request_in_flight = false;
    bool pty = false;
    Use use = Use::none;
    std::deque<std::string> signals;
    Pending to_client, to_client_err, to_backend;
    bool c_eof_sent = false;        ///< EOF sent to the client
    bool b_eof_sent = false;        ///< EOF sent to the backend
    bool c_closed = false;          ///< we closed the client channel
    bool b_closed = false;          ///< we closed the backend channel
    bool c_remote_closed = false;   ///< the client sent CHANNEL_CLOSE
    bool b_remote_closed = false;   ///< the backend sent CHANNEL_CLOSE (libssh may keep the channel
                                    ///< "open" while data is buffered: the callback is the reliable sign)
    bool cutting = false;           ///< glassgate ends this channel (time cap, backend gone, shutdown)
    std::string cut_message;
    std::optional<int> exit_status;
    std::optional<session::ExitSignal> exit_signal;
    std::unique_ptr<gg::ssh::SftpObserver> sftp;  ///< set on sftp channels: operations are recorded, not bytes
    bool sftp_raw = false;                        ///< record the raw bytes too (record_sftp_contents, or unparseable)
    bool exit_sent = false;
    ssh_channel_callbacks_struct c_cb{};
    ssh_channel_callbacks_struct b_cb{};
    Connection* owner = nullptr;  ///< for callbacks that annotate the recording
};

}  // namespace gg::proxy::ssh
