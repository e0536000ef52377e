// Waiting: on readiness of the two sockets (duplicated descriptors), a timer, or a kick from the
// sign-in or shutdown; and letting libssh process and flush both sessions.

#include <poll.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "connection.hpp"

namespace gg::proxy::ssh {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

bool write_pending(ssh_session s) { return (ssh_get_poll_flags(s) & SSH_WRITE_PENDING) != 0; }

}  // namespace

void Connection::kick() {
    kicked_ = true;
    wake_.cancel();
}

void Connection::arm_one(asio::posix::stream_descriptor& d, Wait w, asio::posix::descriptor_base::wait_type type) {
    if (armed_[w]) return;
    armed_[w] = true;
    d.async_wait(type, asio::bind_executor(ex_, [self = shared_from_this(), w](const boost::system::error_code& ec) {
                     self->armed_[w] = false;
                     if (ec != asio::error::operation_aborted) self->kick();
                 }));
}

void Connection::arm() {
    if (cfd_) {
        arm_one(*cfd_, c_read, asio::posix::descriptor_base::wait_read);
        if (srv_ && write_pending(srv_.get())) arm_one(*cfd_, c_write, asio::posix::descriptor_base::wait_write);
    }
    if (bfd_) {
        arm_one(*bfd_, b_read, asio::posix::descriptor_base::wait_read);
        if (be_ && write_pending(be_.get())) arm_one(*bfd_, b_write, asio::posix::descriptor_base::wait_write);
    }
}

/// A level-triggered look at both sockets after arming: data that arrived before the waits were
/// armed (and that libssh has not read yet) must not wait for a next edge that may never come.
bool Connection::ready_now() {
    pollfd p[2]{};
    nfds_t n = 0;
    if (cfd_) {
        p[n].fd = cfd_->native_handle();
        p[n].events = static_cast<short>(POLLIN | (write_pending(srv_.get()) ? POLLOUT : 0));
        ++n;
    }
    if (bfd_ && be_) {
        p[n].fd = bfd_->native_handle();
        p[n].events = static_cast<short>(POLLIN | (write_pending(be_.get()) ? POLLOUT : 0));
        ++n;
    }
    if (n == 0 || ::poll(p, n, 0) <= 0) return false;
    for (nfds_t i = 0; i < n; ++i) {
        if (p[i].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)) return true;
    }
    return false;
}

/// Suspends until a socket is ready, a kick or `until`. A socket that stays ready while passes make
/// no progress (libssh holding something back) gets a short sleep instead of a busy loop.
asio::awaitable<void> Connection::wait(steady::time_point until) {
    arm();
    const bool ready = !kicked_ && ready_now();
    if (!kicked_ && (!ready || ++ready_spins_ > 4)) {
        if (ready) until = std::min(until, steady::now() + 2ms);
        wake_.expires_at(until);
        (void)co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    kicked_ = false;
}

/// Lets libssh read and write whatever its sockets have (incoming packets end up in channel
/// buffers bounded by the windows we advertise). True if it processed anything.
bool Connection::pump_sessions() {
    const bool client = srv_ev_.pump(srv_.get());
    const bool backend = be_ev_.pump(be_.get());
    return client || backend;
}

/// Flushes what libssh still holds for either socket, and forgets the unflushed counts of a socket
/// that took everything.
void Connection::flush_sessions() {
    if (srv_ && write_pending(srv_.get())) (void)ssh_blocking_flush(srv_.get(), 0);
    if (srv_ && !write_pending(srv_.get())) c_unflushed_ = 0;
    if (be_ && be_state_ != Be::connecting) {
        if (write_pending(be_.get())) (void)ssh_blocking_flush(be_.get(), 0);
        if (!write_pending(be_.get())) b_unflushed_ = 0;
    }
}

}  // namespace gg::proxy::ssh
