// Cancel requests: the registry that maps the BackendKeyData glassgate gave each client to the
// backend's own, and the forwarding of a client's CancelRequest to the backend it names.

#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

#include "client_session.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/postgres/codec.hpp"

namespace gg::proxy::postgres {

std::uint32_t CancelRegistry::add(Target t) {
    std::lock_guard lk(mu_);
    const auto pid = t.backend_pid;
    std::uint32_t key = 0;
    for (bool taken = true; taken;) {
        auto r = crypto::random_bytes(4);
        std::memcpy(&key, r.data(), 4);
        taken = false;
        for (auto [it, end] = entries_.equal_range(pid); it != end; ++it) taken = taken || it->second.key == key;
    }
    entries_.emplace(pid, Entry{key, std::move(t)});
    return key;
}

void CancelRegistry::remove(std::int32_t pid, std::uint32_t key) {
    std::lock_guard lk(mu_);
    for (auto [it, end] = entries_.equal_range(pid); it != end; ++it) {
        if (it->second.key == key) {
            entries_.erase(it);
            return;
        }
    }
}

std::optional<CancelRegistry::Target> CancelRegistry::find(std::int32_t pid, std::uint32_t key) const {
    std::lock_guard lk(mu_);
    std::optional<Target> found;
    // Every entry of the pid is compared in constant time, so timing tells nothing about the key.
    for (auto [it, end] = entries_.equal_range(pid); it != end; ++it) {
        const std::uint32_t want = it->second.key;
        if (crypto::constant_time_equal(ByteView(reinterpret_cast<const std::byte*>(&want), 4),
                                        ByteView(reinterpret_cast<const std::byte*>(&key), 4))) {
            found = it->second.target;
        }
    }
    return found;
}

std::set<int> CancelRegistry::backend_pids() const {
    std::lock_guard lk(mu_);
    std::set<int> out;
    for (const auto& [pid, e] : entries_) out.insert(e.target.backend_pid);
    return out;
}

asio::awaitable<void> forward_cancel(Services& svc, const std::string& peer, std::int32_t pid, std::uint32_t key) {
    auto t = svc.cancels.find(pid, key);
    if (!t) {
        svc.metrics.inc("glassgate_cancel_requests_total", {{"outcome", "no_match"}});
        spdlog::info("postgres {}: cancel request for an unknown session or with a wrong key: ignored", peer);
        co_return;
    }
    svc.metrics.inc("glassgate_cancel_requests_total", {{"outcome", "forwarded"}});
    tcp::socket s(co_await asio::this_coro::executor);
    auto [ec] = co_await s.async_connect(t->backend, use_tuple);
    if (ec) {
        spdlog::warn("postgres: cannot forward cancel for session {}: {}", t->session_id, ec.message());
        co_return;
    }
    const auto msg = pg::cancel_request(t->backend_pid, t->backend_key);
    (void)co_await asio::async_write(s, asio::buffer(msg), use_tuple);
    spdlog::info("postgres {}: cancel request forwarded for session {}", peer, t->session_id);
}

}  // namespace gg::proxy::postgres
