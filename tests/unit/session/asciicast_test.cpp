#include "glassgate/session/asciicast.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "recording_fixture.hpp"

using namespace gg;
using namespace gg::session;

namespace {

Event out(std::uint64_t t, std::string_view s) { return Event{t, EventKind::term_output, Direction::server_to_client, to_bytes(s)}; }
Event in(std::uint64_t t, std::string_view s) { return Event{t, EventKind::term_input, Direction::client_to_server, to_bytes(s)}; }
Event resize(std::uint64_t t, std::uint32_t c, std::uint32_t r) {
    return Event{t, EventKind::resize, Direction::client_to_server, encode_resize({c, r})};
}

DecodedRecording recording(std::vector<Event> events) {
    return test::decoded(test::header("ssh", "web01", "alice", 1'700'000'000'999'999), std::move(events));
}

std::vector<std::string> lines(const std::string& doc) {
    std::vector<std::string> v;
    std::istringstream is(doc);
    for (std::string l; std::getline(is, l);) v.push_back(l);
    return v;
}

boost::json::value parse(const std::string& line) {
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    INFO(line);
    REQUIRE_FALSE(ec);
    return v;
}

const std::string fffd = "\xEF\xBF\xBD";

}  // namespace

TEST_SUITE_BEGIN("asciicast");

TEST_CASE("header and event lines") {
    const auto doc = to_asciicast_v2(recording({
        Event{0, EventKind::env, Direction::client_to_server, encode_env("TERM", "xterm-256color")},
        resize(0, 132, 43),
        out(1'500'000, "$ "),
        in(2'000'001, "ls\r"),
        Event{2'100'000, EventKind::annotation, Direction::none, to_bytes("not exported")},
        resize(3'000'000, 100, 30),
        Event{3'100'000, EventKind::term_stderr, Direction::server_to_client, to_bytes("err\n")},
    }));
    const auto ls = lines(doc);
    REQUIRE(ls.size() == 6);
    CHECK(doc.back() == '\n');
    const auto h = parse(ls[0]).as_object();
    CHECK(h.at("version").as_int64() == 2);
    CHECK(h.at("width").to_number<int>() == 132);
    CHECK(h.at("height").to_number<int>() == 43);
    CHECK(h.at("timestamp").as_int64() == 1'700'000'000);
    CHECK(h.at("env").at("TERM").as_string() == "xterm-256color");
    CHECK(ls[1] == R"([0.000000, "r", "132x43"])");
    CHECK(ls[2] == R"([1.500000, "o", "$ "])");
    CHECK(ls[3] == R"([2.000001, "i", "ls\r"])");
    CHECK(ls[4] == R"([3.000000, "r", "100x30"])");
    CHECK(ls[5] == R"([3.100000, "o", "err\n"])");
    for (std::size_t i = 1; i < ls.size(); ++i) {
        const auto a = parse(ls[i]).as_array();
        REQUIRE(a.size() == 3);
        CHECK(a[0].is_double());
        CHECK(a[1].is_string());
        CHECK(a[2].is_string());
    }
}

TEST_CASE("default size is 80x24") {
    const auto ls = lines(to_asciicast_v2(recording({out(1, "x")})));
    const auto h = parse(ls[0]).as_object();
    CHECK(h.at("width").to_number<int>() == 80);
    CHECK(h.at("height").to_number<int>() == 24);
    CHECK_FALSE(h.contains("env"));
}

TEST_CASE("UTF-8 sanitising: every ill-formed subpart becomes one U+FFFD") {
    CHECK(sanitize_utf8("plain ascii") == "plain ascii");
    CHECK(sanitize_utf8("\xE2\x82\xAC \xF0\x9F\x98\x80") == "\xE2\x82\xAC \xF0\x9F\x98\x80");  // euro, emoji
    CHECK(sanitize_utf8("\xC0\x80") == fffd + fffd);                       // overlong NUL
    CHECK(sanitize_utf8("\xE0\x80\x80") == fffd + fffd + fffd);            // overlong
    CHECK(sanitize_utf8("\xED\xA0\x80") == fffd + fffd + fffd);            // surrogate
    CHECK(sanitize_utf8("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd); // above U+10FFFF
    CHECK(sanitize_utf8("\xF5\xFF\xFE") == fffd + fffd + fffd);
    CHECK(sanitize_utf8("\xE2\x82" "A") == fffd + "A");                    // truncated 3-byte sequence
    CHECK(sanitize_utf8("\xF0\x9F\x98") == fffd);                          // truncated at the end
    CHECK(sanitize_utf8("\x80" "a" "\xBF") == fffd + "a" + fffd);
    CHECK(sanitize_utf8(std::string_view("a\0b", 3)) == std::string("a\0b", 3));
}

TEST_CASE("JSON quoting escapes control characters and round-trips") {
    CHECK(json_quote("a\"b\\c\n\r\t\b\f\x1b\x7f") == R"("a\"b\\c\n\r\t\b\f\u001b\u007f")");
    std::string all;
    for (int c = 0; c < 0x80; ++c) all.push_back(static_cast<char>(c));
    all += "\xC3\xA9\xE2\x80\xA8";  // é, U+2028
    const auto v = parse(json_quote(all));
    CHECK(v.as_string() == all);
}

TEST_CASE("arbitrary bytes give valid JSON lines; characters split across events are joined") {
    const auto doc = to_asciicast_v2(recording({
        out(1, "caf\xC3"), out(2, "\xA9 \xFF"),          // é split across two events
        in(3, "\xE2\x82"), out(4, "x"), in(5, "\xAC"),   // € split, with another stream in between
        out(6, "\xF0\x9F"),                              // cut at the end of the recording
    }));
    const auto ls = lines(doc);
    REQUIRE(ls.size() == 6);
    CHECK(parse(ls[1]).as_array()[2].as_string() == "caf");
    CHECK(parse(ls[2]).as_array()[2].as_string() == "\xC3\xA9 " + fffd);
    CHECK(parse(ls[3]).as_array()[2].as_string() == "x");
    CHECK(parse(ls[4]).as_array()[2].as_string() == "\xE2\x82\xAC");
    CHECK(parse(ls[4]).as_array()[1].as_string() == "i");
    CHECK(parse(ls[5]).as_array()[2].as_string() == fffd);  // flushed at the end, at the last time
    CHECK(ls[5].substr(0, 10) == "[0.000006,");

    // Random bytes: every line must parse as JSON (Boost.JSON validates UTF-8).
    std::uint64_t x = 88172645463325252ull;
    std::vector<Event> events;
    for (int i = 0; i < 200; ++i) {
        std::string s;
        for (int k = 0; k < 40; ++k) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_back(static_cast<char>(x & 0xFF));
        }
        events.push_back(i % 3 ? out(static_cast<std::uint64_t>(i), s) : in(static_cast<std::uint64_t>(i), s));
    }
    for (const auto& l : lines(to_asciicast_v2(recording(events)))) parse(l);
}

TEST_CASE("asciinema cat prints the recorded output") {
    if (!std::filesystem::exists("/usr/bin/asciinema") || !std::filesystem::exists("/usr/bin/script")) {
        MESSAGE("asciinema or script not installed: skipping the asciinema check");
        return;
    }
    const auto dir = std::filesystem::temp_directory_path() / ("gg-asciicast-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto cast = dir / "s.cast";
    const auto printed = dir / "out.txt";
    {
        std::ofstream f(cast, std::ios::binary);
        f << to_asciicast_v2(recording({resize(0, 100, 30), out(100, "hello \x1b[1mwor"), in(150, "q"),
                                        out(200, "ld\x1b[0m caf\xC3"), out(300, "\xA9 \xFF!\r\n")}));
    }
    // `asciinema cat` insists on a terminal (/dev/tty): give it one with script(1).
    const std::string cmd = "/usr/bin/script -qec '/usr/bin/asciinema cat " + cast.string() + "' /dev/null > " +
                            printed.string() + " 2>&1 < /dev/null";
    const int rc = std::system(cmd.c_str());
    std::ifstream pf(printed, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(pf)), std::istreambuf_iterator<char>());
    INFO(text);
    CHECK(rc == 0);
    CHECK(text.find("hello \x1b[1mworld\x1b[0m caf\xC3\xA9 " + fffd + "!") != std::string::npos);
    CHECK(text.find("q") == std::string::npos);  // input is not printed
    std::filesystem::remove_all(dir);
}

TEST_SUITE_END();
