#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "glassgate/proxy/store/state_store.hpp"
#include "temp_dir.hpp"

using namespace gg;
using namespace gg::proxy;
using gg::test::TempDir;

namespace {

session::TimePoint at(std::int64_t s) { return session::TimePoint(std::chrono::seconds(s)); }

/// Polls `ready` for up to 10 s.
template <class F>
bool wait_until_true(F ready) {
    for (int i = 0; i < 1000; ++i) {
        if (ready()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ready();
}

session::SessionRecord rec(std::string id, std::string who, std::string target, std::int64_t start,
                           session::AuthMethod auth = session::AuthMethod::sso) {
    session::SessionRecord r;
    r.id = std::move(id);
    r.identity = std::move(who);
    r.target = std::move(target);
    r.started = at(start);
    r.auth = auth;
    r.client_address = "127.0.0.1:40000";
    return r;
}

}  // namespace

TEST_SUITE_BEGIN("state_store");

TEST_CASE("key/value get, put, erase, list") {
    TempDir dir;
    auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));
    CHECK_FALSE(st->get("ns", "a").has_value());
    st->put("ns", "a", "1");
    st->put("ns", "b", std::string("\0bin\xff", 5));
    st->put("other", "a", "x");
    CHECK(st->get("ns", "a").value() == "1");
    CHECK(st->get("ns", "b").value() == std::string("\0bin\xff", 5));
    st->put("ns", "a", "2");
    CHECK(st->get("ns", "a").value() == "2");
    auto all = st->list("ns");
    REQUIRE(all.size() == 2);
    CHECK(all[0].first == "a");
    CHECK(st->erase("ns", "a"));
    CHECK_FALSE(st->erase("ns", "a"));
    CHECK_FALSE(st->get("ns", "a").has_value());
    CHECK(st->get("other", "a").value() == "x");
}

TEST_CASE("compare_and_set semantics") {
    TempDir dir;
    auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));
    CHECK(st->compare_and_set("bg", "acct", std::nullopt, std::string("staged")));        // create if absent
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::nullopt, std::string("staged")));  // exists now
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::string("in-use"), std::string("used")));
    CHECK(st->compare_and_set("bg", "acct", std::string("staged"), std::string("in-use")));
    CHECK(st->get("bg", "acct").value() == "in-use");
    CHECK(st->compare_and_set("bg", "acct", std::string("in-use"), std::nullopt));  // delete
    CHECK_FALSE(st->get("bg", "acct").has_value());
}

TEST_CASE("compare_and_set: exactly one of many concurrent threads wins") {
    TempDir dir;
    { open_sqlite_store(dir / "s.db", to_bytes("k"))->put("bg", "acct", "staged"); }
    constexpr int threads = 8;
    std::atomic<int> wins{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) {
        ts.emplace_back([&, i] {
            auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));  // own connection, like another process
            while (!go) std::this_thread::yield();
            if (st->compare_and_set("bg", "acct", std::string("staged"), "in-use:" + std::to_string(i))) ++wins;
        });
    }
    go = true;
    for (auto& t : ts) t.join();
    CHECK(wins == 1);
    auto final = open_sqlite_store(dir / "s.db", to_bytes("k"))->get("bg", "acct").value();
    CHECK(final.rfind("in-use:", 0) == 0);
}

TEST_CASE("compare_and_set: exactly one of many concurrent processes wins") {
    TempDir dir;
    { open_sqlite_store(dir / "s.db", to_bytes("k"))->put("bg", "acct", "staged"); }
    constexpr int procs = 6;
    std::vector<pid_t> pids;
    for (int i = 0; i < procs; ++i) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int code = 2;
            try {
                auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));
                code = st->compare_and_set("bg", "acct", std::string("staged"), "p" + std::to_string(i)) ? 0 : 1;
            } catch (...) {
                code = 3;
            }
            ::_exit(code);
        }
        pids.push_back(pid);
    }
    int wins = 0, losses = 0;
    for (auto p : pids) {
        int status = 0;
        ::waitpid(p, &status, 0);
        REQUIRE(WIFEXITED(status));
        if (WEXITSTATUS(status) == 0) ++wins;
        if (WEXITSTATUS(status) == 1) ++losses;
    }
    CHECK(wins == 1);
    CHECK(losses == procs - 1);
}

TEST_CASE("sessions index: save, update, find, filter") {
    TempDir dir;
    auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));
    st->save_session(rec("A", "alice", "appdb", 100));
    st->save_session(rec("B", "bob", "web01", 200, session::AuthMethod::breakglass));
    auto c = rec("C", "alice", "web01", 300);
    c.deadline = at(400);
    c.sealed_events = 42;
    c.sealed_chain_hash = "ab";
    c.bytes_client_to_server = 1ull << 40;
    st->save_session(c);
    c.state = session::State::closed;
    c.ended = at(350);
    c.close_reason = session::CloseReason::time_cap;
    st->save_session(c);  // update in place

    auto got = st->find_session("C").value();
    CHECK(got.state == session::State::closed);
    CHECK(got.deadline.value() == at(400));
    CHECK(got.ended.value() == at(350));
    CHECK(got.close_reason == session::CloseReason::time_cap);
    CHECK(got.sealed_events.value() == 42);
    CHECK(got.bytes_client_to_server == (1ull << 40));
    CHECK_FALSE(st->find_session("nope").has_value());

    CHECK(st->list_sessions({}).size() == 3);
    SessionFilter f;
    f.identity = "alice";
    auto alice = st->list_sessions(f);
    REQUIRE(alice.size() == 2);
    CHECK(alice[0].id == "A");  // oldest first
    f = {};
    f.target = "web01";
    f.since = at(250);
    auto recent = st->list_sessions(f);
    REQUIRE(recent.size() == 1);
    CHECK(recent[0].id == "C");
    f = {};
    f.auth = session::AuthMethod::breakglass;
    CHECK(st->list_sessions(f).at(0).id == "B");
    f = {};
    f.limit = 2;
    auto newest = st->list_sessions(f);
    REQUIRE(newest.size() == 2);
    CHECK(newest[0].id == "B");
    CHECK(newest[1].id == "C");
}

TEST_CASE("sessions index: the instance is stored and filters") {
    TempDir dir;
    auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));
    auto a = rec("A", "alice", "appdb", 100);
    a.instance = "gg-1";
    auto b = rec("B", "bob", "appdb", 200);
    b.instance = "gg-2";
    st->save_session(a);
    st->save_session(b);
    st->save_session(rec("C", "carol", "appdb", 300));
    CHECK(st->find_session("A").value().instance == "gg-1");
    CHECK(st->find_session("C").value().instance.empty());
    SessionFilter f;
    f.instance = "gg-2";
    auto on2 = st->list_sessions(f);
    REQUIRE(on2.size() == 1);
    CHECK(on2[0].id == "B");
    f.instance = "";
    REQUIRE(st->list_sessions(f).size() == 1);
}

TEST_CASE("recording chunks: contiguous, idempotent, sealed by the last one") {
    TempDir dir;
    auto st = open_sqlite_store(dir / "s.db", to_bytes("k"));
    CHECK(st->shipped_recording("S").bytes == 0);
    CHECK_FALSE(st->recording_chunk("S", 0).has_value());
    st->put_recording_chunk("S", 0, "hello", false);
    st->put_recording_chunk("S", 0, "hello", false);                          // a retry: no-op
    CHECK_THROWS_AS(st->put_recording_chunk("S", 0, "HELLO", false), StoreError);  // other bytes
    CHECK_THROWS_AS(st->put_recording_chunk("S", 6, "gap", false), StoreError);
    st->put_recording_chunk("S", 5, std::string("\0 world\xff", 8), true);
    CHECK_THROWS_AS(st->put_recording_chunk("S", 13, "more", false), StoreError);
    auto s = st->shipped_recording("S");
    CHECK(s.bytes == 13);
    CHECK(s.chunks == 2);
    CHECK(s.complete);
    CHECK(st->recording_chunk("S", 5).value() == std::string("\0 world\xff", 8));
    CHECK_FALSE(st->shipped_recording("other").complete);
}

TEST_CASE("audit chain in the store: appends from several connections keep one intact chain") {
    TempDir dir;
    const auto key = to_bytes("audit key");
    constexpr int threads = 4, per_thread = 25;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            auto st = open_sqlite_store(dir / "s.db", key);
            for (int i = 0; i < per_thread; ++i) {
                session::AuditEvent ev;
                ev.time = at(1000 + i);
                ev.type = "test.event";
                ev.identity = "thread" + std::to_string(t);
                st->append_audit(ev);
            }
        });
    }
    for (auto& t : ts) t.join();
    auto st = open_sqlite_store(dir / "s.db", key);
    auto lines = st->audit_lines(1, 0);
    REQUIRE(lines.size() == threads * per_thread);
    session::AuditVerifier v(key);
    for (const auto& l : lines) v.feed(l);
    CHECK_MESSAGE(v.ok(), v.problem());
    CHECK(v.entries() == threads * per_thread);
    CHECK(st->audit_lines(99, 0).size() == 2);
    CHECK(st->audit_lines(1, 10).size() == 10);
}

TEST_CASE("save_session_and_audit: the session row and the audit entry land together, the chain stays intact") {
    TempDir dir;
    const auto key = to_bytes("audit key");
    auto st = open_sqlite_store(dir / "s.db", key);
    auto other = open_sqlite_store(dir / "s.db", key);  // another connection appending in between
    session::AuditEvent ev;
    ev.time = at(1000);
    ev.type = "session.start";
    ev.session_id = "S1";
    CHECK(st->save_session_and_audit(rec("S1", "alice", "appdb", 1000), ev) == 1);
    session::AuditEvent mid;
    mid.time = at(1001);
    mid.type = "test.event";
    CHECK(other->append_audit(mid) == 2);
    auto closed = rec("S1", "alice", "appdb", 1000);
    closed.state = session::State::closed;
    closed.close_reason = session::CloseReason::client_disconnect;
    ev.type = "session.end";
    CHECK(st->save_session_and_audit(closed, ev) == 3);

    CHECK(other->find_session("S1").value().state == session::State::closed);
    auto lines = other->audit_lines(1, 0);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("\"session.start\"") != std::string::npos);
    CHECK(lines[2].find("\"session.end\"") != std::string::npos);
    session::AuditVerifier v(key);
    for (const auto& l : lines) v.feed(l);
    CHECK_MESSAGE(v.ok(), v.problem());
}

namespace {

/// A store whose index and audit writes fail while `failing` is set (a full disk), else a real one.
class FlakyStore final : public StateStore {
public:
    FlakyStore(std::unique_ptr<StateStore> inner, std::atomic<bool>& failing) : inner_(std::move(inner)), failing_(failing) {}
    std::optional<std::string> get(std::string_view ns, std::string_view key) override { return inner_->get(ns, key); }
    void put(std::string_view ns, std::string_view key, std::string_view value) override {
        fail_if();
        inner_->put(ns, key, value);
    }
    bool erase(std::string_view ns, std::string_view key) override { return inner_->erase(ns, key); }
    std::vector<std::pair<std::string, std::string>> list(std::string_view ns) override { return inner_->list(ns); }
    bool compare_and_set(std::string_view ns, std::string_view key, const std::optional<std::string>& expected,
                         const std::optional<std::string>& desired) override {
        fail_if();
        return inner_->compare_and_set(ns, key, expected, desired);
    }
    void save_session(const session::SessionRecord& r) override {
        fail_if();
        inner_->save_session(r);
    }
    std::optional<session::SessionRecord> find_session(std::string_view id) override { return inner_->find_session(id); }
    std::vector<session::SessionRecord> list_sessions(const SessionFilter& f) override { return inner_->list_sessions(f); }
    std::uint64_t append_audit(const session::AuditEvent& ev) override {
        fail_if();
        return inner_->append_audit(ev);
    }
    std::uint64_t save_session_and_audit(const session::SessionRecord& r, const session::AuditEvent& ev) override {
        fail_if();
        return inner_->save_session_and_audit(r, ev);
    }
    std::vector<std::string> audit_lines(std::uint64_t from, std::size_t limit) override {
        return inner_->audit_lines(from, limit);
    }
    void put_recording_chunk(std::string_view id, std::uint64_t offset, std::string_view bytes, bool last) override {
        fail_if();  // a write like the others: the full disk refuses it
        inner_->put_recording_chunk(id, offset, bytes, last);
    }
    ShippedRecording shipped_recording(std::string_view id) override { return inner_->shipped_recording(id); }
    std::optional<std::string> recording_chunk(std::string_view id, std::uint64_t offset) override {
        return inner_->recording_chunk(id, offset);
    }

private:
    void fail_if() const {
        if (failing_) throw StoreError("state store: database or disk is full");
    }
    std::unique_ptr<StateStore> inner_;
    std::atomic<bool>& failing_;
};

session::AuditEvent event(std::string type, std::int64_t t) {
    session::AuditEvent ev;
    ev.time = at(t);
    ev.type = std::move(type);
    return ev;
}

}  // namespace

TEST_CASE("write backlog: index and audit writes that fail wait in order and are written when the store recovers") {
    TempDir dir;
    const auto key = to_bytes("audit key");
    std::atomic<bool> failing{false};
    auto st = with_write_backlog(std::make_unique<FlakyStore>(open_sqlite_store(dir / "s.db", key), failing),
                                 {.max_entries = 4, .retry_interval = std::chrono::milliseconds(20)});
    CHECK(st->append_audit(event("a", 1)) == 1);
    CHECK(st->backlog_status().queued == 0);

    failing = true;
    CHECK(st->append_audit(event("b", 2)) == 0);  // kept, not thrown
    auto closed = rec("S1", "alice", "appdb", 2);
    closed.state = session::State::closed;
    CHECK(st->save_session_and_audit(closed, event("c", 3)) == 0);
    st->save_session(rec("S2", "bob", "appdb", 3));
    auto b = st->backlog_status();
    CHECK(b.queued == 3);
    CHECK(b.audit_events == 2);
    CHECK(b.write_failures >= 1);
    CHECK(b.last_error.find("disk is full") != std::string::npos);
    CHECK(st->append_audit(event("d", 4)) == 0);
    CHECK_THROWS_AS(st->append_audit(event("e", 5)), StoreError);  // at the bound: dropped, counted
    CHECK(st->backlog_status().dropped == 1);
    CHECK_THROWS_AS(st->put("ns", "k", "v"), StoreError);  // decisions are not queued

    failing = false;
    REQUIRE(wait_until_true([&] { return st->backlog_status().queued == 0; }));
    // Written in the order they happened, behind nothing else; the chain verifies.
    auto lines = st->audit_lines(1, 0);
    REQUIRE(lines.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(lines[i].find(std::string("\"event\":\"") + "abcd"[i] + "\"") != std::string::npos);
    }
    session::AuditVerifier v(key);
    for (const auto& l : lines) v.feed(l);
    CHECK_MESSAGE(v.ok(), v.problem());
    CHECK(st->find_session("S1").value().state == session::State::closed);
    CHECK(st->find_session("S2").has_value());
    CHECK(st->append_audit(event("f", 6)) == 5);
}

TEST_CASE("opening a store in a missing directory names the path") {
    try {
        open_sqlite_store("/nonexistent-dir/x/s.db", to_bytes("k"));
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("/nonexistent-dir/x/s.db") != std::string::npos);
    }
}

TEST_SUITE_END();
