#include "glassgate/session/policy.hpp"

#include <algorithm>

namespace gg::session {

bool allow_list_admits(const std::vector<std::string>& allow, std::string_view identity,
                       const std::vector<std::string>& groups) {
    constexpr std::string_view group_prefix = "group:";
    return std::any_of(allow.begin(), allow.end(), [&](const std::string& a) {
        if (std::string_view(a).substr(0, group_prefix.size()) == group_prefix) {
            const auto g = std::string_view(a).substr(group_prefix.size());
            return std::find(groups.begin(), groups.end(), g) != groups.end();
        }
        return !identity.empty() && a == identity;
    });
}

}  // namespace gg::session
