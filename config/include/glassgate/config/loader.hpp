#pragma once
// Loads and validates a glassgate TOML configuration. Every problem is collected (not only the
// first) with its location, so an operator fixes a file in one pass. Unknown keys are errors: a
// typo must never silently disable a security rule.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/config/config.hpp"

namespace gg::config {

/// One problem found in a configuration file.
struct Issue {
    std::string file;      ///< path as given to the loader
    int line = 0;          ///< 1-based; 0 when the problem has no single location (e.g. a missing key)
    int column = 0;        ///< 1-based; 0 when unknown
    std::string key_path;  ///< e.g. "target[1].max_session"
    std::string message;
    /// "FILE:LINE:COL: key.path: message"
    [[nodiscard]] std::string to_string() const;
};

struct LoadResult {
    std::optional<Config> config;  ///< set only when `issues` is empty
    std::vector<Issue> issues;
    [[nodiscard]] bool ok() const noexcept { return config.has_value() && issues.empty(); }
};

/// Reads and validates `path`. Relative paths inside the file resolve against the file's directory.
/// A file that cannot be read yields one issue (line 0) naming the path and the OS error.
LoadResult load_config_file(const std::filesystem::path& path);

/// Parses `text` as if it were the file `source_name` located in `base_dir` (for tests and stdin).
LoadResult load_config_string(std::string_view text, const std::filesystem::path& source_name,
                              const std::filesystem::path& base_dir);

/// Parses "30m", "8h", "1h30m", "500ms", "10s", "2d". Whole numbers only, units ms|s|m|h|d,
/// at least one component, no sign; std::nullopt with a message otherwise.
struct DurationParse {
    std::optional<Duration> value;
    std::string error;
};
DurationParse parse_duration(std::string_view text);

/// Parses "127.0.0.1:6432", "[::1]:6432", "db.internal:5432". Port 1-65535 required.
struct AddressParse {
    std::optional<SocketAddress> value;
    std::string error;
};
AddressParse parse_socket_address(std::string_view text);

/// Formats a duration the way the config writes it ("1h30m", "500ms").
std::string format_duration(Duration d);

}  // namespace gg::config
