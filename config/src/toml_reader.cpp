#include "toml_reader.hpp"

#include <algorithm>

namespace gg::config::detail {
namespace {

std::string_view type_name(toml::node_type type) noexcept {
    switch (type) {
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "float";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

Pos position_of(const toml::source_region& region) noexcept {
    return {static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

std::string child_path(std::string_view parent, std::string_view key) {
    std::string out(parent);
    if (!out.empty()) {
        out += '.';
    }
    out += key;
    return out;
}

std::string index_path(std::string_view parent, std::size_t i) {
    return std::string(parent) + "[" + std::to_string(i) + "]";
}

std::string_view closest(std::string_view word, std::span<const std::string_view> candidates) {
    std::string_view best;
    std::size_t best_distance = 3;
    for (const auto candidate : candidates) {
        const auto d = edit_distance(word, candidate);
        if (d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    return best;
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
    std::vector<std::string_view> views(candidates.begin(), candidates.end());
    return std::string(closest(word, std::span<const std::string_view>(views)));
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

void Diagnostics::error(Pos at, std::string key_path, std::string message) {
    issues_.push_back(Issue{file_, at.line, at.column, std::move(key_path), std::move(message)});
}

void Diagnostics::remember(const std::string& key_path, Pos at) { positions_.insert_or_assign(key_path, at); }

bool Diagnostics::has_issue(std::string_view key_path) const {
    return std::any_of(issues_.begin(), issues_.end(), [&](const Issue& issue) {
        const std::string_view path = issue.key_path;
        return path.starts_with(key_path) &&
               (path.size() == key_path.size() || path[key_path.size()] == '.' || path[key_path.size()] == '[');
    });
}

bool Diagnostics::present(std::string_view key_path) const { return positions_.find(key_path) != positions_.end(); }

Pos Diagnostics::where(std::string_view key_path) const {
    std::string_view path = key_path;
    while (!path.empty()) {
        if (const auto it = positions_.find(path); it != positions_.end()) {
            return it->second;
        }
        // Strip the last component: ".key" or "[i]".
        const auto cut = path.find_last_of(".[");
        if (cut == std::string_view::npos) {
            break;
        }
        path = path.substr(0, cut);
    }
    return {};
}

std::vector<Issue> Diagnostics::take_sorted() {
    std::stable_sort(issues_.begin(), issues_.end(), [](const Issue& a, const Issue& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    return std::move(issues_);
}

// ---------------------------------------------------------------------------------------------
// TableReader

TableReader::TableReader(Diagnostics& diag, const toml::table& table, std::string path,
                         std::span<const std::string_view> known)
    : diag_(diag), table_(table), path_(std::move(path)) {
    if (!path_.empty()) {
        diag_.remember(path_, position());
    }
    for (auto&& [key, node] : table_) {
        const std::string_view name = key.str();
        if (std::find(known.begin(), known.end(), name) != known.end()) {
            continue;
        }
        std::string message = "unknown key " + in_quotes(name);
        if (const auto hint = closest(name, known); !hint.empty()) {
            message += "; did you mean " + in_quotes(hint) + "?";
        }
        diag_.error(position_of(key.source()), key_path(name), std::move(message));
    }
}

bool TableReader::has(std::string_view key) const { return table_.get(key) != nullptr; }

void TableReader::missing(std::string_view key) {
    diag_.error(position(), key_path(key), "missing required key " + in_quotes(key));
}

void TableReader::error(std::string_view key, std::string message) {
    const toml::node* node = table_.get(key);
    diag_.error(node != nullptr ? position_of(node->source()) : position(), key_path(key), std::move(message));
}

const toml::node* TableReader::present_node(std::string_view key) {
    const toml::node* node = table_.get(key);
    if (node != nullptr) {
        diag_.remember(key_path(key), position_of(node->source()));
    }
    return node;
}

void TableReader::wrong_type(std::string_view key, const toml::node& node, std::string_view expected) {
    diag_.error(position_of(node.source()), key_path(key),
                "expected " + std::string(expected) + ", got " + std::string(type_name(node.type())));
}

std::optional<std::string> TableReader::read_string(std::string_view key) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
        wrong_type(key, *node, "a string");
        return std::nullopt;
    }
    if (value->get().empty()) {
        error(key, "must not be empty");
        return std::nullopt;
    }
    return value->get();
}

std::optional<std::int64_t> TableReader::read_integer(std::string_view key, std::int64_t min, std::int64_t max) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_integer();
    if (value == nullptr) {
        wrong_type(key, *node, "an integer");
        return std::nullopt;
    }
    const std::int64_t v = value->get();
    if (v < min) {
        error(key, "must be at least " + std::to_string(min) + ", got " + std::to_string(v));
        return std::nullopt;
    }
    if (v > max) {
        error(key, "must be at most " + std::to_string(max) + ", got " + std::to_string(v));
        return std::nullopt;
    }
    return v;
}

std::optional<bool> TableReader::read_bool(std::string_view key) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_boolean();
    if (value == nullptr) {
        wrong_type(key, *node, "a boolean");
        return std::nullopt;
    }
    return value->get();
}

std::optional<Duration> TableReader::read_duration(std::string_view key, ZeroDuration zero) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
        wrong_type(key, *node, "a duration string such as \"30m\"");
        return std::nullopt;
    }
    auto parsed = parse_duration(value->get());
    if (!parsed.value) {
        error(key, "invalid duration \"" + value->get() + "\": " + parsed.error);
        return std::nullopt;
    }
    if (zero == ZeroDuration::rejected && parsed.value->count() == 0) {
        error(key, "must be greater than zero");
        return std::nullopt;
    }
    return parsed.value;
}

std::optional<SocketAddress> TableReader::read_address(std::string_view key) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
        wrong_type(key, *node, "an address string such as \"127.0.0.1:6432\"");
        return std::nullopt;
    }
    auto parsed = parse_socket_address(value->get());
    if (!parsed.value) {
        error(key, "invalid address \"" + value->get() + "\": " + parsed.error);
        return std::nullopt;
    }
    return std::move(parsed.value);
}

std::optional<std::filesystem::path> TableReader::read_path(std::string_view key,
                                                            const std::filesystem::path& base) {
    auto text = read_string(key);
    if (!text) {
        return std::nullopt;
    }
    if (text->find('\0') != std::string::npos) {
        error(key, "path contains a NUL character");
        return std::nullopt;
    }
    return (base / std::filesystem::path(*text)).lexically_normal();
}

std::optional<std::vector<std::string>> TableReader::read_strings(std::string_view key, bool single) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    if (single) {
        if (const auto* value = node->as_string()) {
            if (value->get().empty()) {
                error(key, "must not be empty");
                return std::nullopt;
            }
            return std::vector<std::string>{value->get()};
        }
    }
    const auto* array = node->as_array();
    if (array == nullptr) {
        wrong_type(key, *node, single ? "a string or an array of strings" : "an array of strings");
        return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string element_path = index_path(key_path(key), i);
        diag_.remember(element_path, position_of(element.source()));
        const auto* value = element.as_string();
        if (value == nullptr) {
            diag_.error(position_of(element.source()), element_path,
                        "expected a string, got " + std::string(type_name(element.type())));
            ok = false;
        } else if (value->get().empty()) {
            diag_.error(position_of(element.source()), element_path, "must not be empty");
            ok = false;
        } else {
            out.push_back(value->get());
        }
    }
    if (!ok) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::size_t> TableReader::read_choice(std::string_view key, std::span<const std::string_view> allowed) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return std::nullopt;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
        wrong_type(key, *node, "a string");
        return std::nullopt;
    }
    const std::string& text = value->get();
    for (std::size_t i = 0; i < allowed.size(); ++i) {
        if (allowed[i] == text) {
            return i;
        }
    }
    std::string message = "invalid value \"" + text + "\", expected one of:";
    for (std::size_t i = 0; i < allowed.size(); ++i) {
        message += (i == 0 ? " " : ", ");
        message += allowed[i];
    }
    if (const auto hint = closest(text, allowed); !hint.empty()) {
        message += "; did you mean " + in_quotes(hint) + "?";
    }
    error(key, std::move(message));
    return std::nullopt;
}

const toml::table* TableReader::read_table(std::string_view key) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return nullptr;
    }
    const auto* table = node->as_table();
    if (table == nullptr) {
        wrong_type(key, *node, "a table ([" + key_path(key) + "])");
        return nullptr;
    }
    return table;
}

const toml::array* TableReader::read_array_of_tables(std::string_view key) {
    const toml::node* node = present_node(key);
    if (node == nullptr) {
        return nullptr;
    }
    const auto* array = node->as_array();
    if (array == nullptr) {
        wrong_type(key, *node, "an array of tables ([[" + key_path(key) + "]])");
        return nullptr;
    }
    return array;
}

const toml::table* element_table(Diagnostics& diag, const toml::array& array, std::size_t i,
                                 const std::string& element_path, std::string_view section) {
    const toml::node& element = *array.get(i);
    const auto* table = element.as_table();
    if (table == nullptr) {
        diag.error(position_of(element.source()), element_path,
                   "expected a table ([[" + std::string(section) + "]]), got " + std::string(type_name(element.type())));
    }
    return table;
}

}  // namespace gg::config::detail
