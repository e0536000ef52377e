#include "glassgate/proxy/ssh/auth_throttle.hpp"

#include <algorithm>

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

void ApprovalCache::put(const std::string& key_fingerprint, Entry e) {
    std::lock_guard lk(mu_);
    entries_[key_fingerprint] = std::move(e);
    if (entries_.size() > 100000) entries_.erase(entries_.begin());
}

std::optional<ApprovalCache::Entry> ApprovalCache::find(const std::string& key_fingerprint, steady::time_point now) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(key_fingerprint);
    if (it == entries_.end()) return std::nullopt;
    if (it->second.expires <= now) {
        entries_.erase(it);
        return std::nullopt;
    }
    return it->second;
}

}  // namespace gg::proxy::ssh
