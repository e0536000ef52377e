// Cancel requests: the registry that maps the BackendKeyData glassgate gave each client to the
// backend's own, and the forwarding of a client's CancelRequest to the backend it names.

#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

#include "client_session.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/proxy/cluster/instances.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdlib>
#include <tuple>

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

std::string cancel_tag(const Bytes& tag_key, std::int32_t pid, std::uint32_t key) {
    std::uint8_t b[8];
    const auto p = static_cast<std::uint32_t>(pid);
    for (int i = 0; i < 4; ++i) {
        b[i] = static_cast<std::uint8_t>(p >> (24 - 8 * i));
        b[4 + i] = static_cast<std::uint8_t>(key >> (24 - 8 * i));
    }
    const auto d = crypto::hmac_sha256(tag_key, ByteView(reinterpret_cast<const std::byte*>(b), sizeof b));
    return to_hex(ByteView(d.data(), 16));
}

void publish_cancel_key(Services& svc, std::int32_t pid, std::uint32_t key) {
    if (!svc.cross_instance) return;
    asio::post(svc.cross_instance->writes, [&svc, tag = cancel_tag(svc.cross_instance->tag_key, pid, key)] {
        try {
            svc.store.put(cancel_namespace, tag, svc.cross_instance->instance);
        } catch (const std::exception& e) {
            spdlog::warn("postgres: cannot publish a cancel key in the state store (a cancel request through another "
                         "instance will not reach this session): {}", e.what());
        }
    });
}

void withdraw_cancel_key(Services& svc, std::int32_t pid, std::uint32_t key) {
    if (!svc.cross_instance) return;
    asio::post(svc.cross_instance->writes, [&svc, tag = cancel_tag(svc.cross_instance->tag_key, pid, key)] {
        try {
            (void)svc.store.erase(cancel_namespace, tag);
        } catch (const std::exception& e) {
            spdlog::warn("postgres: cannot remove a cancel key from the state store: {}", e.what());
        }
    });
}

void forget_cancel_keys(StateStore& store, const std::string& instance) {
    for (const auto& [tag, owner] : store.list(cancel_namespace)) {
        if (owner == instance) (void)store.erase(cancel_namespace, tag);
    }
}

namespace {

/// Where another instance's session lives: its PostgreSQL listener, from the store (nothing: no such
/// key anywhere, or it is this instance's own stale entry).
asio::awaitable<std::optional<std::pair<std::string, std::string>>> find_carrier(Services& svc, std::int32_t pid,
                                                                                  std::uint32_t key) {
    auto lookup = [&svc, tag = cancel_tag(svc.cross_instance->tag_key, pid, key)]()
        -> asio::awaitable<std::optional<std::pair<std::string, std::string>>> {
        auto owner = svc.store.get(cancel_namespace, tag);
        if (!owner || *owner == svc.cross_instance->instance) co_return std::nullopt;
        auto entry = svc.store.get(cluster::instances_namespace, *owner);
        auto info = entry ? cluster::instance_from_json(*entry) : std::nullopt;
        if (!info || info->postgres_listen.empty()) co_return std::nullopt;
        co_return std::make_pair(*owner, info->postgres_listen);
    };
    co_return co_await asio::co_spawn(svc.blocking->get_executor(), lookup(), asio::use_awaitable);
}

}  // namespace

asio::awaitable<void> forward_cancel(Services& svc, const std::string& peer, std::int32_t pid, std::uint32_t key) {
    auto t = svc.cancels.find(pid, key);
    if (!t && svc.cross_instance) {
        std::optional<std::pair<std::string, std::string>> carrier;
        try {
            carrier = co_await find_carrier(svc, pid, key);
        } catch (const std::exception& e) {
            spdlog::warn("postgres {}: cancel request not matched here, and the state store cannot be asked: {}", peer,
                         e.what());
        }
        if (carrier) {
            const auto& [instance, listen] = *carrier;
            const auto colon = listen.rfind(':');
            auto host = listen.substr(0, colon);
            if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
            const auto ex = co_await asio::this_coro::executor;
            tcp::resolver resolver(ex);
            auto [ec, endpoints] = co_await resolver.async_resolve(host, listen.substr(colon + 1), use_tuple);
            tcp::socket s(ex);
            if (!ec) {
                tcp::endpoint ep;
                std::tie(ec, ep) = co_await asio::async_connect(s, endpoints, use_tuple);
            }
            if (ec) {
                svc.metrics.inc("glassgate_cancel_requests_total", {{"outcome", "relay_failed"}});
                spdlog::warn("postgres {}: cannot relay a cancel request to instance {} at {}: {}", peer, instance, listen,
                             ec.message());
                co_return;
            }
            const auto msg = pg::cancel_request(pid, key);
            (void)co_await asio::async_write(s, asio::buffer(msg), use_tuple);
            svc.metrics.inc("glassgate_cancel_requests_total", {{"outcome", "relayed"}});
            spdlog::info("postgres {}: cancel request relayed to instance {}, which carries the session", peer, instance);
            co_return;
        }
    }
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
