#pragma once
// Errors of the OIDC document parsers (JWKS, discovery, device authorization). Token verification
// has its own richer result (VerifyResult in jwt.hpp) because its caller needs more than a code.

#include <string>

#include <boost/assert/source_location.hpp>
#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace gg::oidc {

enum class errc {
    too_large = 1,    ///< the document exceeds its size limit (checked before parsing)
    not_json,         ///< not valid JSON (or nested deeper than allowed): e.g. an HTML error page
    bad_shape,        ///< valid JSON, but a required member is missing or has the wrong type
    bad_value,        ///< a member has a value we refuse (not an http(s) URL, out of range, ...)
    wrong_issuer,     ///< a discovery document for another issuer than the configured one
};

const boost::system::error_category& oidc_category() noexcept;
boost::system::error_code make_error_code(errc e) noexcept;

/// A parse failure: the code for programs, the reason (one line, no secrets) for logs and audit.
struct Error {
    errc code = errc::bad_shape;
    std::string reason;
};

template <typename T>
using Result = boost::system::result<T, Error>;

/// Lets Result<T>::value() throw (boost::system::system_error carrying code and reason).
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

}  // namespace gg::oidc

template <>
struct boost::system::is_error_code_enum<gg::oidc::errc> : std::true_type {};
