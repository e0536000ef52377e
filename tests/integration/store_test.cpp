// The state store contract, proven on both implementations: the embedded SQLite store (a file in a temp
// directory) and the shared PostgreSQL store against a real PostgreSQL 15 (one server for the whole binary,
// a fresh database per case). Every contract case runs once per store (doctest subcases "sqlite" and
// "postgres"), so the two behave identically: key/value with binary values, compare-and-set (semantics and
// races between several store objects, as several instances would be), one audit chain under concurrent
// appends from several store objects, the sessions index with every filter, recording chunks.
// PostgreSQL only: concurrent migrations of a fresh database, a newer schema refused, connection failures
// (closed port, wrong password, server stopped and started again) that end in StoreError in bounded time
// and never print the password. SQLite only: a version-1 file migrated in place, by several openers at once.

#include <doctest/doctest.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/audit_chain.hpp"
#include "harness/files.hpp"
#include "harness/net.hpp"
#include "harness/postgres_peer.hpp"

using namespace gg;
using namespace gg::proxy;
using gg::harness::PostgresPeer;
using gg::harness::TempDir;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr const char* store_role = "gg_store";

/// The one PostgreSQL server of this binary, with a login role that owns every test database.
PostgresPeer& peer() {
    static PostgresPeer p;
    return p;
}

const std::string& store_password() {
    static const std::string password = [] {
        auto made = "pw-" + gg::harness::random_hex(20);
        peer().create_role(store_role, made);
        return made;
    }();
    return password;
}

/// A fresh, empty database owned by the store role.
std::string fresh_database() {
    static std::atomic<int> n{0};
    (void)store_password();  // the role exists
    auto name = "store_" + std::to_string(++n);
    peer().create_database(name, store_role);
    return name;
}

std::string store_conninfo(const std::string& db) { return peer().conninfo(db, store_role, store_password()); }

/// psql as the superuser on `db`; the tuples-only output.
std::string psql(const std::string& db, const std::string& sql) {
    auto r = peer().psql(sql, db);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    auto out = r.out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

Bytes audit_key() { return to_bytes("integration audit key"); }
Bytes signing_seed() { return Bytes(32, std::byte{7}); }

void sqlite_exec(const std::filesystem::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

/// One store implementation: opens store objects on the same storage (each one like another instance).
struct Backend {
    std::string name;
    std::function<std::unique_ptr<StateStore>(Bytes key, Bytes seed)> open_with;
    /// Overwrites the stored bytes of one recording chunk behind the store's back (same length).
    std::function<void(const std::string& session_id, std::uint64_t offset)> corrupt_chunk;

    [[nodiscard]] std::unique_ptr<StateStore> open() const { return open_with(audit_key(), signing_seed()); }
};

Backend sqlite_backend() {
    auto dir = std::make_shared<TempDir>("gg-store");
    const auto file = dir->path() / "state.db";
    Backend b;
    b.name = "sqlite";
    b.open_with = [dir, file](Bytes key, Bytes seed) { return open_sqlite_store(file, std::move(key), std::move(seed)); };
    b.corrupt_chunk = [file](const std::string& id, std::uint64_t offset) {
        sqlite_exec(file, "UPDATE recording_chunks SET bytes = zeroblob(length(bytes)) WHERE session_id = '" + id +
                              "' AND \"offset\" = " + std::to_string(offset));
    };
    return b;
}

Backend postgres_backend() {
    const auto db = fresh_database();
    Backend b;
    b.name = "postgres";
    b.open_with = [conninfo = store_conninfo(db)](Bytes key, Bytes seed) {
        return open_postgres_store(conninfo, std::move(key), std::move(seed));
    };
    b.corrupt_chunk = [db](const std::string& id, std::uint64_t offset) {
        psql(db, "UPDATE glassgate_recording_chunks SET bytes = decode(repeat('00', octet_length(bytes)), 'hex') "
                 "WHERE session_id = " + gg::harness::sql_literal(id) + " AND \"offset\" = " + std::to_string(offset));
    };
    return b;
}

/// Runs `contract` once per store implementation, each in its own subcase.
#define STORE_CONTRACT(contract)                       \
    SUBCASE("sqlite") { contract(sqlite_backend()); }  \
    SUBCASE("postgres") { contract(postgres_backend()); }

session::TimePoint at(std::int64_t s) { return session::TimePoint(std::chrono::seconds(s)); }

session::SessionRecord rec(std::string id, std::string who, std::string target, std::int64_t start,
                           session::AuthMethod auth = session::AuthMethod::sso, std::string instance = "") {
    session::SessionRecord r;
    r.id = std::move(id);
    r.identity = std::move(who);
    r.target = std::move(target);
    r.started = at(start);
    r.auth = auth;
    r.client_address = "127.0.0.1:40000";
    r.instance = std::move(instance);
    return r;
}

session::AuditEvent event(std::string type, std::int64_t t, std::string identity = "") {
    session::AuditEvent ev;
    ev.time = at(t);
    ev.type = std::move(type);
    ev.identity = std::move(identity);
    return ev;
}

std::vector<std::string> ids(const std::vector<session::SessionRecord>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) out.push_back(r.id);
    return out;
}

void verify_chain(const std::vector<std::string>& lines) {
    session::AuditVerifier v(audit_key());
    for (const auto& l : lines) v.feed(l);
    CHECK_MESSAGE(v.ok(), v.problem());
    CHECK(v.entries() == lines.size());
}

/// Starts `n` threads that wait for one signal, so they really run at once.
template <class F>
void race(int n, F body) {
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < n; ++i) {
        ts.emplace_back([&, i] {
            while (!go) std::this_thread::yield();
            body(i);
        });
    }
    go = true;
    for (auto& t : ts) t.join();
}

// ---------------------------------------------------------------- contracts

void kv_contract(const Backend& b) {
    CAPTURE(b.name);
    auto st = b.open();
    CHECK_FALSE(st->get("ns", "a").has_value());
    st->put("ns", "a", "1");
    const std::string binary("\0bin\xff\x00\xfe", 7);
    st->put("ns", "b", binary);
    st->put("ns", "empty", "");
    st->put("other", "a", "x");
    st->put("ns", "ключ/é", "utf-8 key");
    CHECK(st->get("ns", "a").value() == "1");
    CHECK(st->get("ns", "b").value() == binary);
    CHECK(st->get("ns", "empty").value().empty());
    CHECK(st->get("ns", "ключ/é").value() == "utf-8 key");
    st->put("ns", "a", "2");
    CHECK(st->get("ns", "a").value() == "2");
    st->put("ns", "B", "upper");
    auto all = st->list("ns");
    std::vector<std::string> keys;
    for (const auto& [k, v] : all) keys.push_back(k);
    // Ordered bytewise: upper case before lower case before multi-byte UTF-8.
    CHECK(keys == std::vector<std::string>{"B", "a", "b", "empty", "ключ/é"});
    CHECK(all[2].second == binary);
    CHECK(st->erase("ns", "a"));
    CHECK_FALSE(st->erase("ns", "a"));
    CHECK_FALSE(st->get("ns", "a").has_value());
    CHECK(st->get("other", "a").value() == "x");
    CHECK(st->list("none").empty());
    // Another store object (another instance) sees the same data.
    CHECK(b.open()->get("ns", "b").value() == binary);
}

void cas_contract(const Backend& b) {
    CAPTURE(b.name);
    auto st = b.open();
    CHECK(st->compare_and_set("bg", "acct", std::nullopt, std::nullopt));  // absent stays absent: true
    CHECK(st->compare_and_set("bg", "acct", std::nullopt, std::string("staged")));        // create if absent
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::nullopt, std::string("staged")));  // exists now
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::nullopt, std::nullopt));           // not absent
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::string("in-use"), std::string("used")));
    CHECK(st->compare_and_set("bg", "acct", std::string("staged"), std::string("in-use")));
    CHECK(st->get("bg", "acct").value() == "in-use");
    CHECK(st->compare_and_set("bg", "acct", std::string("in-use"), std::string("in-use")));  // same value
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::string("staged"), std::nullopt));
    CHECK(st->compare_and_set("bg", "acct", std::string("in-use"), std::nullopt));  // delete
    CHECK_FALSE(st->get("bg", "acct").has_value());
    CHECK_FALSE(st->compare_and_set("bg", "acct", std::string("in-use"), std::nullopt));  // already gone
    const std::string bin1("\0\xff", 2), bin2("\0\xfe", 2);
    st->put("bg", "bin", bin1);
    CHECK_FALSE(st->compare_and_set("bg", "bin", bin2, std::string("x")));  // differs only after a NUL
    CHECK(st->compare_and_set("bg", "bin", bin1, bin2));
    CHECK(st->get("bg", "bin").value() == bin2);
}

void cas_race_contract(const Backend& b) {
    CAPTURE(b.name);
    constexpr int threads = 100;
    std::vector<std::unique_ptr<StateStore>> stores;
    for (int i = 0; i < 3; ++i) stores.push_back(b.open());  // three instances
    stores[0]->put("bg", "acct", "staged");

    std::atomic<int> wins{0}, errors{0};
    race(threads, [&](int i) {
        try {
            if (stores[static_cast<std::size_t>(i % 3)]->compare_and_set("bg", "acct", std::string("staged"),
                                                                         "in-use:" + std::to_string(i))) {
                ++wins;
            }
        } catch (const StoreError&) {
            ++errors;
        }
    });
    CHECK(errors == 0);
    CHECK(wins == 1);
    CHECK(stores[1]->get("bg", "acct").value().rfind("in-use:", 0) == 0);

    // Creating an absent key: exactly one creator.
    wins = 0;
    race(threads, [&](int i) {
        try {
            if (stores[static_cast<std::size_t>(i % 3)]->compare_and_set("bg", "new", std::nullopt,
                                                                         "mine:" + std::to_string(i))) {
                ++wins;
            }
        } catch (const StoreError&) {
            ++errors;
        }
    });
    CHECK(errors == 0);
    CHECK(wins == 1);
}

void audit_contract(const Backend& b) {
    CAPTURE(b.name);
    constexpr int stores_n = 4, threads_per_store = 8, total = 400;
    std::vector<std::unique_ptr<StateStore>> stores;
    for (int i = 0; i < stores_n; ++i) stores.push_back(b.open());
    std::atomic<int> next{0}, errors{0};
    std::mutex mu;
    std::vector<std::uint64_t> seqs;
    race(stores_n * threads_per_store, [&](int t) {
        auto& st = *stores[static_cast<std::size_t>(t % stores_n)];
        for (int i = next++; i < total; i = next++) {
            try {
                const auto seq = st.append_audit(event("test.event", 1000 + i, "thread" + std::to_string(t)));
                std::lock_guard lk(mu);
                seqs.push_back(seq);
            } catch (const std::exception& e) {
                ++errors;
                MESSAGE(std::string(e.what()));
            }
        }
    });
    CHECK(errors == 0);
    std::sort(seqs.begin(), seqs.end());
    REQUIRE(seqs.size() == total);
    for (std::size_t i = 0; i < seqs.size(); ++i) REQUIRE(seqs[i] == i + 1);  // 1..N, no gap, no repeat

    auto reader = b.open();
    const auto lines = reader->audit_lines(1, 0);
    REQUIRE(lines.size() == total);
    verify_chain(lines);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        REQUIRE(lines[i].find("\"seq\":" + std::to_string(i + 1) + ",") != std::string::npos);
    }
    CHECK(reader->audit_lines(399, 0).size() == 2);
    CHECK(reader->audit_lines(401, 0).empty());
    const auto page = reader->audit_lines(10, 5);
    REQUIRE(page.size() == 5);
    CHECK(page.front() == lines[9]);
    CHECK(page.back() == lines[13]);
}

void session_and_audit_contract(const Backend& b) {
    CAPTURE(b.name);
    auto st = b.open();
    auto other = b.open();  // another instance appending in between
    auto ev = event("session.start", 1000);
    ev.session_id = "S1";
    CHECK(st->save_session_and_audit(rec("S1", "alice", "appdb", 1000), ev) == 1);
    CHECK(other->append_audit(event("test.event", 1001)) == 2);
    auto closed = rec("S1", "alice", "appdb", 1000);
    closed.state = session::State::closed;
    closed.close_reason = session::CloseReason::client_disconnect;
    ev.type = "session.end";
    CHECK(st->save_session_and_audit(closed, ev) == 3);
    CHECK(other->find_session("S1").value().state == session::State::closed);

    // Both or neither: the audit part fails (a signing seed of the wrong length) after the row was written
    // in the same transaction; the row must not be there.
    auto broken = b.open_with(audit_key(), Bytes(5, std::byte{1}));
    CHECK_THROWS(broken->save_session_and_audit(rec("S2", "bob", "appdb", 2000), event("session.start", 2000)));
    CHECK_FALSE(other->find_session("S2").has_value());
    CHECK_THROWS(broken->append_audit(event("x", 2001)));

    const auto lines = other->audit_lines(1, 0);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("\"session.start\"") != std::string::npos);
    CHECK(lines[2].find("\"session.end\"") != std::string::npos);
    CHECK(lines[2].find("\"sig\":") != std::string::npos);  // signed with the signing seed
    verify_chain(lines);
    CHECK(st->append_audit(event("after", 3000)) == 4);  // the failed ones took no seq
}

void sessions_contract(const Backend& b) {
    CAPTURE(b.name);
    auto st = b.open();
    st->save_session(rec("A", "alice", "appdb", 100, session::AuthMethod::sso, "gg-1"));
    st->save_session(rec("B", "bob", "web01", 200, session::AuthMethod::breakglass, "gg-2"));
    auto c = rec("C", "alice", "web01", 300, session::AuthMethod::sso, "gg-1");
    c.protocol = session::Protocol::ssh;
    c.deadline = at(400);
    c.sealed_events = 42;
    c.sealed_chain_hash = "ab";
    c.bytes_client_to_server = 1ull << 40;
    c.bytes_server_to_client = 7;
    c.reason = "INC-1 «prod»";
    c.recording = "2026/C.ggrec";
    st->save_session(c);
    c.state = session::State::closed;
    c.ended = at(350);
    c.close_reason = session::CloseReason::time_cap;
    c.close_detail = "8h";
    st->save_session(c);  // update in place
    st->save_session(rec("D", "dave", "appdb", 300, session::AuthMethod::sso, ""));  // same start as C

    auto got = b.open()->find_session("C").value();
    CHECK(got.protocol == session::Protocol::ssh);
    CHECK(got.identity == "alice");
    CHECK(got.auth == session::AuthMethod::sso);
    CHECK(got.target == "web01");
    CHECK(got.client_address == "127.0.0.1:40000");
    CHECK(got.reason == "INC-1 «prod»");
    CHECK(got.state == session::State::closed);
    CHECK(got.started == at(300));
    CHECK(got.deadline.value() == at(400));
    CHECK(got.ended.value() == at(350));
    CHECK(got.bytes_client_to_server == (1ull << 40));
    CHECK(got.bytes_server_to_client == 7);
    CHECK(got.close_reason == session::CloseReason::time_cap);
    CHECK(got.close_detail == "8h");
    CHECK(got.recording == "2026/C.ggrec");
    CHECK(got.sealed_events.value() == 42);
    CHECK(got.sealed_chain_hash == "ab");
    CHECK(got.instance == "gg-1");
    auto a = st->find_session("A").value();
    CHECK_FALSE(a.deadline.has_value());
    CHECK_FALSE(a.ended.has_value());
    CHECK_FALSE(a.sealed_events.has_value());
    CHECK_FALSE(st->find_session("nope").has_value());

    CHECK(ids(st->list_sessions({})) == std::vector<std::string>{"A", "B", "C", "D"});  // oldest first
    SessionFilter f;
    f.identity = "alice";
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"A", "C"});
    f = {};
    f.target = "web01";
    f.since = at(250);
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"C"});
    f = {};
    f.since = at(200);
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"B", "C", "D"});  // at or after
    f = {};
    f.auth = session::AuthMethod::breakglass;
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"B"});
    f = {};
    f.state = session::State::closed;
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"C"});
    f = {};
    f.instance = "gg-1";
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"A", "C"});
    f.instance = "";
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"D"});
    f.instance = "gg-3";
    CHECK(st->list_sessions(f).empty());
    f = {};
    f.identity = "alice";
    f.target = "appdb";
    f.auth = session::AuthMethod::sso;
    f.state = session::State::authenticating;
    f.instance = "gg-1";
    f.since = at(100);
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"A"});  // all filters at once
    f = {};
    f.limit = 2;
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"C", "D"});  // newest two, oldest first
    f.limit = 10;
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"A", "B", "C", "D"});
    f.limit = 1;
    f.identity = "alice";
    CHECK(ids(st->list_sessions(f)) == std::vector<std::string>{"C"});
}

void recording_contract(const Backend& b) {
    CAPTURE(b.name);
    auto st = b.open();
    auto other = b.open();
    const auto empty = st->shipped_recording("S");
    CHECK(empty.bytes == 0);
    CHECK(empty.chunks == 0);
    CHECK_FALSE(empty.complete);
    CHECK_FALSE(st->recording_chunk("S", 0).has_value());

    const std::string c0 = "GGREC header \x01\x02";
    std::string c1(256 * 1024, '\0');
    for (std::size_t i = 0; i < c1.size(); ++i) c1[i] = static_cast<char>((i * 131 + 7) & 0xff);
    const std::string c2("\0seal\xff", 6);
    st->put_recording_chunk("S", 0, c0, false);
    st->put_recording_chunk("S", 0, c0, false);  // a retry after a lost reply: no-op
    other->put_recording_chunk("S", 0, c0, false);
    CHECK(st->shipped_recording("S").chunks == 1);
    try {
        st->put_recording_chunk("S", 0, "other bytes", false);
        FAIL("a different chunk at a stored offset must be refused");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("S") != std::string::npos);
    }
    CHECK_THROWS_AS(st->put_recording_chunk("S", 0, c0, true), StoreError);  // same bytes, now "last"
    try {
        st->put_recording_chunk("S", c0.size() + 1, c1, false);
        FAIL("a gap must be refused");
    } catch (const StoreError& e) {
        const std::string what = e.what();
        CHECK(what.find("session S") != std::string::npos);
        CHECK(what.find("expected offset " + std::to_string(c0.size())) != std::string::npos);
        CHECK(what.find("given " + std::to_string(c0.size() + 1)) != std::string::npos);
    }
    CHECK_THROWS_AS(st->put_recording_chunk("S", 3, "overlap", false), StoreError);  // inside chunk 0
    other->put_recording_chunk("S", c0.size(), c1, false);
    auto mid = st->shipped_recording("S");
    CHECK(mid.bytes == c0.size() + c1.size());
    CHECK(mid.chunks == 2);
    CHECK_FALSE(mid.complete);
    st->put_recording_chunk("S", mid.bytes, "", false);  // empty, not last: nothing to store
    CHECK(st->shipped_recording("S").chunks == 2);
    st->put_recording_chunk("S", mid.bytes, c2, true);
    st->put_recording_chunk("S", mid.bytes, c2, true);  // retry of the last chunk: no-op
    const auto end = mid.bytes + c2.size();
    CHECK_THROWS_AS(st->put_recording_chunk("S", end, "after", false), StoreError);
    CHECK_THROWS_AS(st->put_recording_chunk("S", end, "", true), StoreError);
    auto done = other->shipped_recording("S");
    CHECK(done.bytes == end);
    CHECK(done.chunks == 3);
    CHECK(done.complete);

    // Reading back, chunk by chunk, reassembles the file.
    std::string file;
    for (std::uint64_t off = 0; off < done.bytes;) {
        auto chunk = other->recording_chunk("S", off);
        REQUIRE(chunk.has_value());
        REQUIRE_FALSE(chunk->empty());
        off += chunk->size();
        file += *chunk;
    }
    CHECK(file == c0 + c1 + c2);
    CHECK_FALSE(st->recording_chunk("S", 1).has_value());  // no chunk starts there

    // Another session is independent; an empty last chunk completes a recording.
    st->put_recording_chunk("T", 0, "t", false);
    st->put_recording_chunk("T", 1, "", true);
    CHECK(st->shipped_recording("T").complete);
    CHECK(st->shipped_recording("T").bytes == 1);

    // Two instances racing with different chunks for the same offset: exactly one is stored.
    std::atomic<int> ok{0}, refused{0};
    race(6, [&](int i) {
        try {
            (i % 2 ? st : other)->put_recording_chunk("R", 0, "racer " + std::to_string(i), false);
            ++ok;
        } catch (const StoreError&) {
            ++refused;
        }
    });
    CHECK(ok == 1);
    CHECK(refused == 5);
    CHECK(st->shipped_recording("R").chunks == 1);

    // Altered in the store: reading it is an error, not wrong bytes.
    b.corrupt_chunk("S", c0.size());
    try {
        (void)other->recording_chunk("S", c0.size());
        FAIL("a corrupted chunk must not be returned");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("SHA-256") != std::string::npos);
    }
    CHECK(other->recording_chunk("S", 0).value() == c0);  // the others still read
}

}  // namespace

TEST_SUITE_BEGIN("store");

TEST_CASE("key/value: get, put, erase, list, binary values" * doctest::timeout(60)) { STORE_CONTRACT(kv_contract); }

TEST_CASE("compare_and_set semantics" * doctest::timeout(60)) { STORE_CONTRACT(cas_contract); }

TEST_CASE("compare_and_set: 100 threads over 3 store objects, exactly one wins" * doctest::timeout(60)) {
    STORE_CONTRACT(cas_race_contract);
}

TEST_CASE("audit chain: 4 store objects x 8 threads append 400 events: seq 1..400, one chain" *
          doctest::timeout(60)) {
    STORE_CONTRACT(audit_contract);
}

TEST_CASE("save_session_and_audit: both or neither, chain intact" * doctest::timeout(60)) {
    STORE_CONTRACT(session_and_audit_contract);
}

TEST_CASE("sessions index: save, update, find, every filter, limit order" * doctest::timeout(60)) {
    STORE_CONTRACT(sessions_contract);
}

TEST_CASE("recording chunks: contiguous, idempotent, conflicts and gaps refused, sealed, verified" *
          doctest::timeout(60)) {
    STORE_CONTRACT(recording_contract);
}

TEST_CASE("postgres migrations: 3 instances start on a fresh database at once; reopening keeps the data" *
          doctest::timeout(60)) {
    const auto db = fresh_database();
    const auto conninfo = store_conninfo(db);
    std::atomic<int> opened{0};
    std::mutex mu;
    std::vector<std::string> errors;
    std::vector<std::unique_ptr<StateStore>> stores(3);
    race(3, [&](int i) {
        try {
            stores[static_cast<std::size_t>(i)] = open_postgres_store(conninfo, audit_key(), signing_seed());
            ++opened;
        } catch (const std::exception& e) {
            std::lock_guard lk(mu);
            errors.emplace_back(e.what());
        }
    });
    for (const auto& e : errors) MESSAGE(e);
    CHECK(opened == 3);
    CHECK(psql(db, "SELECT count(*), min(version), max(version) FROM glassgate_schema") == "1|1|1");
    REQUIRE(opened == 3);
    stores[0]->put("ns", "k", "v");
    CHECK(stores[1]->append_audit(event("one", 1)) == 1);
    stores[2]->save_session(rec("A", "alice", "appdb", 1));
    stores.clear();

    auto again = open_postgres_store(conninfo, audit_key(), signing_seed());
    CHECK(again->get("ns", "k").value() == "v");
    CHECK(again->find_session("A").has_value());
    CHECK(again->append_audit(event("two", 2)) == 2);
    verify_chain(again->audit_lines(1, 0));
    CHECK(psql(db, "SELECT count(*) FROM glassgate_schema") == "1");

    // A database migrated by a newer glassgate is refused, not written.
    psql(db, "INSERT INTO glassgate_schema (version) VALUES (99)");
    try {
        open_postgres_store(conninfo, audit_key());
        FAIL("a newer schema must be refused");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("99") != std::string::npos);
    }
}

TEST_CASE("sqlite migration: a version-1 file gets the instance column and chunks table, by 3 openers at once" *
          doctest::timeout(60)) {
    TempDir dir("gg-store");
    const auto file = dir / "state.db";
    // The version-1 schema as glassgate wrote it, with one session row.
    sqlite_exec(file, R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, updated_us INTEGER NOT NULL,
  PRIMARY KEY (ns, key));
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, protocol TEXT NOT NULL, identity TEXT NOT NULL, auth TEXT NOT NULL,
  target TEXT NOT NULL, client_address TEXT NOT NULL, reason TEXT NOT NULL, state TEXT NOT NULL,
  started_us INTEGER NOT NULL, deadline_us INTEGER, ended_us INTEGER,
  bytes_c2s INTEGER NOT NULL, bytes_s2c INTEGER NOT NULL,
  close_reason TEXT NOT NULL, close_detail TEXT NOT NULL, recording TEXT NOT NULL,
  sealed_events INTEGER, sealed_chain_hash TEXT NOT NULL);
CREATE INDEX sessions_started ON sessions (started_us);
CREATE TABLE audit (seq INTEGER PRIMARY KEY, line TEXT NOT NULL, hash BLOB NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
INSERT INTO sessions VALUES ('OLD', 'postgres', 'alice', 'sso', 'appdb', '127.0.0.1:1', '', 'closed',
  1000000, NULL, 2000000, 1, 2, 'client_disconnect', '', '', NULL, '');
)sql");
    std::atomic<int> opened{0};
    std::vector<std::unique_ptr<StateStore>> stores(3);
    race(3, [&](int i) {
        try {
            stores[static_cast<std::size_t>(i)] = open_sqlite_store(file, audit_key());
            ++opened;
        } catch (const std::exception& e) {
            MESSAGE(std::string(e.what()));
        }
    });
    REQUIRE(opened == 3);
    auto old = stores[0]->find_session("OLD").value();
    CHECK(old.identity == "alice");
    CHECK(old.instance.empty());
    auto moved = old;
    moved.instance = "gg-1";
    stores[1]->save_session(moved);
    SessionFilter f;
    f.instance = "gg-1";
    CHECK(ids(stores[2]->list_sessions(f)) == std::vector<std::string>{"OLD"});
    stores[2]->put_recording_chunk("OLD", 0, "x", true);
    CHECK(stores[0]->shipped_recording("OLD").complete);
    stores.clear();
    auto again = open_sqlite_store(file, audit_key());  // already version 2: nothing to do
    CHECK(again->find_session("OLD").value().instance == "gg-1");
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &s, nullptr) ==
            SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "2");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

TEST_CASE("postgres failures: closed port, wrong password, bad connection string: StoreError, no password" *
          doctest::timeout(60)) {
    const std::string secret = "Sup3r-s3cret-pw";
    const auto port = gg::harness::free_port();  // nothing listens there
    const auto t0 = SteadyClock::now();
    try {
        open_postgres_store("host=127.0.0.1 port=" + std::to_string(port) + " dbname=glassgate user=gg password=" +
                                secret + " sslmode=disable",
                            audit_key());
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        const std::string what = e.what();
        MESSAGE(what);
        CHECK(what.find("host=127.0.0.1") != std::string::npos);
        CHECK(what.find("dbname=glassgate") != std::string::npos);
        CHECK(what.find(std::to_string(port)) != std::string::npos);
        CHECK(what.find(secret) == std::string::npos);
    }
    CHECK(SteadyClock::now() - t0 < std::chrono::seconds(6));  // within the 5 s connect timeout

    const auto db = fresh_database();
    try {
        open_postgres_store(peer().conninfo(db, store_role, secret), audit_key());
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        const std::string what = e.what();
        MESSAGE(what);
        CHECK(what.find("dbname=" + db) != std::string::npos);
        CHECK(what.find("password authentication failed") != std::string::npos);
        CHECK(what.find(secret) == std::string::npos);
    }

    try {
        open_postgres_store("host=127.0.0.1 password=" + secret + " oops", audit_key());
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        MESSAGE(std::string(e.what()));
        CHECK(std::string(e.what()).find(secret) == std::string::npos);
    }
    try {
        open_postgres_store("postgresql://gg:" + secret + "@127.0.0.1:" + std::to_string(port) + "/glassgate",
                            audit_key());
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        MESSAGE(std::string(e.what()));
        CHECK(std::string(e.what()).find(secret) == std::string::npos);
        CHECK(std::string(e.what()).find("dbname=glassgate") != std::string::npos);
    }
}

TEST_CASE("postgres: namespaces and keys are text: NUL or invalid UTF-8 is refused, never truncated" *
          doctest::timeout(60)) {
    const auto db = fresh_database();
    auto st = open_postgres_store(store_conninfo(db), audit_key());
    CHECK_THROWS_AS(st->put("ns", std::string("a\0b", 3), "v"), StoreError);
    CHECK_THROWS_AS(st->put("ns", "bad\xff", "v"), StoreError);
    CHECK_THROWS_AS(st->get(std::string("n\0s", 3), "k"), StoreError);
    CHECK(st->list("ns").empty());
    st->put("ns", "a", "v");  // the connection is still fine
    CHECK(st->get("ns", "a").value() == "v");
}

TEST_CASE("postgres several hosts: the first refuses, libpq moves on to the read-write one" * doctest::timeout(60)) {
    const auto db = fresh_database();
    const auto closed = gg::harness::free_port();
    const auto conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(closed) + "," +
                          std::to_string(peer().port()) + " dbname=" + db + " user=" + store_role + " password='" +
                          store_password() + "' sslmode=require target_session_attrs=read-write";
    auto st = open_postgres_store(conninfo, audit_key());
    st->put("ns", "k", "v");
    CHECK(st->get("ns", "k").value() == "v");
    // A store that cannot work names every host and port it tried, and still no password.
    psql(db, "ALTER DATABASE " + db + " SET default_transaction_read_only = on");
    try {
        open_postgres_store(conninfo, audit_key());
        FAIL("a read-only server is no store");
    } catch (const StoreError& e) {
        const std::string what = e.what();
        MESSAGE(what);
        CHECK(what.find("host=127.0.0.1,127.0.0.1 port=" + std::to_string(closed) + "," +
                        std::to_string(peer().port())) != std::string::npos);
        CHECK(what.find(store_password()) == std::string::npos);
    }
}

TEST_CASE("postgres statement timeout: an instance stuck holding the audit head cannot hang the others" *
          doctest::timeout(60)) {
    const auto db = fresh_database();
    auto st = open_postgres_store(store_conninfo(db), audit_key());
    CHECK(st->append_audit(event("first", 1)) == 1);
    PGconn* stuck = PQconnectdb(store_conninfo(db).c_str());
    REQUIRE(PQstatus(stuck) == CONNECTION_OK);
    PQclear(PQexec(stuck, "BEGIN"));
    PGresult* held = PQexec(stuck, "SELECT seq FROM glassgate_audit_head WHERE id = 1 FOR UPDATE");
    CHECK(PQresultStatus(held) == PGRES_TUPLES_OK);
    PQclear(held);
    const auto t0 = SteadyClock::now();
    try {
        (void)st->append_audit(event("blocked", 2));
        FAIL("expected StoreError");
    } catch (const StoreError& e) {
        MESSAGE(std::string(e.what()));
        CHECK(std::string(e.what()).find("57014") != std::string::npos);  // query_canceled: statement timeout
    }
    const auto waited = SteadyClock::now() - t0;
    CHECK(waited >= std::chrono::seconds(9));
    CHECK(waited < std::chrono::seconds(15));
    PQclear(PQexec(stuck, "COMMIT"));
    PQfinish(stuck);
    CHECK(st->append_audit(event("after", 3)) == 2);  // the failed append took no seq
    verify_chain(st->audit_lines(1, 0));
}

TEST_CASE("postgres server stopped and started again: StoreError in bounded time, then the same store works" *
          doctest::timeout(120)) {
    const auto db = fresh_database();
    auto st = open_postgres_store(store_conninfo(db), audit_key(), signing_seed());
    st->put("ns", "k", "v");
    CHECK(st->append_audit(event("before", 1)) == 1);
    // Several pooled connections, all of which die with the server.
    race(4, [&](int) { (void)st->get("ns", "k"); });

    // A restart while they are idle: writes that are never retried (they must not run twice) still work at
    // the first attempt, because a connection the server ended is not lent.
    peer().stop();
    peer().start_again();
    race(4, [&](int i) { CHECK(st->compare_and_set("cas", std::to_string(i), std::nullopt, std::string("x"))); });
    CHECK(st->append_audit(event("restarted", 2)) == 2);

    race(4, [&](int) { (void)st->get("ns", "k"); });
    peer().stop();
    auto bounded = [&](const std::string& operation, auto op) {
        CAPTURE(operation);
        const auto t0 = SteadyClock::now();
        try {
            op();
            FAIL("expected StoreError");
        } catch (const StoreError& e) {
            const std::string msg = e.what();
            CHECK(msg.find("state store postgres (host=127.0.0.1") != std::string::npos);
            CHECK(msg.find(store_password()) == std::string::npos);
        }
        CHECK(SteadyClock::now() - t0 < std::chrono::seconds(10));
    };
    bounded("get", [&] { (void)st->get("ns", "k"); });
    bounded("put", [&] { st->put("ns", "k", "w"); });
    bounded("compare_and_set", [&] { (void)st->compare_and_set("ns", "k", std::string("v"), std::string("w")); });
    bounded("append_audit", [&] { (void)st->append_audit(event("down", 2)); });
    bounded("save_session", [&] { st->save_session(rec("A", "alice", "appdb", 1)); });
    bounded("put_recording_chunk", [&] { st->put_recording_chunk("A", 0, "x", false); });

    peer().start_again();
    CHECK(st->get("ns", "k").value() == "v");  // the same store object, not reopened
    CHECK(st->append_audit(event("after", 3)) == 3);
    race(4, [&](int i) { st->put("ns", "k" + std::to_string(i), "v"); });
    CHECK(st->list("ns").size() == 5);
    verify_chain(st->audit_lines(1, 0));
}

TEST_SUITE_END();
