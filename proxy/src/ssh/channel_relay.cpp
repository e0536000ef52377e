// Channel data between the client's and the backend's channel of a pair: recorded first, written
// within the peer's window, queued (bounded) otherwise; then EOF, exit status and close in OpenSSH's
// order, or glassgate's own end of the channel (message, exit-signal TERM, EOF, close).

#include <algorithm>

#include "connection.hpp"

namespace gg::proxy::ssh {
using session::Direction;
using session::EventKind;

// --- libssh channel callbacks (they only set flags: they may run inside any libssh call) -----

void Connection::on_exit_status(ssh_session, ssh_channel, int status, void* user) {
    static_cast<ChannelPair*>(user)->exit_status = status;
}
void Connection::on_exit_signal(ssh_session, ssh_channel, const char* sig, int core, const char* msg, const char*,
                                void* user) {
    static_cast<ChannelPair*>(user)->exit_signal = session::ExitSignal{sig ? sig : "", core != 0, msg ? msg : ""};
}
void Connection::on_backend_close(ssh_session, ssh_channel, void* user) {
    static_cast<ChannelPair*>(user)->b_remote_closed = true;
}
void Connection::on_client_close(ssh_session, ssh_channel, void* user) {
    static_cast<ChannelPair*>(user)->c_remote_closed = true;
}
void Connection::on_client_signal(ssh_session, ssh_channel, const char* sig, void* user) {
    auto* p = static_cast<ChannelPair*>(user);
    if (sig && p->signals.size() < 64) p->signals.emplace_back(sig);
}
void Connection::on_agent_request(ssh_session, ssh_channel, void* user) {
    auto* p = static_cast<ChannelPair*>(user);
    p->owner->annotate("agent forwarding request refused");
}

// --- one pair --------------------------------------------------------------------------------

bool Connection::step_pair(ChannelPair& p) {
    bool progress = false;
    // Open the backend's side of the channel once the backend is ready.
    if (!p.b && backend_ready_ && !p.cutting) {
        p.b = ChannelHandle(ssh_channel_new(be_.get()));
        if (!p.b) {
            fail_backend("cannot create a backend channel", "glassgate lost the connection to " + target_->name);
            return true;
        }
        ssh_callbacks_init(&p.b_cb);
        p.b_cb.userdata = &p;
        p.b_cb.channel_exit_status_function = &Connection::on_exit_status;
        p.b_cb.channel_exit_signal_function = &Connection::on_exit_signal;
        p.b_cb.channel_close_function = &Connection::on_backend_close;
        ssh_set_channel_callbacks(p.b.get(), &p.b_cb);
        p.b_opening = true;
        progress = true;
    }
    if (p.b_opening) {
        const int rc = p.kind == ChannelKind::session
                           ? ssh_channel_open_session(p.b.get())
                           : ssh_channel_open_forward(p.b.get(), p.fwd_host.c_str(), p.fwd_port, p.orig_host.c_str(),
                                                      p.orig_port);
        if (rc == SSH_OK) {
            p.b_opening = false;
            p.b_open = true;
            progress = true;
        } else if (rc != SSH_AGAIN) {
            p.b_opening = false;
            p.b_failed = true;
            annotate(std::string("the backend refused to open a channel: ") + ssh_get_error(be_.get()));
            p.cutting = true;
            p.cut_message = "glassgate: " + target_->name + " refused the channel";
            progress = true;
        }
    }
    if (p.b_open && !p.cutting && step_requests(p)) progress = true;
    if (relay(p)) progress = true;
    return progress;
}

/// Channel data: on SFTP channels the file operations (and the bytes only when configured or when
/// the stream cannot be parsed), elsewhere the bytes.
bool Connection::record_data(ChannelPair& p, bool sftp_stream, EventKind kind, Direction dir, std::string_view bytes) {
    if (p.sftp && sftp_stream) {
        if (!p.sftp->failed()) {
            sftp_events_.clear();
            if (dir == Direction::client_to_server) {
                p.sftp->client_bytes(as_bytes(bytes), sftp_events_);
            } else {
                p.sftp->server_bytes(as_bytes(bytes), sftp_events_);
            }
            for (const auto& e : sftp_events_) {
                if (!record(EventKind::sftp, dir, e)) return false;
            }
            if (p.sftp->failed()) {
                annotate("SFTP stream not parseable (" + p.sftp->failure() + "): raw bytes recorded from here");
                p.sftp_raw = true;
            }
        }
        if (!p.sftp_raw) return true;
    }
    return record(kind, dir, bytes);
}

namespace {

/// Writes to one side of a pair: never more than the peer's window, never more while its socket is
/// backed up (`unflushed` bytes handed to libssh and still pending there).
struct Writer {
    ssh_channel ch;
    bool is_err;
    std::size_t& unflushed;
    ssh_session s;
    bool& progress;

    std::size_t write(const char* data, std::size_t len) {
        std::size_t done = 0;
        while (done < len) {
            if (unflushed >= unflushed_cap && (ssh_get_poll_flags(s) & SSH_WRITE_PENDING)) break;
            const auto window = static_cast<std::size_t>(ssh_channel_window_size(ch));
            const auto n = std::min({len - done, window, read_chunk});
            if (n == 0) break;
            const int w = is_err ? ssh_channel_write_stderr(ch, data + done, static_cast<std::uint32_t>(n))
                                 : ssh_channel_write(ch, data + done, static_cast<std::uint32_t>(n));
            if (w <= 0) break;
            done += static_cast<std::size_t>(w);
            unflushed += static_cast<std::size_t>(w);
            progress = true;
        }
        return done;
    }
    /// Writes what `q` holds (as far as it goes); returns the bytes written.
    std::size_t drain(Pending& q) {
        const auto n = write(q.data(), q.size());
        q.consume(n);
        return n;
    }
    /// Data just read goes straight to this side when nothing is queued for it (no copy); the rest
    /// waits in `q`.
    void forward(Pending& q, bool alive, std::uint64_t& counter, const char* data, std::size_t len) {
        std::size_t done = 0;
        if (alive && q.empty()) done = write(data, len);
        counter += done;
        if (done < len) q.append(data + done, len - done);
    }
};

bool has_unread(ssh_channel ch) { return ssh_channel_poll(ch, 0) > 0 || ssh_channel_poll(ch, 1) > 0; }

}  // namespace

bool Connection::relay(ChannelPair& p) {
    bool progress = false;
    char tmp[read_chunk];
    ssh_channel c = p.c.get();
    ssh_channel b = p.b.get();
    const bool c_alive = !p.c_closed && !p.c_remote_closed && !ssh_channel_is_closed(c);
    const bool b_alive = p.b_open && !p.b_closed && !p.b_remote_closed && !ssh_channel_is_closed(b);
    // While the recording writer is behind, stop reading (back-pressure) rather than lose events.
    if (scope_.buffered() > svc_->cfg.server.recording_buffer_bytes / 2) {
        recording_backed_up_ = true;
        return false;
    }
    Writer to_client{c, false, c_unflushed_, srv_.get(), progress};
    Writer to_client_err{c, true, c_unflushed_, srv_.get(), progress};
    Writer to_backend{b, false, b_unflushed_, be_.get(), progress};

    // backend -> client (stdout, then stderr); what the backend sent before closing is still read.
    if (p.b_open && !p.b_closed && !p.cutting) {
        for (int is_err = 0; is_err < 2; ++is_err) {
            Pending& q = is_err ? p.to_client_err : p.to_client;
            while (q.size() < pending_cap) {
                const int n = ssh_channel_read_nonblocking(b, tmp, static_cast<std::uint32_t>(read_chunk), is_err);
                if (n <= 0) break;
                const auto len = static_cast<std::size_t>(n);
                if (!record_data(p, !is_err, is_err ? EventKind::term_stderr : EventKind::term_output,
                                 Direction::server_to_client, std::string_view(tmp, len))) {
                    return true;
                }
                (is_err ? to_client_err : to_client).forward(q, c_alive && !p.c_eof_sent, bytes_out_, tmp, len);
                last_activity_ = steady::now();
                progress = true;
            }
        }
    }
    // client -> backend
    if (c_alive && (b_alive || !p.b_open) && !p.cutting) {
        while (p.b_open && p.to_backend.size() < pending_cap) {
            const int n = ssh_channel_read_nonblocking(c, tmp, static_cast<std::uint32_t>(read_chunk), 0);
            if (n <= 0) break;
            const auto len = static_cast<std::size_t>(n);
            if (!record_data(p, true, EventKind::term_input, Direction::client_to_server, std::string_view(tmp, len))) {
                return true;
            }
            to_backend.forward(p.to_backend, b_alive && !p.b_eof_sent, bytes_in_, tmp, len);
            last_activity_ = steady::now();
            progress = true;
        }
    }
    if (c_alive) {
        bytes_out_ += to_client.drain(p.to_client);
        bytes_out_ += to_client_err.drain(p.to_client_err);
    } else {
        p.to_client = {};
        p.to_client_err = {};
    }
    if (b_alive) bytes_in_ += to_backend.drain(p.to_backend);
    if (close_channels(p, c_alive, b_alive)) progress = true;
    return progress;
}

/// EOF and close, in OpenSSH's order: data, EOF, exit status, close. Or glassgate's own end of the
/// channel: the message, then exit-signal, EOF, close.
bool Connection::close_channels(ChannelPair& p, bool c_alive, bool b_alive) {
    bool progress = false;
    ssh_channel c = p.c.get();
    ssh_channel b = p.b.get();
    if (b_alive && !p.b_eof_sent && p.to_backend.empty() && (ssh_channel_is_eof(c) || !c_alive)) {
        ssh_channel_send_eof(b);
        p.b_eof_sent = true;
        progress = true;
    }
    const bool b_finished =
        p.b_failed || (p.b_open && (p.b_remote_closed || ssh_channel_is_closed(b) || p.b_closed) && !has_unread(b));
    const bool b_eof = p.b_open && (ssh_channel_is_eof(b) || p.b_remote_closed || ssh_channel_is_closed(b));
    const bool client_drained = p.to_client.empty() && p.to_client_err.empty();
    if (c_alive && !p.c_eof_sent && !p.cutting && b_eof && client_drained && !has_unread(b)) {
        ssh_channel_send_eof(c);
        p.c_eof_sent = true;
        progress = true;
    }
    auto close_client = [&] {
        if (!p.c_eof_sent) ssh_channel_send_eof(c);
        p.c_eof_sent = true;
        ssh_channel_close(c);
        p.c_closed = true;
        progress = true;
    };
    if (c_alive && p.cutting && !p.c_closed) {
        if (!p.cut_message.empty()) {
            p.tell_user(p.cut_message);
            p.cut_message.clear();
            progress = true;
        }
        if (p.to_client.empty() && p.to_client_err.empty()) {
            if (!p.exit_sent && p.kind == ChannelKind::session) {
                ssh_channel_request_send_exit_signal(c, "TERM", 0, "glassgate ended the session", "");
                p.exit_sent = true;
            }
            close_client();
            if (b_alive) {
                ssh_channel_close(b);
                p.b_closed = true;
            }
        }
    } else if (c_alive && b_finished && client_drained) {
        if (!p.exit_sent) {
            if (p.exit_status) {
                auto es = session::encode_exit_status(static_cast<std::uint32_t>(*p.exit_status));
                (void)record(EventKind::exit_status, Direction::server_to_client, as_chars(es));
                ssh_channel_request_send_exit_status(c, *p.exit_status);
            } else if (p.exit_signal) {
                auto es = session::encode_exit_signal(*p.exit_signal);
                (void)record(EventKind::exit_signal, Direction::server_to_client, as_chars(es));
                ssh_channel_request_send_exit_signal(c, p.exit_signal->signal.c_str(), p.exit_signal->core_dumped ? 1 : 0,
                                                     p.exit_signal->message.c_str(), "");
            }
            p.exit_sent = true;
        }
        close_client();
    }
    if (!c_alive && b_alive) {
        ssh_channel_close(b);
        p.b_closed = true;
        progress = true;
    }
    return progress;
}

}  // namespace gg::proxy::ssh
