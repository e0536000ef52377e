#pragma once
// Who may use a target: the target's `allow` list names identities and groups ("group:NAME").
// Shared by every protocol path.

#include <string>
#include <string_view>
#include <vector>

namespace gg::session {

/// True if `allow` names `identity` or, as "group:NAME", one of `groups`. Exact, case-sensitive
/// matches only; an empty list admits nobody.
[[nodiscard]] bool allow_list_admits(const std::vector<std::string>& allow, std::string_view identity,
                                     const std::vector<std::string>& groups);

}  // namespace gg::session
