#include "glassgate/protocols/oidc/json.hpp"

#include <cmath>
#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

namespace gg::oidc {

namespace detail {

std::optional<boost::json::value> parse_json(std::string_view text, std::size_t max_depth) {
    boost::json::parse_options options;
    options.max_depth = max_depth;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(text, ec, {}, options);
    if (ec) return std::nullopt;
    return v;
}

const boost::json::string* string_member(const boost::json::object& o, std::string_view key) noexcept {
    const auto* v = o.if_contains(key);
    return v ? v->if_string() : nullptr;
}

std::optional<std::int64_t> to_int64(const boost::json::value& v) noexcept {
    if (const auto* i = v.if_int64()) return *i;
    if (const auto* u = v.if_uint64()) {
        if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
        return static_cast<std::int64_t>(*u);
    }
    if (const auto* d = v.if_double()) {
        // 2^63 is exactly representable; anything at or above it does not fit.
        if (!std::isfinite(*d) || *d >= 9223372036854775808.0 || *d < -9223372036854775808.0) return std::nullopt;
        return static_cast<std::int64_t>(std::floor(*d));
    }
    return std::nullopt;
}

}  // namespace detail
}  // namespace gg::oidc
