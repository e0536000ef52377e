#pragma once
// Logging on spdlog: human-readable text by default, one JSON object per line with --log-format json.
// Session log lines go through session_logger(id), whose lines carry the session id
// ("[session 01J...]" in text, "session":"01J..." in JSON). Everything logs to stderr.

#include <exception>
#include <memory>
#include <optional>
#include <string_view>

#include <spdlog/spdlog.h>

namespace gg::proxy::logging {

enum class Format { text, json };

std::optional<Format> format_from_string(std::string_view s) noexcept;
std::optional<spdlog::level::level_enum> level_from_string(std::string_view s) noexcept;

/// Installs the default logger. Safe to call again (reconfigures).
void init(spdlog::level::level_enum level, Format format);

/// A logger whose every line carries `session_id`. Shares the default logger's sinks and level.
std::shared_ptr<spdlog::logger> session_logger(std::string_view session_id);

/// The completion handler for a spawned coroutine (asio::co_spawn): an exception that escaped it is
/// logged with `what` ("postgres connection", "admin client") instead of vanishing (asio::detached)
/// or ending the io thread. Each coroutine still catches what it expects at its own top.
struct LogEscaped {
    const char* what;
    void operator()(const std::exception_ptr& e) const noexcept;
};

}  // namespace gg::proxy::logging
