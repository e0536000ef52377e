#include <doctest/doctest.h>

#include <set>

#include "glassgate/session/session.hpp"

using namespace gg::session;
using namespace std::chrono_literals;

namespace {
TimePoint at(std::int64_t s) { return TimePoint(std::chrono::seconds(s)); }
}  // namespace

TEST_SUITE_BEGIN("session");

TEST_CASE("a session goes authenticating -> connecting -> active -> closing -> closed") {
    Session s("01JDQ0000000000000000000AA", Protocol::postgres, "127.0.0.1:5555", at(1000));
    CHECK(s.state() == State::authenticating);
    REQUIRE(s.authorize("alice", AuthMethod::sso, "appdb", std::chrono::microseconds(8h), ""));
    CHECK(s.state() == State::connecting);
    CHECK(s.record().deadline.value() == at(1000) + 8h);
    REQUIRE(s.activate());
    s.add_bytes(10, 20);
    s.add_bytes(1, 2);
    CHECK(s.record().bytes_client_to_server == 11);
    CHECK(s.record().bytes_server_to_client == 22);
    REQUIRE(s.begin_close(CloseReason::client_disconnect, "client sent Terminate"));
    REQUIRE(s.finish(at(1100)));
    CHECK(s.state() == State::closed);
    CHECK(s.record().ended.value() == at(1100));
    CHECK(s.record().close_reason == CloseReason::client_disconnect);
}

TEST_CASE("transitions out of order are refused with a reason") {
    Session s("id", Protocol::ssh, "c", at(0));
    auto t = s.activate();
    CHECK_FALSE(t.ok);
    CHECK(t.error.find("authenticating") != std::string::npos);
    CHECK_FALSE(s.finish(at(1)));
    CHECK_FALSE(s.begin_close(CloseReason::time_cap, ""));
    CHECK_FALSE(s.authorize("", AuthMethod::sso, "t", std::nullopt, ""));
    CHECK_FALSE(s.authorize("alice", AuthMethod::none, "t", std::nullopt, ""));
    CHECK_FALSE(s.authorize("alice", AuthMethod::sso, "t", std::chrono::microseconds(0), ""));
    CHECK(s.state() == State::authenticating);
}

TEST_CASE("fail() closes from any open state and keeps the first close reason") {
    Session s("id", Protocol::ssh, "c", at(0));
    REQUIRE(s.fail(CloseReason::auth_failed, "bad token", at(5)));
    CHECK(s.state() == State::closed);
    CHECK(s.record().close_reason == CloseReason::auth_failed);
    CHECK_FALSE(s.fail(CloseReason::internal_error, "again", at(6)));

    Session c("id2", Protocol::ssh, "c", at(0));
    REQUIRE(c.authorize("bob", AuthMethod::breakglass, "web01", std::nullopt, "INC-1"));
    REQUIRE(c.activate());
    REQUIRE(c.begin_close(CloseReason::time_cap, "deadline"));
    REQUIRE(c.fail(CloseReason::internal_error, "flush failed", at(9)));
    CHECK(c.record().close_reason == CloseReason::time_cap);  // the reason the close started with
}

TEST_CASE("remaining time before the deadline") {
    Session s("id", Protocol::postgres, "c", at(100));
    CHECK_FALSE(s.remaining(at(100)).has_value());
    REQUIRE(s.authorize("alice", AuthMethod::sso, "appdb", std::chrono::microseconds(60s), ""));
    CHECK(s.remaining(at(130)).value() == std::chrono::microseconds(30s));
    CHECK(s.remaining(at(500)).value() == std::chrono::microseconds(0));
}

TEST_CASE("session ids are time-ordered, unique and validated") {
    const std::uint8_t r1[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const std::uint8_t r2[10] = {255, 255, 255, 255, 255, 255, 255, 255, 255, 255};
    auto a = make_session_id(at(1'700'000'000), r2);
    auto b = make_session_id(at(1'700'000'001), r1);
    CHECK(a.size() == 26);
    CHECK(a < b);  // later start sorts later, whatever the random part
    CHECK(is_valid_session_id(a));
    CHECK(is_valid_session_id(b));
    CHECK(make_session_id(at(0), r1) == std::string(26, '0'));
    CHECK(make_session_id(at(0), r2) == "0000000000ZZZZZZZZZZZZZZZZ");
    CHECK_FALSE(is_valid_session_id("../../etc/passwd"));
    CHECK_FALSE(is_valid_session_id(std::string(26, 'I')));  // not in Crockford's alphabet
    CHECK_FALSE(is_valid_session_id(std::string(25, '0')));
}

TEST_CASE("enum names round-trip") {
    for (auto r : {CloseReason::none, CloseReason::time_cap, CloseReason::recording_failed, CloseReason::admin_kill}) {
        CHECK(close_reason_from_string(to_string(r)).value() == r);
    }
    for (auto st : {State::authenticating, State::connecting, State::active, State::closing, State::closed}) {
        CHECK(state_from_string(to_string(st)).value() == st);
    }
    CHECK(auth_method_from_string("breakglass").value() == AuthMethod::breakglass);
    CHECK_FALSE(protocol_from_string("http").has_value());
}

TEST_SUITE_END();
