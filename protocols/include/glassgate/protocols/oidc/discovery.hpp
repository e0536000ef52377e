#pragma once
// OpenID Connect Discovery 1.0: the provider metadata served at
// <issuer>/.well-known/openid-configuration. The document's `issuer` must equal the configured issuer
// exactly (Discovery 4.3): otherwise an attacker who can answer that URL, or a misrouted proxy, could
// point us at another provider's keys. A 200 carrying an HTML error page is a failure too.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/protocols/oidc/error.hpp"

namespace gg::oidc {

struct Discovery {
    std::string issuer;
    std::string jwks_uri;        ///< required
    std::string token_endpoint;  ///< required (the device flow polls it)
    std::optional<std::string> device_authorization_endpoint;  ///< RFC 8628 4; absent: no device flow
    std::optional<std::string> authorization_endpoint;
    std::optional<std::string> userinfo_endpoint;
    std::vector<std::string> id_token_signing_alg_values_supported;  ///< informational
    std::vector<std::string> grant_types_supported;                   ///< informational
};

/// Limits for parse_discovery.
struct DiscoveryLimits {
    std::size_t max_document_bytes = 256 * 1024;
    std::size_t max_json_depth = 16;
};

/// Parses a discovery document. Errors: errc::too_large, errc::not_json (HTML, truncated body),
/// errc::bad_shape (not an object, a required member missing or not a string), errc::bad_value (an
/// endpoint that is not an absolute http(s) URL), errc::wrong_issuer. Whether plain http is acceptable
/// is the caller's policy (the test IdP runs on http://127.0.0.1).
[[nodiscard]] Result<Discovery> parse_discovery(std::string_view json, std::string_view expected_issuer,
                                                const DiscoveryLimits& limits = {});

/// The discovery URL for an issuer: issuer (without a trailing '/') + "/.well-known/openid-configuration".
[[nodiscard]] std::string discovery_url(std::string_view issuer);

}  // namespace gg::oidc
