// The shared text helpers: glob matching and UTC formatting.

#include "glassgate/protocols/text.hpp"

#include <doctest/doctest.h>

using namespace gg;
using namespace std::chrono;

TEST_SUITE_BEGIN("text");

TEST_CASE("glob_match: *, ?, literals, whole text") {
    CHECK(glob_match("web-*", "web-01"));
    CHECK(glob_match("web-*", "web-"));
    CHECK_FALSE(glob_match("web-*", "xweb-01"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("", ""));
    CHECK_FALSE(glob_match("", "a"));
    CHECK(glob_match("db?", "db1"));
    CHECK_FALSE(glob_match("db?", "db"));
    CHECK_FALSE(glob_match("db?", "db12"));
    CHECK(glob_match("a*b*c", "axxbyyc"));
    CHECK_FALSE(glob_match("a*b*c", "axxbyy"));
    CHECK(glob_match("**", "anything"));
    CHECK(glob_match("*.internal", "db.prod.internal"));
    CHECK_FALSE(glob_match("*.internal", "db.prod.internal.evil"));
}

TEST_CASE("glob_match: sets, negation, ranges and escapes (SSH env rules: LC_[A-Z]*)") {
    CHECK(glob_match("LC_*", "LC_ALL"));
    CHECK(glob_match("LC_[A-Z]*", "LC_TIME"));
    CHECK_FALSE(glob_match("LC_[A-Z]*", "LC_time"));
    CHECK(glob_match("[abc]", "b"));
    CHECK_FALSE(glob_match("[abc]", "d"));
    CHECK(glob_match("[!abc]", "d"));
    CHECK(glob_match("[^abc]", "d"));
    CHECK_FALSE(glob_match("[!abc]", "a"));
    CHECK(glob_match("[]]", "]"));       // a ']' first in a set is literal
    CHECK(glob_match("[a-]", "-"));      // a '-' last is literal
    CHECK(glob_match("x[", "x["));       // no closing ']': a literal '['
    CHECK(glob_match("a\\*", "a*"));
    CHECK_FALSE(glob_match("a\\*", "ab"));
    CHECK(glob_match("a\\?b", "a?b"));
    CHECK(glob_match("*[0-9]", "web-7"));
    CHECK_FALSE(glob_match("*[0-9]", "web-x"));
}

TEST_CASE("glob_match: a long text with many stars stays fast and right") {
    const std::string text(20000, 'a');
    CHECK(glob_match("*a*a*a*a*a*a*a*", text));
    CHECK_FALSE(glob_match("*a*a*a*a*a*a*b", text));
}

TEST_CASE("format_utc: seconds and microseconds") {
    CHECK(format_utc(system_clock::time_point(seconds(0))) == "1970-01-01T00:00:00Z");
    CHECK(format_utc(system_clock::time_point(seconds(1795428000))) == "2026-11-23T10:00:00Z");
    CHECK(format_utc(system_clock::time_point(milliseconds(1795428000999))) == "2026-11-23T10:00:00Z");
    CHECK(format_utc(system_clock::time_point(microseconds(1795428000123456)), UtcDigits::microseconds) ==
          "2026-11-23T10:00:00.123456Z");
    CHECK(format_utc(system_clock::time_point(seconds(0)), UtcDigits::microseconds) == "1970-01-01T00:00:00.000000Z");
    // Before 1970: the fraction is never negative.
    CHECK(format_utc(system_clock::time_point(microseconds(-1)), UtcDigits::microseconds) == "1969-12-31T23:59:59.999999Z");
}

TEST_SUITE_END();
