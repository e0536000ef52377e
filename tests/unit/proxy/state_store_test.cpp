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

TEST_CASE("opening a store in a missing directory names the path") {
    try {
        open_sqlite_store("/nonexistent-dir/x/s.db", to_bytes("k"));
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("/nonexistent-dir/x/s.db") != std::string::npos);
    }
}

TEST_SUITE_END();
