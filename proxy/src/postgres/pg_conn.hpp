#pragma once
// Private to the PostgreSQL path: a connection that is plain TCP until it is upgraded to TLS, an
// async lock for serialising writes, and small helpers.
//
// TLS runs OpenSSL over the connection's own buffers (a BIO that reads ciphertext the socket
// delivered and collects ciphertext to send) instead of asio::ssl::stream: one socket read per
// batch of records, writes that complete without suspending when the socket takes them, and no
// composed-operation machinery per record.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "glassgate/protocols/bytes.hpp"

namespace gg::proxy::postgres {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
inline constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

/// A mutex for coroutines on one strand (writes to one socket from two coroutines).
class AsyncLock {
public:
    explicit AsyncLock(const asio::any_io_executor& ex) : timer_(ex) {}
    /// Takes the lock if it is free (no suspension): the common, uncontended case.
    bool try_lock() noexcept {
        if (held_) return false;
        held_ = true;
        return true;
    }
    asio::awaitable<void> lock() {
        while (held_) {
            ++waiters_;
            timer_.expires_at(asio::steady_timer::time_point::max());
            co_await timer_.async_wait(use_tuple);
            --waiters_;
        }
        held_ = true;
    }
    void unlock() {
        held_ = false;
        if (waiters_ > 0) timer_.cancel();
    }

private:
    asio::steady_timer timer_;
    bool held_ = false;
    int waiters_ = 0;
};

/// TCP, optionally upgraded to TLS in place (PostgreSQL negotiates TLS after a plaintext request).
/// One reader and one writer at a time (callers serialise their writes); not movable (OpenSSL's
/// BIO points at it).
class Conn {
public:
    Conn(tcp::socket s, std::shared_ptr<asio::ssl::context> ctx);
    ~Conn();
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    tcp::socket& socket() noexcept { return sock_; }
    [[nodiscard]] bool tls() const noexcept { return tls_; }
    /// The OpenSSL session for this connection (made on first use), for settings before handshake().
    SSL* ssl();

    /// Runs the TLS handshake as server or client. `already` holds bytes of the handshake that were
    /// read from the socket before (direct TLS). Returns an error message, empty on success.
    asio::awaitable<std::string> handshake(bool server, ByteView already = {});

    asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(asio::mutable_buffer b);
    asio::awaitable<boost::system::error_code> write(asio::const_buffer b);
    /// Writes `b` without suspending when the socket takes all of it (the common case) and returns
    /// true. Otherwise the rest is queued in the connection and the caller must co_await flush()
    /// before its next write (ec set: the connection failed). For small writes; write() for any size.
    bool write_now(asio::const_buffer b, boost::system::error_code& ec);
    /// Sends whatever is queued until it is all on the socket.
    asio::awaitable<boost::system::error_code> flush();
    /// Closes the TCP socket at once: pending operations complete with an error.
    void close() noexcept;
    /// Nothing buffered, nothing to send, and the socket neither readable nor closed by the peer
    /// (checked without waiting): an idle connection that can be used again.
    [[nodiscard]] bool idle() noexcept;

private:
    friend struct ConnBio;
    /// Sends `b` without suspending as far as the socket takes it, then asynchronously.
    asio::awaitable<boost::system::error_code> send_all(asio::const_buffer b);
    /// Reads more ciphertext into in_; false at end of stream or on error (ec set unless EOF).
    asio::awaitable<bool> fill(boost::system::error_code& ec);
    std::string tls_error(int ret, const char* during);

    tcp::socket sock_;
    std::shared_ptr<asio::ssl::context> ctx_;
    SSL* ssl_ = nullptr;
    bool tls_ = false;
    // Ciphertext received and not yet taken by OpenSSL: in_[in_at_, in_len_).
    Bytes in_;
    std::size_t in_at_ = 0, in_len_ = 0;
    bool in_eof_ = false;
    // Bytes to send (ciphertext, or plaintext queued by write_now); sending_ is the buffer on the wire.
    Bytes out_, sending_;
    AsyncLock send_lock_;
};

}  // namespace gg::proxy::postgres
