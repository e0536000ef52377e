// The pieces of a multi-instance deployment that need no network: the instance registry (join,
// heartbeats, a dead instance noticed and claimed once) and the recording shipper, on the embedded
// store (the same StateStore contract as the shared one: gg_integration_store proves them equal).

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "glassgate/proxy/cluster/instances.hpp"
#include "glassgate/proxy/cluster/recording_shipper.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "temp_dir.hpp"

using namespace gg;
using namespace gg::proxy;
using namespace std::chrono_literals;
using gg::test::TempDir;

namespace {

template <class F>
bool eventually(F ready, std::chrono::milliseconds timeout = 10s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (ready()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return ready();
}

cluster::InstanceInfo info(std::string id, std::string state_dir, std::string host = "h1") {
    cluster::InstanceInfo i;
    i.id = std::move(id);
    i.host = std::move(host);
    i.state_dir = std::move(state_dir);
    i.started = session::TimePoint(std::chrono::seconds(1));
    return i;
}

std::string status_of(StateStore& store, const std::string& id) {
    for (const auto& i : cluster::list_instances(store)) {
        if (i.id == id) return i.status;
    }
    return "";
}

void append(const std::filesystem::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::app) << bytes;
}

}  // namespace

TEST_SUITE_BEGIN("cluster");

TEST_CASE("registry: a live namesake elsewhere is refused; the same place after a crash is not") {
    TempDir dir;
    auto store = open_sqlite_store(dir / "s.db", to_bytes("k"));
    Metrics m;
    cluster::Registry::declare_metrics(m);
    cluster::Registry a(*store, m, info("a", "/var/lib/a"), {});
    a.join();
    CHECK(status_of(*store, "a") == "up");
    // Another host (or state directory) with the same name while a's entry is fresh: refused.
    cluster::Registry impostor(*store, m, info("a", "/var/lib/other", "h2"), {});
    CHECK_THROWS_WITH_AS(impostor.join(), doctest::Contains("instance name 'a' is used by a running glassgate on host h1"),
                         OperationalError);
    // The same host and state directory (a restart after kill -9): takes its entry back.
    cluster::Registry again(*store, m, info("a", "/var/lib/a"), {});
    CHECK_NOTHROW(again.join());
    again.leave();
    CHECK(status_of(*store, "a") == "stopped");
}

TEST_CASE("registry: an instance whose heartbeat stops is claimed once, its sessions closed by on_dead") {
    TempDir dir;
    auto store = open_sqlite_store(dir / "s.db", to_bytes("k"));
    Metrics m;
    cluster::Registry::declare_metrics(m);
    const cluster::Registry::Options fast{.heartbeat_interval = 50ms, .dead_after = 400ms};
    // "dead" joins and never beats (as if killed right after joining); b and c watch.
    cluster::Registry dead(*store, m, info("dead", "/d"), fast);
    dead.join();
    std::atomic<int> claims{0};
    std::string claimed_by;
    std::mutex mu;
    auto watcher = [&](const std::string& name) {
        auto r = std::make_unique<cluster::Registry>(*store, m, info(name, "/" + name), fast);
        r->join();
        r->start([] { return cluster::Registry::Live{"healthy", 0}; },
                 [&, name](const std::string& who) {
                     CHECK(who == "dead");
                     ++claims;
                     std::lock_guard lk(mu);
                     claimed_by = name;
                 });
        return r;
    };
    auto b = watcher("b");
    auto c = watcher("c");
    REQUIRE(eventually([&] { return status_of(*store, "dead") == "down"; }));
    std::this_thread::sleep_for(300ms);  // several more rounds: nobody claims it again
    CHECK(claims.load() == 1);
    CHECK(m.get("glassgate_store_reachable") == 1.0);
    // The live ones keep beating and are never taken for dead.
    CHECK(status_of(*store, "b") == "up");
    CHECK(status_of(*store, "c") == "up");
    for (const auto& i : cluster::list_instances(*store)) {
        if (i.id == "b") CHECK(i.idp == "healthy");
        if (i.id == "dead") {
            std::lock_guard lk(mu);
            CHECK(i.reaped_by == claimed_by);
        }
    }
    b->leave();
    c->leave();
    // "dead" returns: registers again.
    cluster::Registry back(*store, m, info("dead", "/d"), fast);
    back.join();
    CHECK(status_of(*store, "dead") == "up");
}

TEST_CASE("recording shipper: a growing file is shipped in contiguous chunks, complete once finished") {
    TempDir dir;
    auto store = open_sqlite_store(dir / "s.db", to_bytes("k"));
    Metrics m;
    cluster::RecordingShipper::declare_metrics(m);
    cluster::RecordingShipper shipper(*store, m, {.interval = 20ms, .max_chunk = 1000, .max_backoff = 100ms});
    const auto file = dir / "S1.ggrec";
    append(file, std::string(2500, 'a'));
    shipper.track("S1", file);
    shipper.start();
    REQUIRE(eventually([&] { return store->shipped_recording("S1").bytes == 2500; }));
    CHECK_FALSE(store->shipped_recording("S1").complete);
    CHECK(store->shipped_recording("S1").chunks == 3);  // 1000 + 1000 + 500
    append(file, std::string(700, 'b'));
    REQUIRE(eventually([&] { return store->shipped_recording("S1").bytes == 3200; }));
    CHECK(shipper.status().unshipped == 1);
    shipper.finished("S1");
    REQUIRE(eventually([&] { return store->shipped_recording("S1").complete; }));
    CHECK(eventually([&] { return shipper.status().unshipped == 0; }));
    std::string back;
    for (std::uint64_t off = 0;;) {
        auto c = store->recording_chunk("S1", off);
        if (!c || c->empty()) break;
        back += *c;
        off += c->size();
    }
    CHECK(back == std::string(2500, 'a') + std::string(700, 'b'));
    shipper.stop();
}

TEST_CASE("recording shipper: at start, local files the store lacks are shipped; a missing file does not block others") {
    TempDir dir;
    auto store = open_sqlite_store(dir / "s.db", to_bytes("k"));
    const auto recs = dir / "recordings";
    std::filesystem::create_directories(recs);
    append(recs / "OLD.ggrec", "old recording, half shipped before a crash");
    append(recs / "DONE.ggrec", "already complete");
    store->put_recording_chunk("OLD", 0, "old recording", false);
    store->put_recording_chunk("DONE", 0, "already complete", true);
    Metrics m;
    cluster::RecordingShipper::declare_metrics(m);
    cluster::RecordingShipper shipper(*store, m, {.interval = 20ms, .max_chunk = 1 << 20, .max_backoff = 100ms});
    shipper.adopt_existing(recs);
    shipper.track("GONE", recs / "GONE.ggrec");  // its file vanished: retried, counted, others go on
    shipper.finished("GONE");
    shipper.start();
    REQUIRE(eventually([&] { return store->shipped_recording("OLD").complete; }));
    CHECK(store->shipped_recording("OLD").bytes == std::string("old recording, half shipped before a crash").size());
    CHECK(store->shipped_recording("DONE").chunks == 1);
    REQUIRE(eventually([&] { return shipper.status().failing == 1; }));
    CHECK(shipper.status().unshipped == 1);
    CHECK(shipper.status().last_error.find("GONE") != std::string::npos);
    CHECK(m.get("glassgate_recording_ship_failures_total") >= 1.0);
    CHECK_FALSE(store->shipped_recording("GONE").complete);
    shipper.stop();
}

TEST_SUITE_END();
