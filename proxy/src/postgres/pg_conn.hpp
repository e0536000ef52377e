#pragma once
// Private to the PostgreSQL path: a connection that is plain TCP until it is upgraded to TLS, an
// async lock for serialising writes, and small helpers.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <memory>

namespace gg::proxy::postgres {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
inline constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

/// TCP, optionally upgraded to TLS in place (PostgreSQL negotiates TLS after a plaintext request).
class Conn {
public:
    Conn(tcp::socket s, std::shared_ptr<asio::ssl::context> ctx) : ctx_(std::move(ctx)), ssl_(std::move(s), *ctx_) {}

    tcp::socket& socket() noexcept { return ssl_.next_layer(); }
    asio::ssl::stream<tcp::socket>& tls_stream() noexcept { return ssl_; }
    [[nodiscard]] bool tls() const noexcept { return tls_; }
    void set_tls() noexcept { tls_ = true; }

    asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(asio::mutable_buffer b) {
        if (tls_) co_return co_await ssl_.async_read_some(b, use_tuple);
        co_return co_await ssl_.next_layer().async_read_some(b, use_tuple);
    }
    asio::awaitable<boost::system::error_code> write(asio::const_buffer b) {
        if (tls_) {
            auto [ec, n] = co_await asio::async_write(ssl_, b, use_tuple);
            (void)n;
            co_return ec;
        }
        auto [ec, n] = co_await asio::async_write(ssl_.next_layer(), b, use_tuple);
        (void)n;
        co_return ec;
    }
    /// Closes the TCP socket at once: pending operations complete with an error.
    void close() noexcept {
        boost::system::error_code ec;
        ssl_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
        ssl_.next_layer().close(ec);
    }

private:
    std::shared_ptr<asio::ssl::context> ctx_;
    asio::ssl::stream<tcp::socket> ssl_;
    bool tls_ = false;
};

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

}  // namespace gg::proxy::postgres
