#include <doctest/doctest.h>

#include <string>

#include "glassgate/config/loader.hpp"

using gg::config::Duration;
using gg::config::format_duration;
using gg::config::parse_duration;
using namespace std::chrono_literals;

TEST_SUITE_BEGIN("config");

TEST_CASE("parse_duration accepts the documented forms") {
    struct Case {
        const char* text;
        Duration expected;
    };
    const Case cases[] = {
        {"0s", 0ms},
        {"500ms", 500ms},
        {"10s", 10s},
        {"30m", 30min},
        {"8h", 8h},
        {"2d", 48h},
        {"1h30m", 90min},
        {"1d2h3m4s5ms", 24h + 2h + 3min + 4s + 5ms},
        {"90m", 90min},
        {"1s500ms", 1500ms},
        {"007s", 7s},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto r = parse_duration(c.text);
        REQUIRE(r.value.has_value());
        CHECK(*r.value == c.expected);
        CHECK(r.error.empty());
    }
}

TEST_CASE("parse_duration rejects everything else with a message") {
    struct Case {
        const char* text;
        const char* error_part;
    };
    const Case cases[] = {
        {"", "empty"},
        {"-5m", "no sign"},
        {"+5m", "no sign"},
        {"5", "missing unit after \"5\""},
        {"5x", "unknown unit \"x\""},
        {"1.5h", "whole numbers only"},
        {"h", "expected a number"},
        {"1h 30m", "unknown unit \"h \""},
        {" 1h", "expected a number"},
        {"30m1h", "largest to smallest"},
        {"1m1m", "largest to smallest"},
        {"5M", "unknown unit \"M\""},
        {"5sec", "unknown unit \"sec\""},
        {"99999999999999999999s", "too large"},
        {"9223372036854775807d", "too large"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto r = parse_duration(c.text);
        CHECK_FALSE(r.value.has_value());
        CHECK(r.error.find(c.error_part) != std::string::npos);
    }
}

TEST_CASE("format_duration writes what parse_duration reads") {
    CHECK(format_duration(0ms) == "0s");
    CHECK(format_duration(500ms) == "500ms");
    CHECK(format_duration(90min) == "1h30m");
    CHECK(format_duration(48h) == "2d");
    CHECK(format_duration(1500ms) == "1s500ms");
    CHECK(format_duration(-5min) == "-5m");
    for (const Duration d : {Duration(1ms), Duration(999ms), Duration(61s), Duration(25h + 1ms), Duration(123456789)}) {
        const auto r = parse_duration(format_duration(d));
        REQUIRE(r.value.has_value());
        CHECK(*r.value == d);
    }
}

TEST_SUITE_END();
