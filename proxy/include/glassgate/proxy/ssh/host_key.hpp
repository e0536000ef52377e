#pragma once
// Backend host keys as `glassgate target pin` sees them: what a target presents, and whether it is
// the pinned one. The proxy's backend leg and key rotation check the same way (type and key bytes).

#include <chrono>
#include <string>
#include <string_view>

#include "glassgate/config/config.hpp"

namespace gg::proxy::ssh {

/// Connects to an SSH target and returns its host key as "<type> <base64>". Blocking; throws
/// OperationalError with the reason.
std::string fetch_host_key(const config::Target& target, std::chrono::milliseconds timeout);

/// True when `presented` and `pinned` are readable public-key lines with the same type and key bytes
/// (comments ignored). Anything unreadable does not match: never trust on first use.
bool host_key_matches(std::string_view presented, std::string_view pinned);

}  // namespace gg::proxy::ssh
