#pragma once
// Sign-in state the SSH listener shares between connections: the failure throttle per source address
// ([ssh] max_auth_failures) and the approval cache by client key ([ssh] sso_cache). The throttle is
// in memory only (a restart clears it); the approval cache is also kept in a shared store when one is
// configured, so an approval given through one instance admits the same key through another. Both lock
// internally.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::ssh {

/// Failed sign-ins per source address, with a doubling wait once `max_failures` is reached.
class AuthThrottle {
public:
    explicit AuthThrottle(int max_failures) : max_(max_failures) {}
    /// Seconds the source must still wait (0: may try now).
    std::chrono::seconds wait_for(const std::string& source, std::chrono::steady_clock::time_point now);
    void failure(const std::string& source, std::chrono::steady_clock::time_point now);
    void success(const std::string& source);

private:
    struct Entry {
        int failures = 0;
        std::chrono::steady_clock::time_point last{};
        std::chrono::steady_clock::time_point blocked_until{};
    };
    std::mutex mu_;
    std::map<std::string, Entry> entries_;
    int max_;
};

/// Approved identities by client public key (fingerprint), for [ssh] sso_cache.
class ApprovalCache {
public:
    struct Entry {
        std::string identity;
        std::vector<std::string> groups;
        std::chrono::steady_clock::time_point expires{};
    };
    void put(const std::string& key_fingerprint, Entry e);
    std::optional<Entry> find(const std::string& key_fingerprint, std::chrono::steady_clock::time_point now);
    /// Keeps approvals in `store` too (namespace "ssh_approval", keyed by a hash of the cache key, with
    /// a wall-clock expiry). A store failure counts as no approval (a fresh sign-in is asked).
    void share_through(StateStore* store) { store_ = store; }

private:
    StateStore* store_ = nullptr;
    std::mutex mu_;
    std::map<std::string, Entry> entries_;
};

}  // namespace gg::proxy::ssh
