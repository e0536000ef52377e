#include "glassgate/proxy/ssh/auth_throttle.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "glassgate/protocols/crypto.hpp"

namespace gg::proxy::ssh {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::chrono::seconds AuthThrottle::wait_for(const std::string& source, steady::time_point now) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(source);
    if (it == entries_.end() || it->second.blocked_until <= now) return 0s;
    return std::chrono::duration_cast<std::chrono::seconds>(it->second.blocked_until - now) + 1s;
}

void AuthThrottle::failure(const std::string& source, steady::time_point now) {
    std::lock_guard lk(mu_);
    auto& e = entries_[source];
    if (now - e.last > 10min) e.failures = 0;  // an old streak is forgotten
    e.last = now;
    ++e.failures;
    if (e.failures >= max_) {
        const int extra = std::min(e.failures - max_, 8);
        const auto wait = std::min<std::chrono::seconds>(std::chrono::seconds(5) * (1 << extra), 300s);
        e.blocked_until = now + wait;
    }
    if (entries_.size() > 100000) entries_.clear();  // bounded under a distributed attack
}

void AuthThrottle::success(const std::string& source) {
    std::lock_guard lk(mu_);
    entries_.erase(source);
}

namespace {

constexpr std::string_view approval_namespace = "ssh_approval";

std::string store_key(const std::string& cache_key) {
    const auto d = crypto::sha256(as_bytes(cache_key));
    return to_hex(ByteView(d.data(), d.size()));
}

std::int64_t wall_us(steady::time_point t, steady::time_point now) {
    const auto wall = std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - now);
    return std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
}

}  // namespace

void ApprovalCache::put(const std::string& key_fingerprint, Entry e) {
    if (store_) {
        boost::json::array groups;
        for (const auto& g : e.groups) groups.emplace_back(g);
        const boost::json::object o{{"identity", e.identity},
                                    {"groups", std::move(groups)},
                                    {"expires_us", wall_us(e.expires, steady::now())}};
        try {
            store_->put(approval_namespace, store_key(key_fingerprint), boost::json::serialize(o));
        } catch (const std::exception& ex) {
            spdlog::warn("ssh: cannot share an approval through the state store (other instances will ask again): {}",
                         ex.what());
        }
    }
    std::lock_guard lk(mu_);
    entries_[key_fingerprint] = std::move(e);
    if (entries_.size() > 100000) entries_.erase(entries_.begin());
}

std::optional<ApprovalCache::Entry> ApprovalCache::find(const std::string& key_fingerprint, steady::time_point now) {
    {
        std::lock_guard lk(mu_);
        auto it = entries_.find(key_fingerprint);
        if (it != entries_.end()) {
            if (it->second.expires > now) return it->second;
            entries_.erase(it);
        }
    }
    if (!store_) return std::nullopt;
    try {
        const auto key = store_key(key_fingerprint);
        auto text = store_->get(approval_namespace, key);
        if (!text) return std::nullopt;
        boost::system::error_code ec;
        auto v = boost::json::parse(*text, ec);
        if (ec || !v.is_object()) return std::nullopt;
        const auto& o = v.as_object();
        const auto* id = o.if_contains("identity");
        const auto* exp = o.if_contains("expires_us");
        if (!id || !id->is_string() || !exp || !exp->is_int64()) return std::nullopt;
        const auto left = std::chrono::microseconds(exp->as_int64()) -
                          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch());
        if (left.count() <= 0) {
            (void)store_->erase(approval_namespace, key);
            return std::nullopt;
        }
        Entry e;
        e.identity = std::string(id->as_string());
        if (const auto* g = o.if_contains("groups"); g && g->is_array()) {
            for (const auto& x : g->as_array()) {
                if (x.is_string()) e.groups.emplace_back(x.as_string());
            }
        }
        e.expires = now + std::chrono::duration_cast<steady::duration>(left);
        std::lock_guard lk(mu_);
        entries_[key_fingerprint] = e;
        return e;
    } catch (const std::exception& ex) {
        spdlog::warn("ssh: cannot read shared approvals from the state store (a fresh sign-in is asked): {}", ex.what());
        return std::nullopt;
    }
}

}  // namespace gg::proxy::ssh
