#pragma once
// The open sessions of one protocol path, so that shutdown can end them: each session registers a
// closer (which posts to the session's own strand) and removes it when it ends. Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace gg::proxy {

class SessionClosers {
public:
    using Closer = std::function<void(std::string why)>;
    /// Registers a closer; returns the id to remove it with.
    std::uint64_t add(Closer c) {
        std::lock_guard lk(mu_);
        const auto id = ++next_;
        closers_[id] = std::move(c);
        return id;
    }
    void remove(std::uint64_t id) {
        std::lock_guard lk(mu_);
        closers_.erase(id);
    }
    /// Calls every registered closer with `why` (outside the lock: closers may remove themselves).
    void close_all(const std::string& why) {
        std::vector<Closer> all;
        {
            std::lock_guard lk(mu_);
            for (auto& [id, f] : closers_) all.push_back(f);
        }
        for (auto& f : all) f(why);
    }

private:
    std::mutex mu_;
    std::map<std::uint64_t, Closer> closers_;
    std::uint64_t next_ = 0;
};

}  // namespace gg::proxy
