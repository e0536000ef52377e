// Loopback networking helpers for tests: free ports, listeners for fake servers, connect probes and a
// tiny HTTP/1.1 client.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gg::harness {

/// A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, close). Another process
/// may take it before the caller binds it: start_server() retries on that race. Throws std::system_error.
[[nodiscard]] std::uint16_t free_port();

/// A TCP socket listening on 127.0.0.1 at a port the kernel chose (bind to port 0), for the fake servers
/// of tests and for a port that must be in use. The socket is close-on-exec and closed on destruction.
class LoopbackListener {
 public:
    /// Throws std::system_error when the socket cannot be made, bound or put to listen.
    explicit LoopbackListener(int backlog = 16);
    ~LoopbackListener();
    LoopbackListener(const LoopbackListener&) = delete;
    LoopbackListener& operator=(const LoopbackListener&) = delete;

    /// The listening descriptor (for accept()); -1 after close().
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    /// Closes the socket now (the port is free again). Idempotent.
    void close() noexcept;

 private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

/// A blocking TCP connection to 127.0.0.1:port, or -1 when it is refused. The caller closes it.
[[nodiscard]] int connect_loopback(std::uint16_t port);

/// True when a TCP connection to host:port is accepted within `timeout` (then closed at once).
[[nodiscard]] bool can_connect(const std::string& host, std::uint16_t port,
                               std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

struct HttpResponse {
    int status = 0;
    std::string content_type{};
    std::string body{};  ///< de-chunked
};

/// One HTTP/1.1 request to http://host:port<target> with Connection: close; `body` is sent with
/// `content_type` when not empty. Empty on connection or parse failure or timeout.
[[nodiscard]] std::optional<HttpResponse> http_request(std::string_view method, const std::string& host,
                                                       std::uint16_t port, std::string_view target,
                                                       std::string_view body = {},
                                                       std::string_view content_type = {},
                                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// GET http://host:port<target>.
[[nodiscard]] std::optional<HttpResponse> http_get(const std::string& host, std::uint16_t port,
                                                   std::string_view target,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// POST an application/x-www-form-urlencoded body made of `fields` (names and values percent-encoded).
[[nodiscard]] std::optional<HttpResponse> http_post_form(
    const std::string& host, std::uint16_t port, std::string_view target,
    const std::vector<std::pair<std::string, std::string>>& fields,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace gg::harness
