#include "glassgate/config/config.hpp"

namespace gg::config {

std::string SocketAddress::to_string() const {
    std::string out;
    if (host.find(':') != std::string::npos) {
        out.reserve(host.size() + 8);
        out += '[';
        out += host;
        out += ']';
    } else {
        out = host;
    }
    out += ':';
    out += std::to_string(port);
    return out;
}

const Target* Config::find_target(std::string_view name) const noexcept {
    for (const auto& target : targets) {
        if (target.name == name) {
            return &target;
        }
    }
    return nullptr;
}

std::string_view to_string(Protocol p) noexcept {
    switch (p) {
        case Protocol::postgres: return "postgres";
        case Protocol::ssh: return "ssh";
    }
    return "unknown";
}

std::string_view to_string(BackendTls t) noexcept {
    switch (t) {
        case BackendTls::require: return "require";
        case BackendTls::prefer: return "prefer";
        case BackendTls::disable: return "disable";
    }
    return "unknown";
}

std::string_view to_string(FallbackTrigger t) noexcept {
    switch (t) {
        case FallbackTrigger::idp_unreachable: return "idp_unreachable";
        case FallbackTrigger::declared: return "declared";
    }
    return "unknown";
}

}  // namespace gg::config
