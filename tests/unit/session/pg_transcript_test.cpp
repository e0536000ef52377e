#include "glassgate/session/pg_transcript.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

#include "recording_fixture.hpp"

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
    auto rec = test::decoded(test::header("postgres", "appdb", "alice", 1'700'000'000'000'000), std::move(events));
    rec.report.sealed = true;
    return rec;
}

}  // namespace

TEST_SUITE_BEGIN("pg_transcript");

TEST_CASE("a header start time beyond what the clock holds is shown as a number") {
    auto rec = recording({});
    rec.header.started_unix_us = 9'764'806'400'000'000;  // year 2279
    const auto text = render_pg_transcript(rec);
    CHECK(text.find(", started_unix_us 9764806400000000\n") != std::string::npos);
    rec.header.started_unix_us = std::numeric_limits<std::int64_t>::min();
    CHECK(render_pg_transcript(rec).find(", started_unix_us -9223372036854775808\n") != std::string::npos);
    rec.header.started_unix_us = 1'700'000'000'000'000;
    CHECK(render_pg_transcript(rec).find(", started 2023-11-14T22:13:20.000000Z\n") != std::string::npos);
}

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

TEST_SUITE_BEGIN("pg_transcript bulk");

TEST_CASE("a COPY summary shows its size, message count and hash instead of the recorded bytes") {
    const std::string hash(64, 'a');
    const std::string out_summary = R"({"direction":"out","messages":1000000,"bytes":41888896,"recorded_messages":100,"sha256":")" + hash +
                                    R"(","end":"done"})";
    const std::string in_summary = R"({"direction":"in","messages":3,"bytes":30,"recorded_messages":3,"sha256":")" + hash +
                                   R"(","end":"fail"})";
    const auto text = render_pg_transcript(recording({
        frontend(1, msg('Q', "copy big to stdout\0"sv)),
        backend(2, msg('H', "\0\0\x01\0\0"sv) + msg('d', "1\tx\n")),
        Event{3, EventKind::pg_copy, Direction::server_to_client, to_bytes(out_summary)},
        backend(4, msg('c', "") + msg('C', "COPY 1000000\0"sv)),
        Event{5, EventKind::pg_copy, Direction::client_to_server, to_bytes(in_summary)},
        frontend(6, msg('f', "stop\0"sv)),
    }));
    CHECK(text.find("COPY     server sent 41888896 bytes in 1000000 messages, sha256 " + hash + ", 100 recorded\n") !=
          std::string::npos);
    CHECK(text.find("->       COPY 1000000") != std::string::npos);
    // The recorded CopyData alone (4 bytes) is not reported as what was sent.
    CHECK(text.find("server sent 4 bytes") == std::string::npos);
    CHECK(text.find("client sent 30 bytes in 3 messages, sha256 " + hash + ", all recorded; the client aborted it") !=
          std::string::npos);
    CHECK(text.find("client aborted COPY") == std::string::npos);
}

TEST_CASE("a message relayed in pieces shows its size, hash and the recorded start") {
    // A DataRow with one 5000000-byte value, of which the first 16 bytes of the message were recorded
    // in two pieces, then its end; a large Query; a large Bind with redacted values; an interrupted one.
    const std::string row_start = std::string("D") + std::string("\x00\x4c\x4b\x46", 4) + std::string("\x00\x01\x00\x4c\x4b\x40", 6) + "xxxxx";
    const std::string hash(64, 'b');
    const auto text = render_pg_transcript(recording({
        backend(1, msg('T', "\0\x01v\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0"sv)),
        Event{2, EventKind::pg_large, Direction::server_to_client, to_bytes(row_start.substr(0, 7))},
        Event{2, EventKind::pg_large, Direction::server_to_client, to_bytes(row_start.substr(7))},
        Event{3, EventKind::pg_large_end, Direction::server_to_client,
              to_bytes(R"({"type":"D","bytes":5000011,"recorded":16,"sha256":")" + hash + R"("})")},
        Event{4, EventKind::pg_large, Direction::client_to_server, to_bytes(std::string("Q\x00\x10\x00\x00", 5) + "select 'yyyy")},
        Event{5, EventKind::pg_large_end, Direction::client_to_server,
              to_bytes(R"({"type":"Q","bytes":1048577,"recorded":17,"sha256":")" + hash + R"("})")},
        Event{6, EventKind::pg_large_end, Direction::client_to_server, to_bytes(R"({"type":"B","bytes":2000000,"recorded":0,"redacted":true})")},
        Event{7, EventKind::pg_large_end, Direction::server_to_client,
              to_bytes(R"({"type":"D","bytes":9000000,"relayed":100000,"recorded":65536,"interrupted":true})")},
    }));
    CHECK(text.find("  row    v=5000000 bytes starting 'xxxxx' (5000011-byte message, first 16 bytes recorded, sha256 " + hash + ")") !=
          std::string::npos);
    CHECK(text.find("QUERY    select 'yyyy (1048577-byte message, first 17 bytes recorded, sha256 " + hash + ")") != std::string::npos);
    CHECK(text.find("BIND     (2000000-byte message, values redacted)") != std::string::npos);
    CHECK(text.find("(9000000-byte message, cut off after 100000 bytes by the end of the session, first 65536 bytes recorded)") !=
          std::string::npos);
    // Without rows, the large row is not shown either.
    TranscriptOptions no_rows;
    no_rows.rows = false;
    CHECK(render_pg_transcript(recording({Event{3, EventKind::pg_large_end, Direction::server_to_client,
                                                to_bytes(R"({"type":"D","bytes":5000011,"recorded":0})")}}),
                               no_rows)
              .find("5000011") == std::string::npos);
}

TEST_SUITE_END();
