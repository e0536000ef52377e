#include "glassgate/protocols/ssh/authorized_keys.hpp"

#include <vector>

namespace gg::ssh {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/// Whitespace-separated fields of one line; double quotes (with backslash escapes) keep spaces
/// inside an options field, as sshd's parser does.
std::vector<std::string_view> fields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) ++i;
        if (i >= line.size()) break;
        const std::size_t start = i;
        bool quoted = false;
        while (i < line.size() && (quoted || !is_space(line[i]))) {
            if (quoted && line[i] == '\\' && i + 1 < line.size()) {
                i += 2;
                continue;
            }
            if (line[i] == '"') quoted = !quoted;
            ++i;
        }
        out.push_back(line.substr(start, i - start));
    }
    return out;
}

bool line_holds(std::string_view line, const PublicKeyLine& key) {
    const auto f = fields(line);
    if (f.empty() || f[0].front() == '#') return false;
    // "type base64 ..." or "options type base64 ...": the options field never equals a key type.
    for (std::size_t i = 0; i + 1 < f.size() && i < 2; ++i) {
        if (f[i] == key.type && f[i + 1] == key.base64) return true;
    }
    return false;
}

/// Calls `fn(line_with_its_newline, line_without_newline)` for every line of `text`.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto nl = text.find('\n', pos);
        const std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
        const auto whole = text.substr(pos, end - pos);
        fn(whole, nl == std::string_view::npos ? whole : whole.substr(0, whole.size() - 1));
        pos = end;
    }
}

bool good_comment(std::string_view c) {
    if (c.empty()) return false;
    for (char ch : c) {
        if (ch <= ' ' || ch > '~') return false;
    }
    return true;
}

}  // namespace

bool authorized_keys_has(std::string_view text, const PublicKeyLine& key) {
    bool found = false;
    for_each_line(text, [&](std::string_view, std::string_view line) { found = found || line_holds(line, key); });
    return found;
}

std::string authorized_keys_with(std::string_view text, const PublicKeyLine& key, std::string_view comment) {
    std::string out(text);
    if (authorized_keys_has(text, key)) return out;
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += key.type;
    out += ' ';
    out += key.base64;
    if (good_comment(comment)) {
        out += ' ';
        out += comment;
    }
    out += '\n';
    return out;
}

std::string authorized_keys_without(std::string_view text, const PublicKeyLine& key) {
    std::string out;
    out.reserve(text.size());
    for_each_line(text, [&](std::string_view whole, std::string_view line) {
        if (!line_holds(line, key)) out += whole;
    });
    return out;
}

}  // namespace gg::ssh
