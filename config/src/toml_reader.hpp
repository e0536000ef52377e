#pragma once
// Private to gg_config. Typed, schema-checked access to a parsed toml++ document that never throws:
// every problem becomes an Issue with the key path and the source position of the offending node,
// and every key that was written is remembered with its position so the cross-field rules in
// validate() can point at the right line.

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/config/loader.hpp"

namespace gg::config::detail {

/// 1-based line and column; 0:0 means "no single location".
struct Pos {
    int line = 0;
    int column = 0;
};

[[nodiscard]] Pos position_of(const toml::source_region& region) noexcept;

/// "parent.key", or "key" at the root.
[[nodiscard]] std::string child_path(std::string_view parent, std::string_view key);
/// "parent[i]".
[[nodiscard]] std::string index_path(std::string_view parent, std::size_t i);

/// The closest candidate within edit distance 2 of `word`, or empty.
[[nodiscard]] std::string_view closest(std::string_view word, std::span<const std::string_view> candidates);
/// `closest` over a list of owned strings.
[[nodiscard]] std::string closest(std::string_view word, const std::vector<std::string>& candidates);

/// Issues of one file, and the position of every key path that was present in it.
class Diagnostics {
public:
    explicit Diagnostics(std::string file) : file_(std::move(file)) {}

    void error(Pos at, std::string key_path, std::string message);
    void remember(const std::string& key_path, Pos at);
    /// True when `key_path` was written in the file (valid or not).
    [[nodiscard]] bool present(std::string_view key_path) const;
    /// Position of `key_path`, else of its nearest remembered ancestor, else 0:0.
    [[nodiscard]] Pos where(std::string_view key_path) const;
    /// True when an issue was reported at exactly `key_path` or below it ("a.b" covers "a.b[0]").
    [[nodiscard]] bool has_issue(std::string_view key_path) const;
    [[nodiscard]] bool empty() const noexcept { return issues_.empty(); }
    /// All issues in file order (line, then column; ties keep the order of discovery).
    [[nodiscard]] std::vector<Issue> take_sorted();

private:
    std::string file_;
    std::vector<Issue> issues_;
    std::map<std::string, Pos, std::less<>> positions_;
};

enum class ZeroDuration { allowed, rejected };

/// One table of the schema. Construction reports every key that is not in `known` as an error
/// (with a "did you mean" hint). Each read_* returns std::nullopt both when the key is absent and
/// when it is invalid; invalid values have been reported. Use has() to tell the two apart.
class TableReader {
public:
    TableReader(Diagnostics& diag, const toml::table& table, std::string path,
                std::span<const std::string_view> known);

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] Pos position() const noexcept { return position_of(table_.source()); }
    [[nodiscard]] bool has(std::string_view key) const;
    [[nodiscard]] std::string key_path(std::string_view key) const { return child_path(path_, key); }

    /// Reports `key` as missing, at the position of this table.
    void missing(std::string_view key);
    /// Reports `message` about `key`, at the key's value (or this table when absent).
    void error(std::string_view key, std::string message);

    std::optional<std::string> read_string(std::string_view key);  ///< non-empty string
    std::optional<std::int64_t> read_integer(std::string_view key, std::int64_t min, std::int64_t max);
    std::optional<bool> read_bool(std::string_view key);
    std::optional<Duration> read_duration(std::string_view key, ZeroDuration zero);
    std::optional<SocketAddress> read_address(std::string_view key);
    /// A non-empty path string, resolved against `base` and made lexically normal.
    std::optional<std::filesystem::path> read_path(std::string_view key, const std::filesystem::path& base);
    /// An array of non-empty strings; each bad element is reported as "key[i]". With `single`, a bare
    /// string is accepted as a one-element array.
    std::optional<std::vector<std::string>> read_strings(std::string_view key, bool single = false);
    /// The index of the value in `allowed`.
    std::optional<std::size_t> read_choice(std::string_view key, std::span<const std::string_view> allowed);
    /// A sub-table (TOML `[path.key]`), or nullptr when absent or not a table (reported).
    const toml::table* read_table(std::string_view key);
    /// An array of tables (TOML `[[key]]`), or nullptr when absent or not an array (reported).
    /// Elements are not checked; use element_table().
    const toml::array* read_array_of_tables(std::string_view key);

private:
    const toml::node* present_node(std::string_view key);  // remembers the position
    void wrong_type(std::string_view key, const toml::node& node, std::string_view expected);

    Diagnostics& diag_;
    const toml::table& table_;
    std::string path_;
};

/// Element `i` of an array of tables as a table, or nullptr (reported).
const toml::table* element_table(Diagnostics& diag, const toml::array& array, std::size_t i,
                                 const std::string& element_path, std::string_view section);

}  // namespace gg::config::detail
