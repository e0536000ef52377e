#include "glassgate/proxy/http/client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>

#include <cctype>
#include <charconv>
#include <future>

namespace gg::proxy::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool is_unreserved(unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~'; }

HttpError err(ErrorKind k, std::string m) { return {k, std::move(m)}; }

std::string host_port(const Url& u) {
    std::string h = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    return h + ":" + std::to_string(u.port);
}

/// Error from a failed read/write/handshake, classified.
HttpError classify(const boost::system::error_code& ec, const Url& u, std::string_view what) {
    if (ec == beast::error::timeout) return err(ErrorKind::timeout, std::string(what) + " " + host_port(u) + ": timed out");
    if (ec == bhttp::error::body_limit) return err(ErrorKind::too_large, "response from " + host_port(u) + " exceeds the size limit");
    if (ec.category() == asio::error::get_ssl_category() || ec == asio::ssl::error::stream_truncated) {
        return err(ErrorKind::tls, std::string(what) + " " + host_port(u) + ": TLS: " + ec.message());
    }
    return err(ErrorKind::protocol, std::string(what) + " " + host_port(u) + ": " + ec.message());
}

struct Deadline {
    Clock::time_point end;
    [[nodiscard]] std::chrono::milliseconds left() const {
        auto d = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
        return d.count() > 0 ? d : std::chrono::milliseconds(1);
    }
    [[nodiscard]] bool passed() const { return Clock::now() >= end; }
};

template <typename Stream>
asio::awaitable<Result> exchange(Stream& stream, beast::tcp_stream& tcp_layer, const Url& u, const Request& req,
                                 const ClientOptions& opts, const Deadline& dl) {
    bhttp::request<bhttp::string_body> r{bhttp::string_to_verb(req.method), u.target, 11};
    if (r.method() == bhttp::verb::unknown) co_return Result{{}, err(ErrorKind::bad_url, "unknown HTTP method " + req.method)};
    const bool default_port = (u.scheme == "https" && u.port == 443) || (u.scheme == "http" && u.port == 80);
    r.set(bhttp::field::host, default_port ? (u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host) : host_port(u));
    r.set(bhttp::field::user_agent, opts.user_agent);
    r.set(bhttp::field::accept, "application/json");
    r.set(bhttp::field::connection, "close");
    for (const auto& [k, v] : req.headers) r.set(k, v);
    if (!req.body.empty() || r.method() == bhttp::verb::post) {
        if (!req.content_type.empty()) r.set(bhttp::field::content_type, req.content_type);
        r.body() = req.body;
        r.prepare_payload();
    }
    tcp_layer.expires_after(dl.left());
    auto [wec, wn] = co_await bhttp::async_write(stream, r, use_tuple);
    (void)wn;
    if (wec) co_return Result{{}, classify(wec, u, "send to")};

    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(opts.max_body);
    parser.header_limit(16 * 1024);
    tcp_layer.expires_after(dl.left());
    auto [rec, rn] = co_await bhttp::async_read(stream, buf, parser, use_tuple);
    (void)rn;
    if (rec) co_return Result{{}, classify(rec, u, "read from")};
    auto& res = parser.get();
    Response out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    out.content_type = std::string(res[bhttp::field::content_type]);
    out.url = u.to_string();
    out.location = std::string(res[bhttp::field::location]);
    co_return Result{std::move(out), {}};
}

/// One request to one URL (no redirect handling).
asio::awaitable<Result> fetch_once(const Url& u, const Request& req, const ClientOptions& opts, const Deadline& dl) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    auto [rec, endpoints] = co_await resolver.async_resolve(u.host, std::to_string(u.port), use_tuple);
    if (rec) co_return Result{{}, err(ErrorKind::resolve, "resolve " + u.host + ": " + rec.message())};

    beast::tcp_stream tcp_layer(ex);
    tcp_layer.expires_after(std::min(opts.connect_timeout, dl.left()));
    auto [cec, ep] = co_await tcp_layer.async_connect(endpoints, use_tuple);
    (void)ep;
    if (cec) {
        if (cec == beast::error::timeout) co_return Result{{}, err(ErrorKind::timeout, "connect " + host_port(u) + ": timed out")};
        if (cec == asio::error::connection_refused) {
            co_return Result{{}, err(ErrorKind::connect_refused, "connect " + host_port(u) + ": connection refused")};
        }
        co_return Result{{}, err(ErrorKind::connect, "connect " + host_port(u) + ": " + cec.message())};
    }
    boost::system::error_code ignore;
    tcp_layer.socket().set_option(tcp::no_delay(true), ignore);

    if (u.scheme == "http") {
        auto r = co_await exchange(tcp_layer, tcp_layer, u, req, opts, dl);
        tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ignore);
        co_return r;
    }

    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    ctx.set_default_verify_paths(ignore);
    if (opts.ca_file) {
        boost::system::error_code caec;
        ctx.load_verify_file(opts.ca_file->string(), caec);
        if (caec) co_return Result{{}, err(ErrorKind::tls, "cannot load CA file " + opts.ca_file->string() + ": " + caec.message())};
    }
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> tls(std::move(tcp_layer), ctx);
    if (!SSL_set_tlsext_host_name(tls.native_handle(), u.host.c_str())) {
        co_return Result{{}, err(ErrorKind::tls, "cannot set TLS server name " + u.host)};
    }
    tls.set_verify_callback(asio::ssl::host_name_verification(u.host));
    beast::get_lowest_layer(tls).expires_after(dl.left());
    auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (hec) {
        if (hec == beast::error::timeout) co_return Result{{}, err(ErrorKind::timeout, "TLS handshake with " + host_port(u) + ": timed out")};
        co_return Result{{}, err(ErrorKind::tls, "TLS handshake with " + host_port(u) + ": " + hec.message())};
    }
    auto r = co_await exchange(tls, beast::get_lowest_layer(tls), u, req, opts, dl);
    beast::get_lowest_layer(tls).expires_after(std::chrono::milliseconds(500));
    co_await tls.async_shutdown(use_tuple);
    co_return r;
}

}  // namespace

std::string_view to_string(ErrorKind k) noexcept {
    switch (k) {
        case ErrorKind::bad_url: return "bad_url";
        case ErrorKind::resolve: return "resolve";
        case ErrorKind::connect_refused: return "connect_refused";
        case ErrorKind::connect: return "connect";
        case ErrorKind::timeout: return "timeout";
        case ErrorKind::tls: return "tls";
        case ErrorKind::protocol: return "protocol";
        case ErrorKind::too_large: return "too_large";
        case ErrorKind::redirect: return "redirect";
    }
    return "unknown";
}

std::optional<Url> Url::parse(std::string_view s) {
    Url u;
    auto sep = s.find("://");
    if (sep == std::string_view::npos) return std::nullopt;
    u.scheme = std::string(s.substr(0, sep));
    for (auto& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (u.scheme != "http" && u.scheme != "https") return std::nullopt;
    auto rest = s.substr(sep + 3);
    auto path_at = rest.find_first_of("/?#");
    auto authority = rest.substr(0, path_at);
    u.target = path_at == std::string_view::npos ? "/" : std::string(rest.substr(path_at));
    if (auto h = u.target.find('#'); h != std::string::npos) u.target.erase(h);
    if (u.target.empty() || u.target[0] == '?') u.target.insert(0, "/");
    if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
    std::string_view port_s;
    if (authority[0] == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        u.host = std::string(authority.substr(1, close - 1));
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return std::nullopt;
            port_s = after.substr(1);
        }
    } else {
        auto colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_s = authority.substr(colon + 1);
    }
    if (u.host.empty()) return std::nullopt;
    for (char c : u.target) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;  // no spaces/CR/LF
    }
    if (port_s.empty()) {
        u.port = u.scheme == "https" ? 443 : 80;
    } else {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), v);
        if (ec != std::errc() || p != port_s.data() + port_s.size() || v == 0 || v > 65535) return std::nullopt;
        u.port = static_cast<std::uint16_t>(v);
    }
    return u;
}

std::string Url::to_string() const {
    const bool def = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return scheme + "://" + h + (def ? "" : ":" + std::to_string(port)) + target;
}

std::optional<Url> Url::resolve(std::string_view location) const {
    if (location.find("://") != std::string_view::npos) return parse(location);
    if (location.starts_with("//")) return parse(scheme + ":" + std::string(location));
    Url u = *this;
    if (location.starts_with("/")) {
        u.target = std::string(location);
    } else {
        auto slash = target.rfind('/', target.find('?'));
        u.target = target.substr(0, slash == std::string::npos ? 0 : slash + 1) + std::string(location);
    }
    return parse(u.to_string());
}

asio::awaitable<Result> fetch(Request req, ClientOptions opts) {
    Deadline dl{Clock::now() + opts.timeout};
    auto url = Url::parse(req.url);
    if (!url) co_return Result{{}, err(ErrorKind::bad_url, "not an absolute http(s) URL: " + req.url.substr(0, 200))};
    for (int hop = 0;; ++hop) {
        auto r = co_await fetch_once(*url, req, opts, dl);
        if (!r.ok()) co_return r;
        auto& res = *r.response;
        const std::string location = res.location;
        const bool redirect = res.status == 301 || res.status == 302 || res.status == 303 || res.status == 307 ||
                              res.status == 308;
        if (!redirect || location.empty()) co_return r;
        if (hop >= opts.max_redirects) {
            co_return Result{{}, err(ErrorKind::redirect, "more than " + std::to_string(opts.max_redirects) +
                                                             " redirects (last to " + location.substr(0, 200) + ")")};
        }
        auto next = url->resolve(location);
        if (!next) co_return Result{{}, err(ErrorKind::redirect, "redirect to an invalid URL: " + location.substr(0, 200))};
        if (url->scheme == "https" && next->scheme != "https") {
            co_return Result{{}, err(ErrorKind::redirect, "refusing redirect from https to " + next->to_string())};
        }
        if (res.status == 303 || ((res.status == 301 || res.status == 302) && req.method == "POST")) {
            req.method = "GET";
            req.body.clear();
            req.content_type.clear();
        }
        url = next;
        if (dl.passed()) co_return Result{{}, err(ErrorKind::timeout, "deadline passed while following redirects")};
    }
}

Request get_request(std::string url) {
    Request r;
    r.url = std::move(url);
    return r;
}

Request post_form_request(std::string url, std::string body) {
    Request r;
    r.method = "POST";
    r.url = std::move(url);
    r.body = std::move(body);
    r.content_type = "application/x-www-form-urlencoded";
    return r;
}

Result fetch_blocking(Request req, const ClientOptions& opts) {
    asio::io_context io;
    auto fut = asio::co_spawn(io, fetch(std::move(req), opts), asio::use_future);
    io.run();
    return fut.get();
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    auto enc = [&](std::string_view s) {
        for (unsigned char c : s) {
            if (is_unreserved(c)) {
                out.push_back(static_cast<char>(c));
            } else if (c == ' ') {
                out.push_back('+');
            } else {
                out.push_back('%');
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 0xF]);
            }
        }
    };
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out.push_back('&');
        enc(fields[i].first);
        out.push_back('=');
        enc(fields[i].second);
    }
    return out;
}

}  // namespace gg::proxy::http
