#include "glassgate/protocols/ssh/decisions.hpp"

#include "glassgate/protocols/text.hpp"


#include <algorithm>
#include <cctype>

namespace gg::ssh {

namespace {

/// Target and identity names as the config allows them ([A-Za-z0-9._-], plus '@' in identities,
/// which are often e-mail addresses).
bool valid_name(std::string_view s, bool identity) {
    if (s.empty() || s.size() > 128) return false;
    return std::all_of(s.begin(), s.end(), [identity](char c) {
        const auto u = static_cast<unsigned char>(c);
        return std::isalnum(u) || c == '.' || c == '_' || c == '-' || (identity && (c == '@' || c == '+'));
    });
}

}  // namespace

LoginParse parse_login(std::string_view user) {
    LoginParse out;
    const auto colon = user.rfind(':');
    Login login;
    if (colon == std::string_view::npos) {
        login.target = std::string(user);
    } else {
        login.hint = std::string(user.substr(0, colon));
        login.target = std::string(user.substr(colon + 1));
        if (!valid_name(login.hint, true)) {
            out.problem = "the part before ':' in the login name must be your identity or an emergency account";
            return out;
        }
    }
    if (!valid_name(login.target, false)) {
        out.problem = "the login name must be TARGET or IDENTITY:TARGET (e.g. ssh web01@proxy or ssh alice:web01@proxy)";
        return out;
    }
    out.login = std::move(login);
    return out;
}

bool env_allowed(const std::vector<std::string>& globs, std::string_view name) {
    return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) { return glob_match(g, name); });
}

std::optional<PublicKeyLine> parse_public_key_line(std::string_view line) {
    auto skip = [&](std::size_t p) {
        while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
        return p;
    };
    auto word_end = [&](std::size_t p) {
        while (p < line.size() && line[p] != ' ' && line[p] != '\t' && line[p] != '\n' && line[p] != '\r') ++p;
        return p;
    };
    const auto a = skip(0);
    const auto ae = word_end(a);
    const auto b = skip(ae);
    const auto be = word_end(b);
    if (ae == a || be == b) return std::nullopt;
    return PublicKeyLine{std::string(line.substr(a, ae - a)), std::string(line.substr(b, be - b))};
}

std::string hostkey_algorithms_for(std::string_view key_type) {
    if (key_type == "ssh-rsa") return "rsa-sha2-512,rsa-sha2-256";
    return std::string(key_type);
}

ChannelRequest channel_request_kind(std::string_view name) noexcept {
    if (name == "pty-req") return ChannelRequest::pty_req;
    if (name == "shell") return ChannelRequest::shell;
    if (name == "exec") return ChannelRequest::exec;
    if (name == "env") return ChannelRequest::env;
    if (name == "window-change") return ChannelRequest::window_change;
    if (name == "subsystem") return ChannelRequest::subsystem;
    if (name == "signal") return ChannelRequest::signal;
    if (name == "x11-req") return ChannelRequest::x11_req;
    if (name == "auth-agent-req@openssh.com") return ChannelRequest::auth_agent;
    return ChannelRequest::other;
}

RequestDecision decide_channel_request(ChannelRequest kind, std::string_view detail, const RequestPolicy& policy) {
    switch (kind) {
        case ChannelRequest::pty_req:
        case ChannelRequest::shell:
        case ChannelRequest::exec:
        case ChannelRequest::window_change:
        case ChannelRequest::signal:
            return {true, {}};
        case ChannelRequest::env:
            if (env_allowed(policy.env_allow, detail)) return {true, {}};
            return {false, "glassgate: environment variable " + std::string(detail) + " is not passed to the target"};
        case ChannelRequest::subsystem:
            if (detail == "sftp" && policy.allow_sftp) return {true, {}};
            return {false, "glassgate: subsystem \"" + std::string(detail) + "\" is not available through glassgate"};
        case ChannelRequest::x11_req:
            return {false, "glassgate: X11 forwarding is not available through glassgate"};
        case ChannelRequest::auth_agent:
            return {false, "glassgate: agent forwarding is not available through glassgate"};
        case ChannelRequest::other:
            break;
    }
    return {false, "glassgate: channel request \"" + std::string(detail) + "\" is not supported"};
}

OpenDecision decide_channel_open(ChannelType type, bool allow_port_forwarding) {
    switch (type) {
        case ChannelType::session:
            return {true, {}};
        case ChannelType::direct_tcpip:
            if (allow_port_forwarding) return {true, {}};
            return {false, "glassgate: port forwarding is not allowed for this target"};
        case ChannelType::forwarded_tcpip:
            return {false, "glassgate: remote port forwarding is not available through glassgate"};
        case ChannelType::x11:
            return {false, "glassgate: X11 forwarding is not available through glassgate"};
        case ChannelType::other:
            break;
    }
    return {false, "glassgate: this channel type is not supported"};
}

}  // namespace gg::ssh
