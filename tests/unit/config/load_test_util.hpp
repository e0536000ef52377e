#pragma once
// Helpers shared by the configuration loader tests (loader_test.cpp, loader_errors_test.cpp).

#include <string>
#include <string_view>

#include "glassgate/config/loader.hpp"

namespace gg::config::test {

/// `text` loaded as /etc/glassgate/test.toml. A leading newline is dropped, so that raw strings can
/// start on their own line and line 1 is the line after `R"(`.
inline LoadResult load(std::string_view text) {
    if (text.starts_with('\n')) {
        text.remove_prefix(1);
    }
    return load_config_string(text, "test.toml", "/etc/glassgate");
}

/// All issues, one "FILE:LINE:COL: key.path: message" per line.
inline std::string issues_text(const LoadResult& r) {
    std::string out;
    for (const auto& issue : r.issues) {
        out += issue.to_string() + "\n";
    }
    return out;
}

/// A valid Ed25519 host key line ("<type> <base64>").
inline const std::string host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEpjwoLWzUQ3aZIuvbIHTqN25OeSrb0Z7PPAgsAOYjVj";

}  // namespace gg::config::test
