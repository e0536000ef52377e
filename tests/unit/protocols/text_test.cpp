// The shared text helpers: glob matching and UTC formatting.

#include "glassgate/protocols/text.hpp"

#include <doctest/doctest.h>

#include <string_view>

using namespace gg;
using namespace std::chrono;

TEST_SUITE_BEGIN("text");

TEST_CASE("glob_match: *, ?, sets, negation, ranges, escapes, whole text") {
    struct Case {
        std::string_view pattern;
        std::string_view text;
        bool matches;
    };
    const Case cases[] = {
        // *, ?, literals; the whole text must match.
        {"web-*", "web-01", true},
        {"web-*", "web-", true},
        {"web-*", "xweb-01", false},
        {"*", "", true},
        {"", "", true},
        {"", "a", false},
        {"db?", "db1", true},
        {"db?", "db", false},
        {"db?", "db12", false},
        {"a*b*c", "axxbyyc", true},
        {"a*b*c", "axxbyy", false},
        {"**", "anything", true},
        {"*.internal", "db.prod.internal", true},
        {"*.internal", "db.prod.internal.evil", false},
        // Target names as break-glass rules match them (session/breakglass.hpp uses gg::glob_match).
        {"orders-db", "orders-db", true},
        {"orders-db", "orders-db2", false},
        {"*-db", "orders-db", true},
        {"**x", "aax", true},
        // Sets, negation, ranges and escapes (SSH env rules: LC_[A-Z]*).
        {"LC_*", "LC_ALL", true},
        {"LC_[A-Z]*", "LC_TIME", true},
        {"LC_[A-Z]*", "LC_time", false},
        {"[abc]", "b", true},
        {"[abc]", "d", false},
        {"[!abc]", "d", true},
        {"[^abc]", "d", true},
        {"[!abc]", "a", false},
        {"[]]", "]", true},  // a ']' first in a set is literal
        {"[a-]", "-", true},  // a '-' last is literal
        {"x[", "x[", true},  // no closing ']': a literal '['
        {"a\\*", "a*", true},
        {"a\\*", "ab", false},
        {"a\\?b", "a?b", true},
        {"*[0-9]", "web-7", true},
        {"*[0-9]", "web-x", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.pattern);
        CAPTURE(c.text);
        CHECK(glob_match(c.pattern, c.text) == c.matches);
    }
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

TEST_CASE("UTF-8: well-formed sequences kept, every ill-formed byte replaced by U+FFFD") {
    CHECK(gg::is_utf8(""));
    CHECK(gg::is_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
    CHECK_FALSE(gg::is_utf8("\xC0\xAF"));          // overlong
    CHECK_FALSE(gg::is_utf8("\xED\xA0\x80"));      // surrogate
    CHECK_FALSE(gg::is_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(gg::is_utf8("\xE2\x82"));          // cut
    CHECK(gg::to_utf8_lossy("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
    CHECK(gg::to_utf8_lossy("\xE2\x82") == "\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(gg::to_utf8_lossy("caf\xC3\xA9") == "caf\xC3\xA9");
    CHECK(gg::utf8_sequence("") == 0);
    CHECK(gg::utf8_sequence("\xF0\x9F\x98\x80x") == 4);
}
