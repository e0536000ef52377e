#pragma once
// A small HTTP(S) client for OIDC (discovery, JWKS, device authorization, token polling) and
// webhooks, on Boost.Beast + OpenSSL. Certificate verification is on by default (system roots, plus
// an optional CA file); every request has a connect timeout and an overall deadline; redirects are
// limited and never downgrade https to http; response bodies are capped.
//
// Failures are values (HttpError with a kind and a precise message), because callers classify
// them: the IdP health monitor counts connection refused / TLS failure / timeout / 5xx as
// evidence of an outage.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace gg::proxy::http {

struct Url {
    std::string scheme;  ///< "http" | "https"
    std::string host;    ///< without brackets for IPv6
    std::uint16_t port = 0;
    std::string target;  ///< path + query, at least "/"
    /// Parses absolute http(s) URLs; std::nullopt for anything else (userinfo is refused).
    static std::optional<Url> parse(std::string_view s);
    [[nodiscard]] std::string to_string() const;
    /// Resolves a Location header value against this URL.
    [[nodiscard]] std::optional<Url> resolve(std::string_view location) const;
};

struct ClientOptions {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{10000};  ///< overall deadline for the request, redirects included
    std::size_t max_body = 1u << 20;           ///< larger responses fail with too_large
    int max_redirects = 3;
    std::optional<std::filesystem::path> ca_file;  ///< extra trust anchors (PEM)
    std::string user_agent = "glassgate";
};

struct Request {
    std::string method = "GET";
    std::string url;
    std::string body;
    std::string content_type;  ///< e.g. "application/x-www-form-urlencoded"
    std::vector<std::pair<std::string, std::string>> headers;
};

struct Response {
    int status = 0;
    std::string body;
    std::string content_type;
    std::string url;       ///< final URL after redirects
    std::string location;  ///< Location header, if any
};

enum class ErrorKind { bad_url, resolve, connect_refused, connect, timeout, tls, protocol, too_large, redirect };
std::string_view to_string(ErrorKind k) noexcept;

struct HttpError {
    ErrorKind kind = ErrorKind::protocol;
    std::string message;  ///< "connect 127.0.0.1:9400: Connection refused"
};

struct Result {
    std::optional<Response> response;
    std::optional<HttpError> error;
    [[nodiscard]] bool ok() const noexcept { return response.has_value(); }
};

/// A GET request for `url`.
Request get_request(std::string url);
/// A POST of an application/x-www-form-urlencoded body.
Request post_form_request(std::string url, std::string body);

/// Performs one request (following redirects). Never throws for network or protocol failures.
/// Pass a named Request (`auto req = get_request(u); co_await fetch(std::move(req), o)`), not a braced
/// temporary: GCC 12 destroys braced temporaries bound to coroutine parameters twice (GCC PR 101367).
boost::asio::awaitable<Result> fetch(Request req, ClientOptions opts);

/// Runs fetch() on a private io_context and waits (for CLI commands, never on a session strand).
Result fetch_blocking(Request req, const ClientOptions& opts);

/// application/x-www-form-urlencoded body from key/value pairs.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace gg::proxy::http
