#include "glassgate/session/pg_transcript.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace gg;
using namespace gg::session;
using namespace std::string_view_literals;

namespace {

/// One wire message: type byte, big-endian length (body + 4), body.
std::string msg(char type, std::string_view body) {
    const auto n = static_cast<std::uint32_t>(body.size() + 4);
    std::string m(1, type);
    for (int shift : {24, 16, 8, 0}) m += static_cast<char>((n >> shift) & 0xFF);
    return m + std::string(body);
}
Event frontend(std::uint64_t t, const std::string& wire) {
    return Event{t, EventKind::pg_frontend, Direction::client_to_server, to_bytes(wire)};
}
Event backend(std::uint64_t t, const std::string& wire) {
    return Event{t, EventKind::pg_backend, Direction::server_to_client, to_bytes(wire)};
}

DecodedRecording recording(std::vector<Event> events) {
    DecodedRecording rec;
    rec.header.session_id = "01HZY3K6J7V4T1X9Q2M8N5B0CD";
    rec.header.protocol = "postgres";
    rec.header.target = "appdb";
    rec.header.identity = "alice";
    rec.header.started_unix_us = 1'700'000'000'000'000;
    rec.report.sealed = true;
    rec.events = std::move(events);
    return rec;
}

}  // namespace

TEST_SUITE_BEGIN("pg_transcript");

TEST_CASE("an event with several messages (one relayed read) shows each of them, in order") {
    // Parse "s1: select $1", Bind s1 with '42', Execute, Sync in one frontend event.
    const std::string parse = msg('P', "s1\0select $1\0\0\0"sv);
    const std::string bind = msg('B', "\0s1\0\0\0\0\x01\0\0\0\x02"
                                      "42\0\0"sv);
    const std::string execute = msg('E', "\0\0\0\0\0"sv);
    const std::string sync = msg('S', "");
    // RowDescription (one column "v"), DataRow '42', CommandComplete, ReadyForQuery in one backend event.
    const std::string row_desc = msg('T', "\0\x01v\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0"sv);
    const std::string data_row = msg('D', "\0\x01\0\0\0\x02"
                                          "42"sv);
    const std::string complete = msg('C', "SELECT 1\0"sv);
    const std::string ready = msg('Z', "I");
    const auto text = render_pg_transcript(recording({frontend(1000, parse + bind + execute + sync),
                                                      backend(2000, row_desc + data_row + complete + ready)}));
    const auto p = text.find("PARSE    s1: select $1");
    const auto b = text.find("BIND     s1  $1='42'");
    const auto e = text.find("EXECUTE");
    const auto s = text.find("SYNC");
    const auto r = text.find("  row    v='42'");
    const auto c = text.find("->       SELECT 1");
    CHECK_MESSAGE(p != std::string::npos, text);
    CHECK_MESSAGE(b != std::string::npos, text);
    CHECK_MESSAGE(r != std::string::npos, text);
    CHECK(p < b);
    CHECK(b < e);
    CHECK(e < s);
    CHECK(s < r);
    CHECK(r < c);
    CHECK(text.find("unreadable") == std::string::npos);
}

TEST_CASE("a message cut short inside an event is reported, the ones before it shown") {
    const std::string query = msg('Q', "select 1\0"sv);
    const std::string cut = msg('Q', "select 2\0"sv).substr(0, 7);
    const auto text = render_pg_transcript(recording({frontend(1000, query + cut)}));
    CHECK_MESSAGE(text.find("QUERY    select 1") != std::string::npos, text);
    CHECK_MESSAGE(text.find("?        unreadable message (7 bytes)") != std::string::npos, text);
    CHECK(text.find("select 2") == std::string::npos);
}
