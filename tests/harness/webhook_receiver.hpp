#pragma once
// A webhook receiver for tests: a loopback HTTP server that answers 200 to every request and keeps the
// JSON bodies in arrival order (glassgate's alert webhooks post one JSON object per event). It can
// also answer 503 and keep nothing (set_failing), or be started on a port chosen before (a receiver
// that was down and comes back at the same URL).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "harness/process.hpp"

namespace gg::harness {

/// A loopback HTTP server that answers 200 to every request and keeps the bodies, in arrival order.
class WebhookReceiver {
public:
    /// On a free port, or on `port` (0 = any).
    explicit WebhookReceiver(std::uint16_t port = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw PeerError("webhook receiver: cannot bind");
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        if (::listen(fd_, 64) != 0) throw PeerError("webhook receiver: cannot listen");
        thread_ = std::thread([this] { loop(); });
    }
    ~WebhookReceiver() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    /// While true, every request is answered 503 and not kept (a receiver that is failing).
    void set_failing(bool failing) { failing_ = failing; }
    /// Requests answered 503 so far.
    [[nodiscard]] int refused() const { return refused_; }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
    [[nodiscard]] std::vector<boost::json::object> events() const {
        std::lock_guard lk(mu_);
        return events_;
    }
    [[nodiscard]] std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& e : events()) out.emplace_back(e.at("event").as_string());
        return out;
    }

private:
    void loop() {
        while (!stop_) {
            int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            std::string req;
            char buf[4096];
            std::size_t need = std::string::npos;
            for (;;) {
                auto n = ::read(c, buf, sizeof buf);
                if (n <= 0) break;
                req.append(buf, static_cast<std::size_t>(n));
                auto hdr_end = req.find("\r\n\r\n");
                if (hdr_end != std::string::npos && need == std::string::npos) {
                    auto cl = req.find("Content-Length: ");
                    if (cl == std::string::npos) cl = req.find("content-length: ");
                    std::size_t body = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
                    need = hdr_end + 4 + body;
                }
                if (need != std::string::npos && req.size() >= need) break;
            }
            const bool failing = failing_;
            const std::string answer = failing
                                           ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                                           : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            (void)!::write(c, answer.data(), answer.size());
            ::close(c);
            if (failing) {
                ++refused_;
                continue;
            }
            auto at = req.find("\r\n\r\n");
            if (at == std::string::npos) continue;
            boost::system::error_code ec;
            auto v = boost::json::parse(req.substr(at + 4), ec);
            if (!ec && v.is_object()) {
                std::lock_guard lk(mu_);
                events_.push_back(v.as_object());
            }
        }
    }
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<bool> failing_{false};
    std::atomic<int> refused_{0};
    std::thread thread_;
    mutable std::mutex mu_;
    std::vector<boost::json::object> events_;
};

}  // namespace gg::harness
