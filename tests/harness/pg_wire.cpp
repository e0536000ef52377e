#include "harness/pg_wire.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <optional>
#include <utility>

namespace gg::harness {
namespace {

bool read_exact(int fd, char* p, std::size_t n) {
    while (n > 0) {
        const auto r = ::read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

std::uint32_t u32(const char* p) {
    return (std::uint32_t{static_cast<unsigned char>(p[0])} << 24) | (std::uint32_t{static_cast<unsigned char>(p[1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(p[2])} << 8) | std::uint32_t{static_cast<unsigned char>(p[3])};
}

/// One regular message: type byte and body; nullopt at EOF, on a read timeout or a length out of range.
std::optional<std::pair<char, std::string>> read_message(int fd) {
    char hdr[5];
    if (!read_exact(fd, hdr, 5)) return std::nullopt;
    const auto len = u32(hdr + 1);
    if (len < 4 || len > (1u << 20)) return std::nullopt;
    std::string body(len - 4, '\0');
    if (!read_exact(fd, body.data(), body.size())) return std::nullopt;
    return std::pair{hdr[0], body};
}

std::string param(const std::string& k, const std::string& v) { return wire('S', k + '\0' + v + '\0'); }

void write_all(int fd, const std::string& s) { (void)!::write(fd, s.data(), s.size()); }

}  // namespace

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string be16(std::uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }

std::string wire(char type, const std::string& body) {
    return std::string(1, type) + be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

ScriptedPgBackend::ScriptedPgBackend(std::vector<std::string> replies) : replies_(std::move(replies)) {
    thread_ = std::thread([this] { serve(); });
}

ScriptedPgBackend::~ScriptedPgBackend() {
    stop_ = true;
    thread_.join();
}

std::string ScriptedPgBackend::password_seen() const {
    std::lock_guard lk(mu_);
    return password_;
}

void ScriptedPgBackend::serve() {
    for (std::size_t n = 0; !stop_;) {
        pollfd p{listener_.fd(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const int c = ::accept(listener_.fd(), nullptr, nullptr);
        if (c < 0) continue;
        timeval tv{10, 0};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        talk(c, replies_[n++ % replies_.size()]);
        ::close(c);
    }
}

void ScriptedPgBackend::talk(int c, const std::string& reply) {
    // Startup packet: Int32 length (itself included) | Int32 version | parameters.
    char hdr[4];
    if (!read_exact(c, hdr, 4)) return;
    const auto len = u32(hdr);
    if (len < 8 || len > 10000) return;
    std::string rest(len - 4, '\0');
    if (!read_exact(c, rest.data(), rest.size())) return;
    write_all(c, wire('R', be32(3)));  // AuthenticationCleartextPassword
    auto pw = read_message(c);
    if (!pw || pw->first != 'p') return;
    {
        std::lock_guard lk(mu_);
        password_ = pw->second.substr(0, pw->second.find('\0'));
    }
    write_all(c, wire('R', be32(0)) + param("server_version", "15.0") + param("server_encoding", "UTF8") +
                     param("client_encoding", "UTF8") + param("DateStyle", "ISO, MDY") + param("integer_datetimes", "on") +
                     param("standard_conforming_strings", "on") + wire('K', be32(4242) + be32(0x12345678)) +
                     wire('Z', "I"));
    auto q = read_message(c);
    if (!q || q->first != 'Q') return;
    ++queries_;
    write_all(c, reply);
    // Wait for the proxy to hang up (it must not keep a session on a broken stream).
    while (read_message(c)) {
    }
}

}  // namespace gg::harness
