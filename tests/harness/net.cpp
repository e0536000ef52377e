#include "harness/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <system_error>

namespace gg::harness {
namespace {

using Clock = std::chrono::steady_clock;

/// Closes a descriptor at scope exit.
class Fd {
 public:
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const noexcept { return fd_; }

 private:
    int fd_;
};

std::optional<sockaddr_in> ipv4(const std::string& host, std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1) {
        return std::nullopt;
    }
    return addr;
}

/// A connected non-blocking socket, or -1.
int connect_with_timeout(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
    const auto addr = ipv4(host, port);
    if (!addr) {
        return -1;
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0) {
        return fd;
    }
    if (errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
        close(fd);
        return -1;
    }
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

std::optional<std::string> dechunk(std::string_view body) {
    std::string out;
    for (;;) {
        const auto eol = body.find("\r\n");
        if (eol == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string size_text(body.substr(0, eol));
        char* end = nullptr;
        const unsigned long size = std::strtoul(size_text.c_str(), &end, 16);
        if (end == size_text.c_str()) {
            return std::nullopt;
        }
        body.remove_prefix(eol + 2);
        if (size == 0) {
            return out;
        }
        if (body.size() < size + 2) {
            return std::nullopt;
        }
        out.append(body.substr(0, size));
        body.remove_prefix(size + 2);
    }
}

}  // namespace

std::uint16_t free_port() {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw std::system_error(errno, std::generic_category(), "socket");
    }
    sockaddr_in addr = *ipv4("127.0.0.1", 0);
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::system_error(errno, std::generic_category(), "bind 127.0.0.1:0");
    }
    socklen_t len = sizeof addr;
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw std::system_error(errno, std::generic_category(), "getsockname");
    }
    return ntohs(addr.sin_port);
}

LoopbackListener::LoopbackListener(int backlog) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "socket");
    }
    sockaddr_in addr = *ipv4("127.0.0.1", 0);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, backlog) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        const int error = errno;
        close();
        throw std::system_error(error, std::generic_category(), "listen on 127.0.0.1:0");
    }
    port_ = ntohs(addr.sin_port);
}

LoopbackListener::~LoopbackListener() { close(); }

void LoopbackListener::close() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

int connect_loopback(std::uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    const sockaddr_in addr = *ipv4("127.0.0.1", port);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool can_connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
    const int fd = connect_with_timeout(host, port, timeout);
    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

std::optional<HttpResponse> http_get(const std::string& host, std::uint16_t port, std::string_view target,
                                     std::chrono::milliseconds timeout) {
    return http_request("GET", host, port, target, {}, {}, timeout);
}

std::optional<HttpResponse> http_post_form(const std::string& host, std::uint16_t port, std::string_view target,
                                           const std::vector<std::pair<std::string, std::string>>& fields,
                                           std::chrono::milliseconds timeout) {
    auto encode = [](std::string_view text) {
        static constexpr char hex[] = "0123456789ABCDEF";
        std::string out;
        for (char c : text) {
            const auto u = static_cast<unsigned char>(c);
            if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
                out += c;
            } else {
                out += '%';
                out += hex[u >> 4];
                out += hex[u & 0xf];
            }
        }
        return out;
    };
    std::string body;
    for (const auto& [name, value] : fields) {
        if (!body.empty()) {
            body += '&';
        }
        body += encode(name) + "=" + encode(value);
    }
    return http_request("POST", host, port, target, body, "application/x-www-form-urlencoded", timeout);
}

std::optional<HttpResponse> http_request(std::string_view method, const std::string& host, std::uint16_t port,
                                         std::string_view target, std::string_view body,
                                         std::string_view content_type, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    Fd fd(connect_with_timeout(host, port, timeout));
    if (fd.get() < 0) {
        return std::nullopt;
    }
    std::string request = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: " + host + ":" +
                          std::to_string(port) + "\r\nAccept: application/json\r\nConnection: close\r\n";
    if (!body.empty()) {
        request += "Content-Type: " + std::string(content_type) + "\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n";
    }
    request += "\r\n";
    request += body;
    std::size_t sent = 0;
    std::string raw;
    std::array<char, 16384> buffer{};
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        pollfd p{fd.get(), static_cast<short>(sent < request.size() ? POLLOUT : POLLIN), 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            return std::nullopt;
        }
        if (sent < request.size()) {
            const ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN) {
                return std::nullopt;
            }
            sent += n > 0 ? static_cast<std::size_t>(n) : 0;
            continue;
        }
        const ssize_t n = recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            return std::nullopt;
        }
        raw.append(buffer.data(), static_cast<std::size_t>(n));
    }

    // "HTTP/1.1 200 OK\r\n" headers "\r\n\r\n" body
    const auto head_end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || raw.size() < 12) {
        return std::nullopt;
    }
    HttpResponse response;
    response.status = std::atoi(raw.c_str() + 9);
    std::string_view headers(raw.data(), head_end);
    bool chunked = false;
    std::size_t pos = headers.find("\r\n");
    while (pos != std::string_view::npos) {
        const auto next = headers.find("\r\n", pos + 2);
        std::string line(headers.substr(pos + 2, next == std::string_view::npos ? std::string_view::npos
                                                                                 : next - pos - 2));
        for (auto& c : line) {
            if (c == ':') {
                break;
            }
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        auto value = [&] {
            auto v = line.substr(line.find(':') + 1);
            return v.erase(0, v.find_first_not_of(' '));
        };
        if (line.rfind("transfer-encoding:", 0) == 0 && value().find("chunked") != std::string::npos) {
            chunked = true;
        } else if (line.rfind("content-type:", 0) == 0) {
            response.content_type = value();
        }
        pos = next;
    }
    std::string_view payload(raw.data() + head_end + 4, raw.size() - head_end - 4);
    if (chunked) {
        auto plain = dechunk(payload);
        if (!plain) {
            return std::nullopt;
        }
        response.body = std::move(*plain);
    } else {
        response.body = std::string(payload);
    }
    return response;
}

}  // namespace gg::harness
