// The HTTP client against real local servers that misbehave in the ways an IdP can.

#include <doctest/doctest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <functional>
#include <thread>

#include "glassgate/proxy/http/client.hpp"
#include "temp_dir.hpp"

using namespace gg::proxy::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

/// A loopback server answering each connection with `handler(request_text)` in its own thread.
/// With a TLS context, connections are TLS.
class TestServer {
public:
    using Handler = std::function<void(std::function<void(const std::string&)> write, const std::string& request)>;
    explicit TestServer(Handler h, asio::ssl::context* tls = nullptr) : handler_(std::move(h)), tls_(tls) {
        acceptor_.open(tcp::v4());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { loop(); });
    }
    ~TestServer() {
        stop_ = true;
        boost::system::error_code ec;
        tcp::socket s(io_);
        s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);  // wake accept()
        thread_.join();
        for (auto& t : workers_) t.join();
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] std::string url(const std::string& path = "/") const {
        return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
    }
    std::atomic<int> connections{0};

private:
    template <typename Stream>
    static std::string read_request(Stream& s) {
        std::string req;
        char buf[4096];
        boost::system::error_code ec;
        while (req.find("\r\n\r\n") == std::string::npos) {
            auto n = s.read_some(asio::buffer(buf), ec);
            if (ec) return req;
            req.append(buf, n);
        }
        return req;
    }
    void loop() {
        for (;;) {
            tcp::socket sock(io_);
            boost::system::error_code ec;
            acceptor_.accept(sock, ec);
            if (stop_ || ec) return;
            ++connections;
            workers_.emplace_back([this, s = std::move(sock)]() mutable {
                boost::system::error_code wec;
                if (tls_) {
                    asio::ssl::stream<tcp::socket> ts(std::move(s), *tls_);
                    ts.handshake(asio::ssl::stream_base::server, wec);
                    if (wec) return;
                    auto req = read_request(ts);
                    handler_([&](const std::string& d) { asio::write(ts, asio::buffer(d), wec); }, req);
                } else {
                    auto req = read_request(s);
                    handler_([&](const std::string& d) { asio::write(s, asio::buffer(d), wec); }, req);
                }
            });
        }
    }
    Handler handler_;
    asio::ssl::context* tls_;
    asio::io_context io_;
    tcp::acceptor acceptor_{io_};
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::vector<std::thread> workers_;
};

std::string response(int status, const std::string& body, const std::string& extra = "") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + extra + "Connection: close\r\n\r\n" + body;
}

ClientOptions quick() {
    ClientOptions o;
    o.connect_timeout = 1s;
    o.timeout = 2s;
    return o;
}

}  // namespace

TEST_SUITE_BEGIN("http");

TEST_CASE("URL parsing") {
    auto u = Url::parse("https://idp.example.com/realms/x?y=1#frag").value();
    CHECK(u.scheme == "https");
    CHECK(u.host == "idp.example.com");
    CHECK(u.port == 443);
    CHECK(u.target == "/realms/x?y=1");
    CHECK(Url::parse("http://[::1]:9400").value().host == "::1");
    CHECK(Url::parse("http://[::1]:9400").value().to_string() == "http://[::1]:9400/");
    CHECK(Url::parse("HTTP://h:1/a").value().to_string() == "http://h:1/a");
    CHECK_FALSE(Url::parse("ftp://h/").has_value());
    CHECK_FALSE(Url::parse("http://user:pw@h/").has_value());
    CHECK_FALSE(Url::parse("http://h:0/").has_value());
    CHECK_FALSE(Url::parse("http://h:70000/").has_value());
    CHECK_FALSE(Url::parse("http:///x").has_value());
    CHECK_FALSE(Url::parse("http://h/a b").has_value());
    CHECK_FALSE(Url::parse("/relative").has_value());
    auto base = Url::parse("http://h:1/a/b?q").value();
    CHECK(base.resolve("/c").value().to_string() == "http://h:1/c");
    CHECK(base.resolve("c").value().to_string() == "http://h:1/a/c");
    CHECK(base.resolve("https://o/x").value().to_string() == "https://o/x");
}

TEST_CASE("form encoding") {
    CHECK(form_encode({{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"}, {"a b", "x&y=z"}}) ==
          "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&a+b=x%26y%3Dz");
}

TEST_CASE("GET and POST against a real server") {
    std::string seen;
    TestServer srv([&](auto write, const std::string& req) {
        seen = req;
        write(response(200, R"({"ok":true})"));
    });
    auto r = fetch_blocking({.method = "POST", .url = srv.url("/token"), .body = "a=1",
                             .content_type = "application/x-www-form-urlencoded", .headers = {}},
                            quick());
    REQUIRE_MESSAGE(r.ok(), r.error->message);
    CHECK(r.response->status == 200);
    CHECK(r.response->body == R"({"ok":true})");
    CHECK(seen.rfind("POST /token HTTP/1.1\r\n", 0) == 0);
    CHECK(seen.find("Content-Type: application/x-www-form-urlencoded") != std::string::npos);
}

TEST_CASE("HTTP 500 is a response, not an error (the caller classifies it)") {
    TestServer srv([](auto write, const std::string&) { write(response(500, "oops")); });
    auto r = fetch_blocking({.url = srv.url()}, quick());
    REQUIRE(r.ok());
    CHECK(r.response->status == 500);
}

TEST_CASE("a 50 MiB body is cut at the cap") {
    TestServer srv([](auto write, const std::string&) {
        const std::size_t total = 50u << 20;
        write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n");
        std::string chunk(1 << 16, 'x');
        for (std::size_t sent = 0; sent < total; sent += chunk.size()) write(chunk);
    });
    auto r = fetch_blocking({.url = srv.url()}, quick());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->kind == ErrorKind::too_large);
}

TEST_CASE("a server that accepts and never answers times out") {
    TestServer srv([](auto, const std::string&) { std::this_thread::sleep_for(1500ms); });
    auto o = quick();
    o.timeout = 300ms;
    auto start = std::chrono::steady_clock::now();
    auto r = fetch_blocking({.url = srv.url()}, o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->kind == ErrorKind::timeout);
    CHECK(std::chrono::steady_clock::now() - start < 1200ms);
}

TEST_CASE("connection refused is classified") {
    std::uint16_t port;
    {
        asio::io_context io;
        tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        port = a.local_endpoint().port();
    }
    auto r = fetch_blocking({.url = "http://127.0.0.1:" + std::to_string(port) + "/"}, quick());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->kind == ErrorKind::connect_refused);
    CHECK(r.error->message.find(std::to_string(port)) != std::string::npos);
}

TEST_CASE("redirects are followed up to the limit, loops are refused") {
    TestServer target([](auto write, const std::string&) { write(response(200, "{}")); });
    TestServer hop([&](auto write, const std::string&) { write(response(302, "", "Location: " + target.url("/x") + "\r\n")); });
    auto r = fetch_blocking({.url = hop.url()}, quick());
    REQUIRE(r.ok());
    CHECK(r.response->status == 200);
    CHECK(r.response->url == target.url("/x"));

    TestServer* self = nullptr;
    TestServer loop([&](auto write, const std::string&) { write(response(301, "", "Location: " + self->url("/again") + "\r\n")); });
    self = &loop;
    auto l = fetch_blocking({.url = loop.url()}, quick());
    REQUIRE_FALSE(l.ok());
    CHECK(l.error->kind == ErrorKind::redirect);
    CHECK(loop.connections == 4);  // the first request + 3 redirects
}

TEST_CASE("HTTPS: verified with the CA file, refused without it, and the host name is checked") {
    gg::test::TempDir dir;
    auto key = dir / "k.pem";
    auto crt = dir / "c.pem";
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 "
                            "-addext subjectAltName=IP:127.0.0.1 -keyout " + key.string() + " -out " + crt.string() +
                            " 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    asio::ssl::context tls(asio::ssl::context::tls_server);
    tls.use_certificate_chain_file(crt.string());
    tls.use_private_key_file(key.string(), asio::ssl::context::pem);
    TestServer srv([](auto write, const std::string&) { write(response(200, R"({"tls":1})")); }, &tls);

    auto untrusted = fetch_blocking({.url = srv.url()}, quick());
    REQUIRE_FALSE(untrusted.ok());
    CHECK(untrusted.error->kind == ErrorKind::tls);

    auto o = quick();
    o.ca_file = crt;
    auto trusted = fetch_blocking({.url = srv.url()}, o);
    REQUIRE_MESSAGE(trusted.ok(), trusted.error->message);
    CHECK(trusted.response->body == R"({"tls":1})");

    // Same server, reached under a name the certificate does not carry.
    auto wrong = fetch_blocking({.url = "https://localhost:" + std::to_string(srv.port()) + "/"}, o);
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error->kind == ErrorKind::tls);
}

TEST_CASE("a bad URL is an error value") {
    auto r = fetch_blocking({.url = "not a url"}, quick());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->kind == ErrorKind::bad_url);
}

TEST_SUITE_END();
