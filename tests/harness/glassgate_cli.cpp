#include "harness/glassgate_cli.hpp"

#include <sstream>

#include "harness/net.hpp"
#include "harness/process.hpp"

namespace gg::harness {

std::vector<std::string> session_ids(const std::string& binary, const std::string& config) {
    auto r = run({binary, "sessions", "list", "--config", config});
    std::vector<std::string> ids;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) ids.push_back(line.substr(0, line.find(' ')));
    return ids;
}

std::optional<std::string> wait_newest_sealed_session(const std::string& binary, const std::string& config,
                                                      std::chrono::milliseconds timeout, std::string* last_show) {
    std::string id;
    const bool sealed = wait_until([&] {
        auto ids = session_ids(binary, config);
        if (ids.empty()) return false;
        id = ids.back();
        auto show = run({binary, "sessions", "show", id, "--config", config});
        if (last_show != nullptr) *last_show = show.out;
        return show.out.find("state           closed") != std::string::npos &&
               show.out.find("sealed          -") == std::string::npos;
    }, timeout);
    if (!sealed) return std::nullopt;
    return id;
}

double metric_value(std::uint16_t admin_port, const std::string& series) {
    auto m = http_get("127.0.0.1", admin_port, "/metrics");
    if (!m) return -1;
    const auto at = m->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(m->body.substr(at + series.size() + 2));
}

}  // namespace gg::harness
