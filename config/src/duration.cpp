// Duration strings as the configuration writes them: "30m", "1h30m", "500ms", "2d".
//
//   duration  = component { component }
//   component = digits unit
//   unit      = "d" | "h" | "m" | "s" | "ms"      (each at most once, largest first)
//
// No sign, no fractions, no spaces: one spelling per value keeps the file greppable and avoids the
// "1.5h" vs "1h30m" vs "90m" questions in review.

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "glassgate/config/loader.hpp"

namespace gg::config {
namespace {

struct Unit {
    std::string_view suffix;
    std::int64_t millis;
};

// Largest first: the order components must appear in.
constexpr std::array<Unit, 5> units{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

constexpr std::string_view unit_list = "ms, s, m, h or d";

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

DurationParse fail(std::string message) { return {std::nullopt, std::move(message)}; }

}  // namespace

DurationParse parse_duration(std::string_view text) {
    if (text.empty()) {
        return fail("empty duration (expected e.g. \"30m\")");
    }
    if (text.front() == '-' || text.front() == '+') {
        return fail("a duration has no sign");
    }
    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    std::int64_t total = 0;
    std::size_t previous_unit = units.size();  // index into `units`; components must strictly descend
    std::size_t i = 0;
    while (i < text.size()) {
        if (!is_digit(text[i])) {
            return fail("expected a number at \"" + std::string(text.substr(i)) + "\"");
        }
        const std::size_t digits_begin = i;
        std::int64_t number = 0;
        for (; i < text.size() && is_digit(text[i]); ++i) {
            const int digit = text[i] - '0';
            if (number > (max - digit) / 10) {
                return fail("duration is too large");
            }
            number = number * 10 + digit;
        }
        const std::string_view digits = text.substr(digits_begin, i - digits_begin);
        if (i == text.size()) {
            return fail("missing unit after \"" + std::string(digits) + "\" (use " + std::string(unit_list) + ")");
        }
        if (text[i] == '.' || text[i] == ',') {
            return fail("whole numbers only (write \"1h30m\", not \"1.5h\")");
        }
        std::size_t unit_end = i;
        while (unit_end < text.size() && !is_digit(text[unit_end])) {
            ++unit_end;
        }
        const std::string_view suffix = text.substr(i, unit_end - i);
        std::size_t unit = units.size();
        for (std::size_t u = 0; u < units.size(); ++u) {
            if (units[u].suffix == suffix) {
                unit = u;
            }
        }
        if (unit == units.size()) {
            return fail("unknown unit \"" + std::string(suffix) + "\" (use " + std::string(unit_list) + ")");
        }
        if (previous_unit != units.size() && unit <= previous_unit) {
            return fail("units must go from largest to smallest, each at most once (e.g. \"1h30m\")");
        }
        previous_unit = unit;
        if (number > max / units[unit].millis) {
            return fail("duration is too large");
        }
        const std::int64_t millis = number * units[unit].millis;
        if (total > max - millis) {
            return fail("duration is too large");
        }
        total += millis;
        i = unit_end;
    }
    return {Duration(total), {}};
}

std::string format_duration(Duration d) {
    auto ms = d.count();
    if (ms == 0) {
        return "0s";
    }
    if (ms == std::numeric_limits<Duration::rep>::min()) {
        return std::to_string(ms) + "ms";  // cannot be negated; never produced by parse_duration
    }
    std::string out;
    if (ms < 0) {
        out = "-";
        ms = -ms;
    }
    for (const auto& unit : units) {
        const auto n = ms / unit.millis;
        if (n != 0) {
            out += std::to_string(n);
            out += unit.suffix;
            ms -= n * unit.millis;
        }
    }
    return out;
}

}  // namespace gg::config
