#include "glassgate/protocols/text.hpp"

#include <cstdio>

namespace gg {
namespace {

/// At pattern[p] == '[': whether the set matches c; `end` is set past the ']' (npos if there is none).
bool set_matches(std::string_view pattern, std::size_t p, char c, std::size_t& end) noexcept {
    std::size_t i = p + 1;
    bool negate = false;
    if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
        negate = true;
        ++i;
    }
    bool match = false;
    bool first = true;
    for (; i < pattern.size(); ++i) {
        if (pattern[i] == ']' && !first) {
            end = i + 1;
            return match != negate;
        }
        first = false;
        char lo = pattern[i];
        if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
        char hi = lo;
        if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
            hi = pattern[i + 2];
            if (hi == '\\' && i + 3 < pattern.size()) ++i, hi = pattern[i + 2];
            i += 2;
        }
        const auto u = static_cast<unsigned char>(c);
        if (static_cast<unsigned char>(lo) <= u && u <= static_cast<unsigned char>(hi)) match = true;
    }
    end = std::string_view::npos;
    return false;
}

/// Whether the single-character element at pattern[p] matches c; `next` is set past the element.
bool element_matches(std::string_view pattern, std::size_t p, char c, std::size_t& next) noexcept {
    const char e = pattern[p];
    if (e == '?') {
        next = p + 1;
        return true;
    }
    if (e == '[') {
        std::size_t end = 0;
        const bool m = set_matches(pattern, p, c, end);
        if (end != std::string_view::npos) {
            next = end;
            return m;
        }
        next = p + 1;  // no closing ']': a literal '['
        return c == '[';
    }
    if (e == '\\' && p + 1 < pattern.size()) {
        next = p + 2;
        return c == pattern[p + 1];
    }
    next = p + 1;
    return c == e;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
    std::size_t p = 0;
    std::size_t t = 0;
    std::size_t star = std::string_view::npos;  // the pattern position after the last '*'
    std::size_t star_text = 0;                   // where the text stood when it was met
    while (t < text.size()) {
        std::size_t next = 0;
        if (p < pattern.size() && pattern[p] == '*') {
            star = ++p;
            star_text = t;
        } else if (p < pattern.size() && element_matches(pattern, p, text[t], next)) {
            p = next;
            ++t;
        } else if (star != std::string_view::npos) {
            p = star;
            t = ++star_text;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

std::string format_utc(std::chrono::system_clock::time_point t, UtcDigits digits) {
    using namespace std::chrono;
    const auto us = floor<microseconds>(t);
    const auto secs = floor<seconds>(us);
    const auto days = floor<std::chrono::days>(secs);
    const year_month_day ymd{days};
    const hh_mm_ss<seconds> hms{secs - days};
    char buf[48];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                                static_cast<int>(hms.seconds().count()));
    std::string out(buf, static_cast<std::size_t>(n));
    if (digits == UtcDigits::microseconds) {
        std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>((us - secs).count()));
        out += buf;
    }
    out += 'Z';
    return out;
}

std::size_t utf8_sequence(std::string_view s) noexcept {
    if (s.empty()) return 0;
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
    for (std::size_t i = 2; i < n; ++i) {
        if (b(i) < 0x80 || b(i) > 0xBF) return 0;
    }
    return n;
}

bool is_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence(s.substr(i));
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string to_utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence(s.substr(i));
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(s, i, n);
            i += n;
        }
    }
    return out;
}

}  // namespace gg
