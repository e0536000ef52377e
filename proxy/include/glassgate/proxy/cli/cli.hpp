#pragma once
// The `glassgate` command line. Exit codes: 0 ok, 1 operational failure, 2 usage or configuration
// error. Every command accepts --help. Commands that need the configuration take --config FILE
// (default: $GLASSGATE_CONFIG, then ./glassgate.toml). Listings print one line per item starting
// with its id, or JSON with --json.

#include <iosfwd>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gg::proxy::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

/// Bad command line: printed with a hint to --help, exit 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One option a command accepts.
struct OptionSpec {
    std::string name;          ///< without dashes: "config"
    std::string value_name;    ///< empty for a flag; e.g. "FILE"
    std::string help;
};

/// A parsed command line for one command: options by name, then positional arguments.
struct Args {
    std::map<std::string, std::string, std::less<>> options;  ///< flags map to ""
    std::vector<std::string> positional;
    [[nodiscard]] bool has(std::string_view name) const { return options.find(name) != options.end(); }
    [[nodiscard]] std::optional<std::string> get(std::string_view name) const {
        auto it = options.find(name);
        if (it == options.end()) return std::nullopt;
        return it->second;
    }
};

/// Parses `argv` against `specs`: "--name VALUE", "--name=VALUE", flags, "--" ends options.
/// Throws UsageError on an unknown option, a missing value, or a value given to a flag.
Args parse_args(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs);

/// Runs the CLI; `out`/`err` are stdout/stderr (parameters so tests can capture them).
int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace gg::proxy::cli
