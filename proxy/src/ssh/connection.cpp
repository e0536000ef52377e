// The connection's loop, one pass of it, message dispatch, the end of a connection and its teardown.

#include "connection.hpp"

#include <unistd.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "glassgate/proxy/ops/logging.hpp"

namespace gg::proxy::ssh {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using session::CloseReason;
using session::Direction;
using session::EventKind;
using namespace std::chrono_literals;

namespace {

std::string peer_of(const tcp::socket& s, bool with_port) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "?";
    return with_port ? ep.address().to_string() + ":" + std::to_string(ep.port()) : ep.address().to_string();
}

}  // namespace

Connection::Connection(tcp::socket sock, std::shared_ptr<Services> svc)
    : svc_(std::move(svc)), ex_(sock.get_executor()), sock_(std::move(sock)), peer_(peer_of(sock_, true)),
      peer_addr_(peer_of(sock_, false)),
      scope_(SessionDeps{svc_->store, svc_->recordings, svc_->metrics, svc_->active_sessions, *svc_->blocking,
                          svc_->cfg.server.instance, svc_->shipper},
             session::Protocol::ssh, peer_),
      wake_(ex_) {
    boost::system::error_code ec;
    sock_.set_option(tcp::no_delay(true), ec);
}

asio::awaitable<void> Connection::run() {
    svc_->metrics.inc("glassgate_connections_total", {{"protocol", "ssh"}});
    SessionHandle accepted(ssh_new());
    if (!accepted) co_return;
    const int fd = sock_.release();
    int rc;
    {
        std::lock_guard lk(svc_->bind->mu);  // ssh_bind_accept_fd mutates the shared bind
        rc = ssh_bind_accept_fd(svc_->bind->bind.get(), accepted.get(), fd);
    }
    if (rc != SSH_OK) {
        spdlog::error("ssh {}: cannot start the SSH session: {}", peer_, ssh_get_error(svc_->bind->bind.get()));
        ::close(fd);
        co_return;
    }
    srv_ = PeerSessionHandle(accepted.release());  // libssh owns the fd from here
    ssh_set_blocking(srv_.get(), 0);
    cfd_.emplace(ex_, ::dup(fd));
    grace_deadline_ = steady::now() + svc_->cfg.ssh.login_grace;
    {
        std::weak_ptr<Connection> weak = shared_from_this();
        closer_id_ = svc_->closers.add([weak, ex = ex_](std::string why) {
            asio::post(ex, [weak, why] {
                if (auto self = weak.lock()) {
                    self->cut_all(CloseReason::shutdown, "glassgate: " + why);
                    self->end(CloseReason::shutdown, why);
                    self->kick();
                }
            });
        });
    }

    int spins = 0;
    for (;;) {
        const bool progress = step();
        if (ending_ && steady::now() >= linger_deadline_) break;
        if (progress) {
            ready_spins_ = 0;
            if (++spins >= 64) {
                spins = 0;
                co_await asio::post(ex_, asio::use_awaitable);  // let other connections run
            }
            continue;
        }
        spins = 0;
        auto until = steady::now() + 1s;
        if (recording_backed_up_) {  // the writer does not wake us: look again soon
            recording_backed_up_ = false;
            until = steady::now() + 5ms;
        }
        until = next_deadline(until);
        const auto slept_from = steady::now();
        co_await wait(until);
        if (steady::now() - slept_from >= 900ms) log_idle_channels();
    }
    svc_->closers.remove(closer_id_);
    const auto why = reason_ == CloseReason::none ? CloseReason::client_disconnect : reason_;
    if (scope_.opened()) {
        co_await scope_.close(why, detail_, bytes_in_, bytes_out_);
    }
    if (grant_) {
        svc_->breakglass->session_closed(*grant_, session::to_string(why), session::TimePoint(
            std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now())));
    }
    teardown();
}

void Connection::log_idle_channels() {
    if (!scope_.opened() || !scope_.log().should_log(spdlog::level::trace)) return;
    for (const auto& p : pairs_) {
        ssh_channel c = p->c.get();
        ssh_channel b = p->b.get();
        scope_.log().trace(
            "idle channel: b_open={} c_closed={} c_rclosed={} c_isclosed={} b_closed={} b_rclosed={} b_isclosed={} "
            "b_eof={} c_eof={} out={} err={} in={} eof_sent c={} b={} exit={} reqs={} poll={}/{} flags={:#x}/{:#x}",
            p->b_open, p->c_closed, p->c_remote_closed, ssh_channel_is_closed(c), p->b_closed, p->b_remote_closed,
            b ? ssh_channel_is_closed(b) : -1, b ? ssh_channel_is_eof(b) : -1, ssh_channel_is_eof(c), p->to_client.size(),
            p->to_client_err.size(), p->to_backend.size(), p->c_eof_sent, p->b_eof_sent, p->exit_status.value_or(-1),
            p->requests.size(), b ? ssh_channel_poll(b, 0) : -9, b ? ssh_channel_poll(b, 1) : -9,
            ssh_get_poll_flags(srv_.get()), be_ ? ssh_get_poll_flags(be_.get()) : 0);
    }
}

void Connection::teardown() {
    // Asio's duplicates first (closing them cancels the waits), then libssh's events, messages and
    // channels, then the sessions (which free the channels still open and close their sockets).
    boost::system::error_code ec;
    if (cfd_) {
        cfd_->close(ec);
        cfd_.reset();
    }
    if (bfd_) {
        bfd_->close(ec);
        bfd_.reset();
    }
    srv_ev_.reset();
    be_ev_.reset();
    held_.reset();
    admit_msg_.reset();
    for (auto& p : pairs_) p->leave_channels_to_sessions();
    pairs_.clear();
    // libssh (0.10) never closes a socket it was given with SSH_OPTIONS_FD: ssh_disconnect forgets it,
    // except on a failed ssh_connect, which closes it and marks it closed. So the socket is closed here,
    // as libssh held it just before the disconnect (-1 when libssh closed it already); before
    // ssh_connect it is still only ours.
    int fd = backend_fd_;
    if (be_) {
        if (be_connect_called_) fd = ssh_get_fd(be_.get());
        be_.reset();  // ssh_disconnect, then ssh_free
    }
    if (fd >= 0) ::close(fd);
    backend_fd_ = -1;
    srv_.reset();
    be_key_.reset();
}

// --- one pass --------------------------------------------------------------------------------

bool Connection::step() {
    bool progress = false;
    const auto now = steady::now();
    if (check_time(now)) progress = true;
    if (phase_ == Phase::kex) {
        const int rc = ssh_handle_key_exchange(srv_.get());
        if (rc == SSH_OK) {
            phase_ = Phase::auth;
            ssh_set_auth_methods(srv_.get(), SSH_AUTH_METHOD_INTERACTIVE | SSH_AUTH_METHOD_PUBLICKEY);
            progress = true;
        } else if (rc == SSH_ERROR) {
            spdlog::info("ssh {}: key exchange failed: {}", peer_, ssh_get_error(srv_.get()));
            end(CloseReason::protocol_error, "key exchange failed");
            linger_deadline_ = now;
            return false;
        } else {
            return progress;
        }
    }
    if (pump_sessions()) progress = true;
    if (step_messages()) progress = true;
    if (phase_ == Phase::auth && step_auth()) progress = true;
    if (step_backend()) progress = true;
    for (auto it = pairs_.begin(); it != pairs_.end();) {
        ChannelPair& p = **it;
        if (step_pair(p)) progress = true;
        const bool c_done = p.c_closed || p.c_remote_closed || ssh_channel_is_closed(p.c.get());
        const bool b_done =
            !p.b || p.b_closed || p.b_remote_closed || ssh_channel_is_closed(p.b.get()) || p.b_failed;
        if (c_done && b_done && p.to_client.empty() && p.to_client_err.empty()) {
            it = pairs_.erase(it);  // requests, callbacks, backend channel, client channel (ChannelPair)
            progress = true;
        } else {
            ++it;
        }
    }
    flush_sessions();
    if (client_gone()) {
        const std::string why = ssh_get_error(srv_.get());
        const bool said_goodbye = why.find("SSH_MSG_DISCONNECT") != std::string::npos;
        if (reason_ == CloseReason::none && scope_.opened() && !said_goodbye) {
            scope_.log().info("client connection lost: {}", why);
        }
        end(CloseReason::client_disconnect,
            said_goodbye ? "client closed the connection" : "client connection lost: " + why);
        linger_deadline_ = now;
    } else if (backend_gone() && reason_ == CloseReason::none) {
        cut_all(CloseReason::backend_disconnect, "glassgate: the connection to " + target_->name + " was lost");
        end(CloseReason::backend_disconnect, "backend closed the connection");
    }
    if (ending_ && linger_deadline_ == steady::time_point::max()) linger_deadline_ = now + 3s;
    // Ending: done once every channel is gone and the client's output is flushed.
    if (ending_ && pairs_.empty() && srv_ && !(ssh_get_poll_flags(srv_.get()) & SSH_WRITE_PENDING)) {
        linger_deadline_ = std::min(linger_deadline_, now);
    }
    return progress;
}

bool Connection::step_messages() {
    bool progress = false;
    for (int i = 0; i < 32; ++i) {
        MessageHandle m(ssh_message_get(srv_.get()));
        if (!m) break;
        progress = true;
        handle_message(std::move(m));
    }
    return progress;
}

void Connection::handle_message(MessageHandle m) {
    const int type = ssh_message_type(m.get());
    if (type == SSH_REQUEST_AUTH && phase_ == Phase::auth && !ending_) {
        on_auth(std::move(m));
        return;
    }
    if (type == SSH_REQUEST_CHANNEL_OPEN && phase_ == Phase::open && !ending_) {
        on_channel_open(std::move(m));
        return;
    }
    if (type == SSH_REQUEST_CHANNEL && phase_ == Phase::open) {
        on_channel_request(std::move(m));
        return;
    }
    if (type == SSH_REQUEST_GLOBAL && phase_ == Phase::open) {
        annotate("global request refused (remote port forwarding is not available)");
    }
    ssh_message_reply_default(m.get());
}

// --- ending ----------------------------------------------------------------------------------

void Connection::end(CloseReason why, std::string detail) {
    if (reason_ == CloseReason::none) {
        reason_ = why;
        detail_ = std::move(detail);
    }
    ending_ = true;
}

void Connection::cut_all(CloseReason why, const std::string& message) {
    (void)why;
    for (auto& p : pairs_) {
        if (p->cutting) continue;
        p->cutting = true;
        p->cut_message = message;
        for (auto& m : p->requests) ssh_message_reply_default(m.get());
        p->requests.clear();
    }
    kick();
}

bool Connection::record(EventKind kind, Direction dir, std::string_view bytes) {
    if (!scope_.opened()) return true;
    if (scope_.record(kind, dir, as_bytes(bytes))) return true;
    recording_failed();
    return false;
}

void Connection::recording_failed() {
    if (reason_ != CloseReason::none && reason_ != CloseReason::recording_failed) return;
    if (scope_.recording_storage_full()) {
        cut_all(CloseReason::recording_failed, "glassgate: recording storage is full; this session is ended");
        end(CloseReason::recording_failed, "recording storage is full: " + scope_.recording_failure());
        return;
    }
    cut_all(CloseReason::recording_failed, "glassgate: recording failed, so the session is ended");
    end(CloseReason::recording_failed, "recording failed: " + scope_.recording_failure());
}

void Connection::audit(std::string type, std::string outcome, std::string reason, boost::json::object details) {
    if (scope_.opened()) {
        scope_.audit(std::move(type), std::move(outcome), std::move(reason), std::move(details));
        return;
    }
    write_audit(svc_->store, {{}, identity_, login_ ? login_->target : std::string(), peer_}, std::move(type),
                std::move(outcome), std::move(reason), std::move(details));
}

bool Connection::client_gone() const {
    return srv_ && (ssh_get_status(srv_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
}

bool Connection::backend_gone() const {
    return be_ && backend_ready_ && (ssh_get_status(be_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
}

}  // namespace gg::proxy::ssh
