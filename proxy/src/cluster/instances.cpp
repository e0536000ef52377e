#include "glassgate/proxy/cluster/instances.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "glassgate/proxy/store/state_dir.hpp"

namespace gg::proxy::cluster {
namespace json = boost::json;

namespace {

session::TimePoint now_tp() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}
std::int64_t us(session::TimePoint t) { return t.time_since_epoch().count(); }
session::TimePoint tp(std::int64_t v) { return session::TimePoint(std::chrono::microseconds(v)); }

}  // namespace

json::object to_json(const InstanceInfo& i) {
    return {{"instance", i.id},
            {"host", i.host},
            {"state_dir", i.state_dir},
            {"version", i.version},
            {"pid", i.pid},
            {"started_us", us(i.started)},
            {"started", session::format_utc(i.started)},
            {"heartbeat_us", us(i.heartbeat)},
            {"heartbeat", session::format_utc(i.heartbeat)},
            {"beats", i.beats},
            {"status", i.status},
            {"idp", i.idp},
            {"postgres_listen", i.postgres_listen},
            {"active_sessions", i.active_sessions},
            {"reaped_by", i.reaped_by}};
}

std::optional<InstanceInfo> instance_from_json(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto& o = v.as_object();
    auto str = [&](std::string_view k) -> std::string {
        auto* x = o.if_contains(k);
        return x && x->is_string() ? std::string(x->as_string()) : std::string();
    };
    auto num = [&](std::string_view k) -> std::int64_t {
        auto* x = o.if_contains(k);
        if (!x) return 0;
        if (x->is_int64()) return x->as_int64();
        if (x->is_uint64()) return static_cast<std::int64_t>(x->as_uint64());
        return 0;
    };
    InstanceInfo i;
    i.id = str("instance");
    if (i.id.empty()) return std::nullopt;
    i.host = str("host");
    i.state_dir = str("state_dir");
    i.version = str("version");
    i.pid = static_cast<long>(num("pid"));
    i.started = tp(num("started_us"));
    i.heartbeat = tp(num("heartbeat_us"));
    i.beats = static_cast<std::uint64_t>(num("beats"));
    i.status = str("status");
    i.idp = str("idp");
    i.postgres_listen = str("postgres_listen");
    i.active_sessions = static_cast<std::uint64_t>(num("active_sessions"));
    i.reaped_by = str("reaped_by");
    return i;
}

std::vector<InstanceInfo> list_instances(StateStore& store) {
    std::vector<InstanceInfo> out;
    for (const auto& [k, v] : store.list(instances_namespace)) {
        if (auto i = instance_from_json(v)) out.push_back(std::move(*i));
    }
    return out;
}

Registry::Registry(StateStore& store, Metrics& metrics, InstanceInfo self, Options options)
    : store_(store), metrics_(metrics), self_(std::move(self)), opts_(options) {}

Registry::~Registry() { leave(); }

void Registry::declare_metrics(Metrics& m) {
    m.declare("glassgate_store_reachable", Metrics::Type::gauge,
              "1 while this instance's heartbeats reach the state store; 0: new sessions are refused.");
    m.declare("glassgate_heartbeat_failures_total", Metrics::Type::counter, "Heartbeats the state store did not take.");
    m.declare("glassgate_instances", Metrics::Type::gauge, "Instances registered in the store, by status.");
    m.declare("glassgate_instances_reaped_total", Metrics::Type::counter,
              "Dead instances whose sessions this instance closed as interrupted.");
}

void Registry::join() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
        auto cur = store_.get(instances_namespace, self_.id);
        if (cur) {
            auto other = instance_from_json(*cur);
            if (other && other->status == "reaping" && std::chrono::steady_clock::now() < give_up) {
                // Another instance is closing our previous run's sessions: let it finish.
                spdlog::info("instance {}: instance {} is closing this instance's sessions of its previous run; waiting",
                             self_.id, other->reaped_by);
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                continue;
            }
            const bool same_place = other && other->host == self_.host && other->state_dir == self_.state_dir;
            const auto age = now_tp() - (other ? other->heartbeat : session::TimePoint{});
            if (other && other->status == "up" && !same_place &&
                age < opts_.dead_after + std::chrono::seconds(5)) {
                throw OperationalError("instance name '" + self_.id + "' is used by a running glassgate on host " +
                                       other->host + " (state directory " + other->state_dir + ", last heartbeat " +
                                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(age).count()) +
                                       " s ago): give each instance its own [server] instance");
            }
        }
        self_.status = "up";
        self_.heartbeat = now_tp();
        self_.reaped_by.clear();
        const auto text = json::serialize(to_json(self_));
        if (store_.compare_and_set(instances_namespace, self_.id, cur, text)) {
            std::lock_guard lk(mu_);
            reachable_ = true;
            return;
        }
        if (std::chrono::steady_clock::now() >= give_up) {
            throw OperationalError("instance " + self_.id + ": cannot register in the state store (its entry keeps changing)");
        }
    }
}

void Registry::start(std::function<Live()> live, std::function<void(const std::string&)> on_dead) {
    live_ = std::move(live);
    on_dead_ = std::move(on_dead);
    metrics_.set("glassgate_store_reachable", {}, 1.0);
    thread_ = std::thread([this] { run(); });
}

void Registry::leave() {
    {
        std::lock_guard lk(mu_);
        if (stop_) return;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    try {
        auto cur = store_.get(instances_namespace, self_.id);
        if (!cur) return;
        auto info = instance_from_json(*cur);
        if (!info || info->status != "up" || info->host != self_.host || info->state_dir != self_.state_dir) return;
        info->status = "stopped";
        info->heartbeat = now_tp();
        info->active_sessions = 0;
        (void)store_.compare_and_set(instances_namespace, self_.id, cur, json::serialize(to_json(*info)));
    } catch (const std::exception& e) {
        spdlog::warn("instance {}: cannot mark this instance stopped in the state store: {}", self_.id, e.what());
    }
}

bool Registry::store_reachable() const {
    std::lock_guard lk(mu_);
    return reachable_;
}

std::string Registry::last_error() const {
    std::lock_guard lk(mu_);
    return last_error_;
}

void Registry::run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
        lk.unlock();
        beat();
        try {
            look_for_dead();
        } catch (const std::exception& e) {
            spdlog::warn("instance {}: cannot look for dead instances: {}", self_.id, e.what());
        }
        lk.lock();
        cv_.wait_for(lk, opts_.heartbeat_interval, [&] { return stop_; });
    }
}

void Registry::beat() {
    std::string error;
    try {
        if (live_) {
            const auto l = live_();
            self_.idp = l.idp;
            self_.active_sessions = l.active_sessions;
        }
        auto cur = store_.get(instances_namespace, self_.id);
        std::optional<InstanceInfo> stored = cur ? instance_from_json(*cur) : std::nullopt;
        if (stored && stored->status != "up") {
            // Declared dead by another instance (this one stalled or lost the store for too long): its
            // sessions were closed as interrupted in the index. Take the entry back once that is done.
            if (stored->status == "reaping") {
                error = "instance " + self_.id + " was declared dead by " + stored->reaped_by +
                        " (no heartbeat for too long); waiting for it to finish";
            } else {
                spdlog::error("instance {}: was declared dead by {} (no heartbeat for too long); registering again",
                              self_.id, stored->reaped_by);
            }
        }
        if (error.empty()) {
            ++self_.beats;
            self_.status = "up";
            self_.reaped_by.clear();
            self_.heartbeat = now_tp();
            if (!store_.compare_and_set(instances_namespace, self_.id, cur, json::serialize(to_json(self_)))) {
                error = "the entry of instance " + self_.id + " changed under its heartbeat";
            }
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    bool was;
    {
        std::lock_guard lk(mu_);
        was = reachable_;
        reachable_ = error.empty();
        if (!error.empty()) last_error_ = error;
    }
    metrics_.set("glassgate_store_reachable", {}, error.empty() ? 1.0 : 0.0);
    if (!error.empty()) {
        metrics_.inc("glassgate_heartbeat_failures_total", {});
        if (was) spdlog::error("instance {}: heartbeat failed, new sessions are refused until it succeeds: {}", self_.id, error);
    } else if (!was) {
        spdlog::warn("instance {}: heartbeat reaches the state store again; new sessions are admitted", self_.id);
    }
}

void Registry::look_for_dead() {
    const auto now = std::chrono::steady_clock::now();
    std::map<std::string, std::size_t> by_status;
    std::map<std::string, InstanceInfo> all;
    std::map<std::string, std::string> texts;
    for (const auto& [k, v] : store_.list(instances_namespace)) {
        auto i = instance_from_json(v);
        if (!i) continue;
        ++by_status[i->status];
        texts[i->id] = v;
        all[i->id] = std::move(*i);
    }
    for (const char* s : {"up", "stopped", "reaping", "down"}) {
        metrics_.set("glassgate_instances", {{"status", s}}, static_cast<double>(by_status[s]));
    }
    auto stale = [&](const InstanceInfo& i) {
        auto [it, fresh] = seen_.try_emplace(i.id, i.beats, now);
        if (!fresh && it->second.first != i.beats) it->second = {i.beats, now};
        return now - it->second.second >= opts_.dead_after;
    };
    for (auto& [id, info] : all) {
        if (id == self_.id) continue;
        bool claim = false;
        if (info.status == "up") {
            claim = stale(info);
        } else if (info.status == "reaping" && info.reaped_by != self_.id) {
            // Its reaper died before finishing: the reaper's own entry is gone stale or not up.
            auto r = all.find(info.reaped_by);
            claim = r == all.end() || r->second.status != "up" || stale(r->second);
            if (claim) stale(info);  // keep tracking
        } else if (info.status == "reaping" && info.reaped_by == self_.id) {
            claim = true;  // a previous attempt of ours did not finish
        } else {
            seen_.erase(id);
            continue;
        }
        if (!claim) continue;
        InstanceInfo reaping = info;
        reaping.status = "reaping";
        reaping.reaped_by = self_.id;
        auto reaping_text = json::serialize(to_json(reaping));
        if (info.status != "reaping" || info.reaped_by != self_.id) {
            if (!store_.compare_and_set(instances_namespace, id, texts[id], reaping_text)) continue;  // someone else
            spdlog::warn("instance {}: instance {} has not sent a heartbeat for {} ms; closing its sessions as interrupted",
                         self_.id, id, opts_.dead_after.count());
        } else {
            reaping_text = texts[id];
        }
        if (on_dead_) on_dead_(id);  // throws on a store failure: retried next round (still "reaping" by us)
        InstanceInfo down = reaping;
        down.status = "down";
        down.active_sessions = 0;
        (void)store_.compare_and_set(instances_namespace, id, reaping_text, json::serialize(to_json(down)));
        metrics_.inc("glassgate_instances_reaped_total", {});
        seen_.erase(id);
    }
}

}  // namespace gg::proxy::cluster
