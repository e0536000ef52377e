// OpenID Connect discovery documents (protocols/oidc/discovery.hpp parse_discovery), as served at
// <issuer>/.well-known/openid-configuration. A document that parses names the expected issuer and
// absolute http(s) endpoints.
//   byte 0 : bit 0 expected issuer with a trailing '/', bit 1 small limits; rest: the document

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "glassgate/protocols/oidc/discovery.hpp"

using namespace gg;
using namespace gg::oidc;

namespace {

bool http_url(std::string_view s) { return s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string issuer = (data[0] & 1u) != 0 ? "https://idp.example.com/" : "https://idp.example.com";
    DiscoveryLimits limits;
    if ((data[0] & 2u) != 0) {
        limits.max_document_bytes = 512;
        limits.max_json_depth = 2;
    }
    auto d = parse_discovery(fuzz::text(data + 1, size - 1), issuer, limits);
    if (!d.has_value()) {
        GG_FUZZ_CHECK(!d.error().reason.empty());
        return 0;
    }
    GG_FUZZ_CHECK(size - 1 <= limits.max_document_bytes);
    GG_FUZZ_CHECK(d->issuer == issuer);
    GG_FUZZ_CHECK(http_url(d->jwks_uri) && http_url(d->token_endpoint));
    if (d->device_authorization_endpoint) GG_FUZZ_CHECK(http_url(*d->device_authorization_endpoint));
    (void)discovery_url(d->issuer);
    return 0;
}
