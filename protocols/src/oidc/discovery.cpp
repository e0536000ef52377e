#include "glassgate/protocols/oidc/discovery.hpp"

#include <algorithm>

#include "glassgate/protocols/oidc/json.hpp"
#include "glassgate/protocols/oidc/text.hpp"

namespace gg::oidc {
namespace {

namespace json = boost::json;

/// Absolute http(s) URL with a host and no whitespace or control characters (so it can be logged
/// and handed to an HTTP client without surprises). Deliberately not a full RFC 3986 parser.
bool is_http_url(std::string_view s) noexcept {
    std::string_view rest;
    if (s.starts_with("https://")) {
        rest = s.substr(8);
    } else if (s.starts_with("http://")) {
        rest = s.substr(7);
    } else {
        return false;
    }
    if (rest.empty() || rest.front() == '/' || rest.front() == '?' || rest.front() == '#') return false;
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7F;
    });
}

/// Reads `name` into `out`. required: absence is an error; present values must be http(s) URLs.
std::optional<Error> url_member(const json::object& o, std::string_view name, bool required,
                                std::optional<std::string>& out) {
    const auto* v = o.if_contains(name);
    if (!v) {
        if (required) return Error{errc::bad_shape, "discovery document has no " + std::string(name)};
        return std::nullopt;
    }
    const auto* s = v->if_string();
    if (!s) return Error{errc::bad_shape, "discovery " + std::string(name) + " is not a string"};
    if (!is_http_url(*s)) {
        return Error{errc::bad_value,
                     "discovery " + std::string(name) + " \"" + printable(*s, 128) + "\" is not an http(s) URL"};
    }
    out = std::string(*s);
    return std::nullopt;
}

std::vector<std::string> string_list(const json::object& o, std::string_view name) {
    std::vector<std::string> out;
    const auto* v = o.if_contains(name);
    const auto* a = v ? v->if_array() : nullptr;
    if (!a) return out;
    for (const auto& e : *a) {
        if (const auto* s = e.if_string()) out.emplace_back(*s);
    }
    return out;
}

}  // namespace

Result<Discovery> parse_discovery(std::string_view text, std::string_view expected_issuer,
                                  const DiscoveryLimits& limits) {
    if (text.size() > limits.max_document_bytes) {
        return Error{errc::too_large, "discovery document of " + std::to_string(text.size()) +
                                          " bytes exceeds the limit of " + std::to_string(limits.max_document_bytes)};
    }
    auto doc = detail::parse_json(text, limits.max_json_depth);
    if (!doc) {
        // Quote the start of the body: "<!DOCTYPE html>..." tells an operator at once what happened.
        return Error{errc::not_json, "discovery document is not JSON (starts with \"" + printable(text, 32) + "\")"};
    }
    const auto* o = doc->if_object();
    if (!o) return Error{errc::bad_shape, "discovery document is not a JSON object"};

    const auto* iss = detail::string_member(*o, "issuer");
    if (!iss) return Error{errc::bad_shape, "discovery document has no issuer string"};
    if (*iss != expected_issuer) {
        return Error{errc::wrong_issuer, "discovery issuer \"" + printable(*iss, 128) +
                                             "\" is not the configured issuer \"" +
                                             printable(expected_issuer, 128) + "\""};
    }

    Discovery d;
    d.issuer = std::string(*iss);
    std::optional<std::string> jwks, token;
    if (auto e = url_member(*o, "jwks_uri", true, jwks)) return *e;
    if (auto e = url_member(*o, "token_endpoint", true, token)) return *e;
    if (auto e = url_member(*o, "device_authorization_endpoint", false, d.device_authorization_endpoint)) return *e;
    if (auto e = url_member(*o, "authorization_endpoint", false, d.authorization_endpoint)) return *e;
    if (auto e = url_member(*o, "userinfo_endpoint", false, d.userinfo_endpoint)) return *e;
    d.jwks_uri = std::move(*jwks);
    d.token_endpoint = std::move(*token);
    d.id_token_signing_alg_values_supported = string_list(*o, "id_token_signing_alg_values_supported");
    d.grant_types_supported = string_list(*o, "grant_types_supported");
    return d;
}

std::string discovery_url(std::string_view issuer) {
    while (issuer.ends_with('/')) issuer.remove_suffix(1);
    return std::string(issuer) + "/.well-known/openid-configuration";
}

}  // namespace gg::oidc
