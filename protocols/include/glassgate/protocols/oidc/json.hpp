#pragma once
// Internal helpers shared by the OIDC parsers: bounded JSON parsing and typed member access that
// never throws. Not part of the public surface of gg_protocols; include only from protocols/src/oidc.

#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace gg::oidc::detail {

/// Parses `text` as one JSON value; std::nullopt if it is not valid JSON (including invalid UTF-8)
/// or nests deeper than `max_depth`.
[[nodiscard]] std::optional<boost::json::value> parse_json(std::string_view text, std::size_t max_depth);

/// The member as a string; nullptr if absent or not a string.
[[nodiscard]] const boost::json::string* string_member(const boost::json::object& o, std::string_view key) noexcept;

/// A JSON number as a whole number: integers as is, finite doubles rounded down. std::nullopt for
/// other kinds and for values outside int64.
[[nodiscard]] std::optional<std::int64_t> to_int64(const boost::json::value& v) noexcept;

}  // namespace gg::oidc::detail
