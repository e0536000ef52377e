// Socket addresses as the configuration writes them:
//
//   address = host ":" port
//   host    = hostname | ipv4 | "[" ipv6 "]"
//   port    = 1..65535 (decimal)
//
// An IPv6 literal must be bracketed: "::1:5432" is ambiguous (is 5432 the port or the last group?),
// so it is rejected instead of guessed.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "glassgate/config/loader.hpp"

namespace gg::config {
namespace {

AddressParse fail(std::string message) { return {std::nullopt, std::move(message)}; }

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_alnum(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Empty string when `port` is a valid port, otherwise the reason.
std::string check_port(std::string_view port, std::uint16_t& out) {
    if (port.empty()) {
        return "missing port (expected host:port)";
    }
    for (const char c : port) {
        if (!is_digit(c)) {
            return "port \"" + std::string(port) + "\" is not a number";
        }
    }
    if (port.size() > 5) {
        return "port " + std::string(port) + " is out of range (1-65535)";
    }
    unsigned value = 0;
    for (const char c : port) {
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value < 1 || value > 65535) {
        return "port " + std::string(port) + " is out of range (1-65535)";
    }
    out = static_cast<std::uint16_t>(value);
    return {};
}

// Empty string when `host` is a valid IPv4 literal or DNS name, otherwise the reason.
std::string check_host_name(std::string_view host) {
    if (host.size() > 253) {
        return "host name is longer than 253 characters";
    }
    bool all_numeric = true;
    std::size_t label_begin = 0;
    for (std::size_t i = 0; i <= host.size(); ++i) {
        if (i < host.size() && host[i] != '.') {
            const char c = host[i];
            if (!is_alnum(c) && c != '-' && c != '_') {
                return "invalid character '" + std::string(1, c) + "' in host \"" + std::string(host) + "\"";
            }
            if (!is_digit(c)) {
                all_numeric = false;
            }
            continue;
        }
        const std::string_view label = host.substr(label_begin, i - label_begin);
        if (label.empty()) {
            return "empty label in host \"" + std::string(host) + "\"";
        }
        if (label.size() > 63) {
            return "label longer than 63 characters in host \"" + std::string(host) + "\"";
        }
        if (label.front() == '-' || label.back() == '-') {
            return "a host name label cannot begin or end with '-'";
        }
        label_begin = i + 1;
    }
    if (all_numeric) {
        // Digits and dots only: must be a dotted-quad IPv4 literal, not a "host name" like 999.1.1.1.
        in_addr v4{};
        if (inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1) {
            return "invalid IPv4 address \"" + std::string(host) + "\"";
        }
    }
    return {};
}

}  // namespace

AddressParse parse_socket_address(std::string_view text) {
    if (text.empty()) {
        return fail("empty address (expected host:port)");
    }
    SocketAddress address;
    std::string_view port;
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return fail("missing ']' after IPv6 address");
        }
        const std::string_view host = text.substr(1, close - 1);
        if (host.empty()) {
            return fail("empty IPv6 address in brackets");
        }
        in6_addr v6{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) {
            return fail("invalid IPv6 address \"" + std::string(host) + "\"");
        }
        const std::string_view rest = text.substr(close + 1);
        if (rest.empty()) {
            return fail("missing port (expected [ipv6]:port)");
        }
        if (rest.front() != ':') {
            return fail("expected ':' after ']'");
        }
        address.host = std::string(host);
        port = rest.substr(1);
    } else {
        const auto colon = text.find(':');
        if (colon == std::string_view::npos) {
            return fail("missing port (expected host:port)");
        }
        if (text.find(':', colon + 1) != std::string_view::npos) {
            return fail("IPv6 addresses must be in brackets, e.g. \"[::1]:5432\"");
        }
        const std::string_view host = text.substr(0, colon);
        if (host.empty()) {
            return fail("missing host (expected host:port)");
        }
        if (auto error = check_host_name(host); !error.empty()) {
            return fail(std::move(error));
        }
        address.host = std::string(host);
        port = text.substr(colon + 1);
    }
    if (auto error = check_port(port, address.port); !error.empty()) {
        return fail(std::move(error));
    }
    return {std::move(address), {}};
}

}  // namespace gg::config
