#include "glassgate/protocols/oidc/alg.hpp"

#include <array>
#include <utility>

namespace gg::oidc {
namespace {

constexpr std::array<std::pair<JwsAlg, std::string_view>, 7> names{{
    {JwsAlg::rs256, "RS256"},
    {JwsAlg::rs384, "RS384"},
    {JwsAlg::rs512, "RS512"},
    {JwsAlg::ps256, "PS256"},
    {JwsAlg::es256, "ES256"},
    {JwsAlg::es384, "ES384"},
    {JwsAlg::eddsa, "EdDSA"},
}};

}  // namespace

std::optional<JwsAlg> parse_jws_alg(std::string_view name) noexcept {
    for (const auto& [alg, n] : names) {
        if (n == name) return alg;
    }
    return std::nullopt;
}

std::string_view to_string(JwsAlg alg) noexcept {
    for (const auto& [a, n] : names) {
        if (a == alg) return n;
    }
    return "?";
}

}  // namespace gg::oidc
