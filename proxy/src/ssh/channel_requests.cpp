// Channel opens and channel requests. Each client request is held until the backend has answered it
// on the paired channel, and the client gets the backend's answer (one request in flight per
// channel); what glassgate refuses is decided in protocols/ssh, recorded and audited.

#include <algorithm>

#include "connection.hpp"
#include "message_fields.hpp"

namespace gg::proxy::ssh {
using session::Direction;
using session::EventKind;

namespace {

gg::ssh::ChannelType channel_type(int libssh_subtype) {
    switch (libssh_subtype) {
        case SSH_CHANNEL_SESSION:
            return gg::ssh::ChannelType::session;
        case SSH_CHANNEL_DIRECT_TCPIP:
            return gg::ssh::ChannelType::direct_tcpip;
        case SSH_CHANNEL_FORWARDED_TCPIP:
            return gg::ssh::ChannelType::forwarded_tcpip;
        case SSH_CHANNEL_X11:
            return gg::ssh::ChannelType::x11;
        default:
            return gg::ssh::ChannelType::other;
    }
}

/// A resize event's payload for a pty size.
std::string resize_payload(const PtyFields& pty) {
    const auto sz = session::encode_resize(
        {static_cast<std::uint32_t>(std::max(pty.cols, 0)), static_cast<std::uint32_t>(std::max(pty.rows, 0))});
    return std::string(as_chars(sz));
}

}  // namespace

void Connection::on_channel_open(MessageHandle m) {
    const auto type = channel_type(ssh_message_subtype(m.get()));
    const auto d = gg::ssh::decide_channel_open(type, target_->allow_port_forwarding);
    if (!d.accept || pairs_.size() >= max_channels) {
        const std::string why = d.accept ? "too many channels" : d.message;
        annotate("channel open refused: " + why);
        audit("ssh.channel_refused", "denied", why);
        ssh_message_reply_default(m.get());
        return;
    }
    auto p = std::make_unique<ChannelPair>();
    p->owner = this;
    if (type == gg::ssh::ChannelType::direct_tcpip) {
        p->kind = ChannelKind::direct_tcpip;
        p->fwd_host = ssh_message_channel_request_open_destination(m.get());
        p->fwd_port = ssh_message_channel_request_open_destination_port(m.get());
        p->orig_host = ssh_message_channel_request_open_originator(m.get());
        p->orig_port = ssh_message_channel_request_open_originator_port(m.get());
        annotate("port forwarding to " + p->fwd_host + ":" + std::to_string(p->fwd_port));
    }
    p->c = ChannelHandle(ssh_message_channel_request_open_reply_accept(m.get()));
    m.reset();
    if (!p->c) return;
    ssh_callbacks_init(&p->c_cb);
    p->c_cb.userdata = p.get();
    p->c_cb.channel_signal_function = &Connection::on_client_signal;
    p->c_cb.channel_auth_agent_req_function = &Connection::on_agent_request;
    p->c_cb.channel_close_function = &Connection::on_client_close;
    ssh_set_channel_callbacks(p->c.get(), &p->c_cb);
    if (be_state_ == Be::failed) {
        p->cutting = true;
        p->cut_message = be_error_user_;
        p->b_failed = true;
    }
    pairs_.push_back(std::move(p));
}

void Connection::on_channel_request(MessageHandle m) {
    ChannelPair* p = find_pair(ssh_message_channel_request_channel(m.get()));
    if (!p || p->cutting) {
        ssh_message_reply_default(m.get());
        return;
    }
    p->requests.push_back(std::move(m));
}

ChannelPair* Connection::find_pair(ssh_channel c) {
    for (auto& p : pairs_) {
        if (p->c.get() == c) return p.get();
    }
    return nullptr;
}

/// Client requests, one at a time, each answered with the backend's answer; then the signals the
/// client sent. Runs once the backend's channel is open.
bool Connection::step_requests(ChannelPair& p) {
    bool progress = false;
    while (!p.requests.empty()) {
        bool done = false;
        if (start_request(p, p.requests.front().get(), done)) progress = true;
        if (!done) {
            p.request_in_flight = true;
            break;
        }
        p.requests.pop_front();
        p.request_in_flight = false;
        progress = true;
    }
    while (!p.signals.empty()) {
        annotate("signal " + p.signals.front());
        ssh_channel_request_send_signal(p.b.get(), p.signals.front().c_str());
        p.signals.pop_front();
        progress = true;
    }
    return progress;
}

/// Starts (or continues) relaying one client request on the backend channel. Returns progress;
/// sets `done` once the request has been answered.
bool Connection::start_request(ChannelPair& p, ssh_message m, bool& done) {
    done = false;
    ssh_channel b = p.b.get();
    auto reply = [&](bool ok) {
        if (ok) {
            ssh_message_channel_request_reply_success(m);
        } else {
            ssh_message_reply_default(m);
        }
        done = true;
        return true;
    };
    auto finish = [&](int rc) {
        if (rc == SSH_AGAIN) return false;
        return reply(rc == SSH_OK);
    };
    gg::ssh::RequestPolicy policy{svc_->cfg.ssh.env_allow, true};
    auto refuse = [&](const std::string& message) {
        annotate("request refused: " + message);
        audit("ssh.request_refused", "denied", message);
        return reply(false);
    };
    switch (ssh_message_subtype(m)) {
        case SSH_CHANNEL_REQUEST_PTY: {
            const auto pty = pty_fields(m);
            if (!p.request_in_flight) {
                if (!record(EventKind::resize, Direction::client_to_server, resize_payload(pty))) return reply(false);
                p.pty = true;
            }
            return finish(ssh_channel_request_pty_size(b, pty.term.c_str(), pty.cols, pty.rows));
        }
        case SSH_CHANNEL_REQUEST_WINDOW_CHANGE: {
            const auto pty = pty_fields(m);
            if (!record(EventKind::resize, Direction::client_to_server, resize_payload(pty))) return reply(false);
            return reply(ssh_channel_change_pty_size(b, pty.cols, pty.rows) == SSH_OK);
        }
        case SSH_CHANNEL_REQUEST_SHELL:
            if (!p.request_in_flight) {
                p.use = Use::shell;
                annotate("shell");
            }
            return finish(ssh_channel_request_shell(b));
        case SSH_CHANNEL_REQUEST_EXEC: {
            const char* cmd = ssh_message_channel_request_command(m);
            if (!p.request_in_flight) {
                p.use = Use::exec;
                if (!record(EventKind::exec, Direction::client_to_server, cmd ? cmd : "")) return reply(false);
            }
            return finish(ssh_channel_request_exec(b, cmd ? cmd : ""));
        }
        case SSH_CHANNEL_REQUEST_ENV: {
            const char* name = ssh_message_channel_request_env_name(m);
            const char* value = ssh_message_channel_request_env_value(m);
            const std::string n = name ? name : "";
            const std::string v = value ? value : "";
            if (!p.request_in_flight) {
                const auto d = gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::env, n, policy);
                if (!d.relay) return refuse(d.message);
                auto env = session::encode_env(n, v);
                if (!record(EventKind::env, Direction::client_to_server, as_chars(env))) return reply(false);
            }
            return finish(ssh_channel_request_env(b, n.c_str(), v.c_str()));
        }
        case SSH_CHANNEL_REQUEST_SUBSYSTEM: {
            const char* name = ssh_message_channel_request_subsystem(m);
            const std::string n = name ? name : "";
            if (!p.request_in_flight) {
                const auto d = gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::subsystem, n, policy);
                if (!d.relay) return refuse(d.message);
                p.use = Use::subsystem;
                if (!record(EventKind::subsystem, Direction::client_to_server, n)) return reply(false);
                if (n == "sftp") {
                    p.sftp = std::make_unique<gg::ssh::SftpObserver>();
                    p.sftp_raw = target_->record_sftp_contents;
                }
            }
            return finish(ssh_channel_request_subsystem(b, n.c_str()));
        }
        case SSH_CHANNEL_REQUEST_X11:
            return refuse(gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::x11_req, "x11-req", policy).message);
        default:
            return refuse(gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::other, "unknown", policy).message);
    }
}

}  // namespace gg::proxy::ssh
