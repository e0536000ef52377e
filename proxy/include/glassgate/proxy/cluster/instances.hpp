#pragma once
// The instances of one deployment, as the shared store knows them (docs/ha.md).
//
// Each `serve` registers under its name ([server] instance) in the key/value namespace "instance" and
// rewrites its entry every heartbeat_interval (with its view of the IdP and its session count). An
// instance whose entry has not changed for dead_after — measured on the observer's own monotonic
// clock, so clock skew between hosts does not matter — is dead: the first live instance to notice
// claims it (compare-and-set: status "up" -> "reaping"), closes its open sessions as interrupted and
// recovers its break-glass sessions (on_dead), then marks it "down". A restarted instance waits for a
// reap in progress to finish, then takes its entry back. Two running instances with the same name on
// different hosts or state directories are refused at start.

#include <boost/json/object.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/session.hpp"

namespace gg::proxy::cluster {

inline constexpr std::string_view instances_namespace = "instance";

struct InstanceInfo {
    std::string id;
    std::string host;
    std::string state_dir;
    std::string version;
    long pid = 0;
    session::TimePoint started{};
    session::TimePoint heartbeat{};      ///< the instance's own clock
    std::uint64_t beats = 0;             ///< heartbeat counter (what observers watch change)
    std::string status = "up";           ///< up | stopped | reaping | down
    std::string idp;                     ///< its view of the IdP: healthy, degraded, unreachable, unknown, "" (none)
    std::string postgres_listen;         ///< host:port of its PostgreSQL listener ("" if none)
    std::uint64_t active_sessions = 0;
    std::string reaped_by;               ///< status reaping/down: the instance that closed its sessions
};
boost::json::object to_json(const InstanceInfo& i);
std::optional<InstanceInfo> instance_from_json(std::string_view text);
/// Every registered instance, by name.
std::vector<InstanceInfo> list_instances(StateStore& store);

class Registry {
public:
    struct Options {
        std::chrono::milliseconds heartbeat_interval{1000};
        std::chrono::milliseconds dead_after{10000};
    };
    /// What the heartbeat publishes besides identity: filled in by `serve` at each beat.
    struct Live {
        std::string idp;
        std::uint64_t active_sessions = 0;
    };

    Registry(StateStore& store, Metrics& metrics, InstanceInfo self, Options options);
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    /// Registers this instance (refusing a live namesake with OperationalError). Call before serving.
    void join();
    /// Starts the heartbeat thread. `live` is called on it at each beat; `on_dead(name)` when this
    /// instance has claimed a dead one (close its sessions), before it is marked down.
    void start(std::function<Live()> live, std::function<void(const std::string&)> on_dead);
    /// Stops the heartbeat and marks this instance "stopped" (a clean shutdown leaves nothing to reap).
    void leave();

    /// false while heartbeats fail (the store unreachable); new sessions are refused meanwhile.
    [[nodiscard]] bool store_reachable() const;
    [[nodiscard]] std::string last_error() const;

    static void declare_metrics(Metrics& m);

private:
    void run();
    void beat();
    void look_for_dead();

    StateStore& store_;
    Metrics& metrics_;
    InstanceInfo self_;
    Options opts_;
    std::function<Live()> live_;
    std::function<void(const std::string&)> on_dead_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    bool reachable_ = true;
    std::string last_error_;
    /// Observed entries of the others: their beat counter and when (our steady clock) it last changed.
    std::map<std::string, std::pair<std::uint64_t, std::chrono::steady_clock::time_point>, std::less<>> seen_;
    std::thread thread_;
};

}  // namespace gg::proxy::cluster
