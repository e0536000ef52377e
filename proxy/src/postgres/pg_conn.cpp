#include "pg_conn.hpp"

#include <poll.h>

#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

namespace gg::proxy::postgres {

namespace {
/// Ciphertext read per socket read: two full TLS records.
constexpr std::size_t in_capacity = 2 * (16384 + 512);
}  // namespace

// OpenSSL's view of the connection's buffers: reads take ciphertext from in_, writes append to out_.
struct ConnBio {
    static int read(BIO* b, char* buf, std::size_t len, std::size_t* got) {
        auto* c = static_cast<Conn*>(BIO_get_data(b));
        BIO_clear_retry_flags(b);
        const std::size_t have = c->in_len_ - c->in_at_;
        if (have == 0) {
            if (!c->in_eof_) BIO_set_retry_read(b);
            *got = 0;
            return 0;
        }
        const std::size_t n = std::min(have, len);
        std::memcpy(buf, c->in_.data() + c->in_at_, n);
        c->in_at_ += n;
        *got = n;
        return 1;
    }
    static int write(BIO* b, const char* buf, std::size_t len, std::size_t* put) {
        auto* c = static_cast<Conn*>(BIO_get_data(b));
        BIO_clear_retry_flags(b);
        const auto* p = reinterpret_cast<const std::byte*>(buf);
        c->out_.insert(c->out_.end(), p, p + len);
        *put = len;
        return 1;
    }
    static long ctrl(BIO* b, int cmd, long, void*) {
        auto* c = static_cast<Conn*>(BIO_get_data(b));
        switch (cmd) {
            case BIO_CTRL_FLUSH:
                return 1;
            case BIO_CTRL_WPENDING:
                return static_cast<long>(c->out_.size());
            case BIO_CTRL_PENDING:
                return static_cast<long>(c->in_len_ - c->in_at_);
            case BIO_CTRL_EOF:
                return c->in_eof_ && c->in_at_ == c->in_len_ ? 1 : 0;
            default:
                return 0;
        }
    }
    static BIO_METHOD* method() {
        static BIO_METHOD* m = [] {
            BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "glassgate connection");
            BIO_meth_set_read_ex(bm, &ConnBio::read);
            BIO_meth_set_write_ex(bm, &ConnBio::write);
            BIO_meth_set_ctrl(bm, &ConnBio::ctrl);
            return bm;
        }();
        return m;
    }
};

Conn::Conn(tcp::socket s, std::shared_ptr<asio::ssl::context> ctx)
    : sock_(std::move(s)), ctx_(std::move(ctx)), send_lock_(sock_.get_executor()) {
    boost::system::error_code ec;
    // Synchronous operations return would_block instead of blocking: writes try the socket first.
    sock_.non_blocking(true, ec);
}

Conn::~Conn() {
    if (ssl_) SSL_free(ssl_);
}

SSL* Conn::ssl() {
    if (ssl_) return ssl_;
    ssl_ = SSL_new(ctx_->native_handle());
    if (!ssl_) return nullptr;
    BIO* bio = BIO_new(ConnBio::method());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);
    return ssl_;
}

std::string Conn::tls_error(int ret, const char* during) {
    const int e = SSL_get_error(ssl_, ret);
    std::string msg;
    if (const unsigned long err = ERR_get_error(); err != 0) {
        const char* reason = ERR_reason_error_string(err);
        msg = reason ? reason : "error " + std::to_string(err);
    } else if (e == SSL_ERROR_SYSCALL || in_eof_) {
        msg = "connection closed";
    } else {
        msg = "TLS error " + std::to_string(e);
    }
    if (const long v = SSL_get_verify_result(ssl_); v != X509_V_OK) {
        msg += " (";
        msg += X509_verify_cert_error_string(v);
        msg += ")";
    }
    ERR_clear_error();
    return msg + " during " + during;
}

asio::awaitable<std::string> Conn::handshake(bool server, ByteView already) {
    if (!ssl()) co_return "cannot create a TLS session";
    if (server) {
        SSL_set_accept_state(ssl_);
    } else {
        SSL_set_connect_state(ssl_);
    }
    in_.resize(std::max(in_capacity, already.size()));
    if (!already.empty()) std::memcpy(in_.data(), already.data(), already.size());
    in_at_ = 0;
    in_len_ = already.size();
    for (;;) {
        ERR_clear_error();
        const int r = SSL_do_handshake(ssl_);
        if (!out_.empty()) {
            if (auto ec = co_await flush()) co_return "sending: " + ec.message();
        }
        if (r == 1) {
            tls_ = true;
            co_return std::string();
        }
        if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) co_return tls_error(r, "the handshake");
        boost::system::error_code ec;
        if (!co_await fill(ec)) {
            if (ec) co_return "receiving: " + ec.message();
            co_return "the peer closed the connection during the handshake";
        }
    }
}

asio::awaitable<bool> Conn::fill(boost::system::error_code& ec) {
    if (in_at_ == in_len_) {
        in_at_ = in_len_ = 0;
    } else if (in_len_ == in_.size()) {
        std::memmove(in_.data(), in_.data() + in_at_, in_len_ - in_at_);
        in_len_ -= in_at_;
        in_at_ = 0;
    }
    auto [rec, n] = co_await sock_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_), use_tuple);
    if (rec == asio::error::operation_aborted) {
        ec = rec;  // cancelled (a connection kept for reuse): nothing was lost, the stream goes on
        co_return false;
    }
    if (rec || n == 0) {
        in_eof_ = true;
        if (rec != asio::error::eof) ec = rec;
        co_return false;
    }
    in_len_ += n;
    co_return true;
}

asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> Conn::read_some(asio::mutable_buffer b) {
    if (!tls_) co_return co_await sock_.async_read_some(b, use_tuple);
    auto* dst = static_cast<char*>(b.data());
    for (;;) {
        // Everything OpenSSL can decrypt from what is buffered, up to the caller's space.
        std::size_t total = 0;
        int r = 1;
        // (The error queue is kept empty: every failure below clears it, so SSL_get_error is exact.)
        while (total < b.size()) {
            std::size_t n = 0;
            r = SSL_read_ex(ssl_, dst + total, b.size() - total, &n);
            if (r != 1) break;
            total += n;
            // Another record only if one can be complete: no call that can only say "want read".
            if (SSL_pending(ssl_) == 0 && in_len_ - in_at_ < 5) break;
        }
        const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
        if (!out_.empty()) {
            // Post-handshake messages (key update answers) go out before anything else waits.
            if (auto ec = co_await flush()) co_return std::tuple{ec, std::size_t{0}};
        }
        if (total > 0) {
            if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) ERR_clear_error();
            co_return std::tuple{boost::system::error_code(), total};
        }
        if (e == SSL_ERROR_ZERO_RETURN) co_return std::tuple{boost::system::error_code(asio::error::eof), std::size_t{0}};
        if (e != SSL_ERROR_WANT_READ) {
            const unsigned long err = ERR_get_error();
            ERR_clear_error();
            if (err == 0) co_return std::tuple{boost::system::error_code(asio::ssl::error::stream_truncated), std::size_t{0}};
            co_return std::tuple{boost::system::error_code(static_cast<int>(err), asio::error::get_ssl_category()),
                                 std::size_t{0}};
        }
        boost::system::error_code ec;
        if (!co_await fill(ec)) {
            if (ec) co_return std::tuple{ec, std::size_t{0}};
            // End of stream without close_notify: the peer closed TCP (PostgreSQL clients do).
            co_return std::tuple{boost::system::error_code(asio::error::eof), std::size_t{0}};
        }
    }
}

asio::awaitable<boost::system::error_code> Conn::send_all(asio::const_buffer b) {
    boost::system::error_code ec;
    const std::size_t n = sock_.write_some(b, ec);
    if (!ec && n == b.size()) co_return ec;
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return ec;
    b += n;
    auto [wec, wn] = co_await asio::async_write(sock_, b, use_tuple);
    (void)wn;
    co_return wec;
}

asio::awaitable<boost::system::error_code> Conn::flush() {
    if (!send_lock_.try_lock()) co_await send_lock_.lock();
    boost::system::error_code ec;
    // Another sender may have taken our bytes with its own; loop until nothing is left.
    while (!out_.empty() && !ec) {
        sending_.swap(out_);
        ec = co_await send_all(asio::buffer(sending_));
        sending_.clear();
    }
    send_lock_.unlock();
    co_return ec;
}

asio::awaitable<boost::system::error_code> Conn::write(asio::const_buffer b) {
    if (!tls_) {
        if (!send_lock_.try_lock()) co_await send_lock_.lock();
        auto ec = co_await send_all(b);
        send_lock_.unlock();
        co_return ec;
    }
    // Encrypted in slices, so the ciphertext waiting to be sent stays small whatever the caller hands in.
    constexpr std::size_t slice = 256 * 1024;
    const auto* p = static_cast<const char*>(b.data());
    for (std::size_t at = 0; at < b.size();) {
        const std::size_t want = std::min(slice, b.size() - at);
        std::size_t n = 0;
        if (SSL_write_ex(ssl_, p + at, want, &n) != 1) {
            const unsigned long err = ERR_get_error();
            ERR_clear_error();
            co_return boost::system::error_code(static_cast<int>(err), asio::error::get_ssl_category());
        }
        at += n;
        if (auto ec = co_await flush()) co_return ec;
    }
    co_return boost::system::error_code();
}

bool Conn::write_now(asio::const_buffer b, boost::system::error_code& ec) {
    const auto* p = static_cast<const std::byte*>(b.data());
    std::size_t sent = 0;
    if (tls_) {
        std::size_t n = 0;
        if (b.size() > 0 && SSL_write_ex(ssl_, b.data(), b.size(), &n) != 1) {
            const unsigned long err = ERR_get_error();
            ERR_clear_error();
            ec = boost::system::error_code(static_cast<int>(err), asio::error::get_ssl_category());
            return false;
        }
        if (!send_lock_.try_lock()) return false;  // a flush is under way; it is told to go on
        sent = out_.empty() ? 0 : sock_.write_some(asio::buffer(out_), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) ec.clear();
        send_lock_.unlock();
        if (sent == out_.size()) {
            out_.clear();
            return !ec;
        }
        out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(sent));
        return false;
    }
    if (out_.empty() && send_lock_.try_lock()) {
        sent = sock_.write_some(b, ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) ec.clear();
        send_lock_.unlock();
        if (ec) return false;
        if (sent == b.size()) return true;
    }
    out_.insert(out_.end(), p + sent, p + b.size());
    return false;
}

void Conn::close() noexcept {
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
}

bool Conn::idle() noexcept {
    if (in_eof_ || in_at_ != in_len_ || !out_.empty() || !sock_.is_open()) return false;
    if (tls_ && SSL_pending(ssl_) > 0) return false;
    pollfd p{sock_.native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 0;
}

}  // namespace gg::proxy::postgres
