// What the integration tests read back from a running glassgate: its sessions (through the CLI, as an
// operator would) and its metrics (through the admin listener).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gg::harness {

/// Session ids from `BINARY sessions list --config CONFIG` (the first column), oldest first.
[[nodiscard]] std::vector<std::string> session_ids(const std::string& binary, const std::string& config);

/// Polls until the newest session (the last of session_ids) is closed and its recording sealed, as
/// `sessions show` reports it; returns its id, or nothing when `timeout` passes first. `last_show`, when
/// given, receives the last `sessions show` output (for failure messages).
[[nodiscard]] std::optional<std::string> wait_newest_sealed_session(const std::string& binary,
                                                                    const std::string& config,
                                                                    std::chrono::milliseconds timeout,
                                                                    std::string* last_show = nullptr);

/// The value of one metric series (as printed on http://127.0.0.1:ADMIN_PORT/metrics, e.g.
/// `glassgate_sessions_active{protocol="postgres"}`), or -1 when it is absent or the page is unreachable.
[[nodiscard]] double metric_value(std::uint16_t admin_port, const std::string& series);

}  // namespace gg::harness
