// Loopback networking helpers for tests: free ports, connect probes and a tiny HTTP/1.1 GET.
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
