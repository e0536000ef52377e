#pragma once
// Errors of the PostgreSQL codec and the SCRAM/MD5 client. Every failure carries a code (what kind
// of violation, for programs and tests) and a one-line reason (for logs, the audit trail and the
// client's 08P01 message). Reasons never contain secrets; they may quote short, bounded excerpts of
// the offending input.

#include <string>

#include <boost/assert/source_location.hpp>
#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace gg::pg {

enum class errc {
    too_large = 1,         ///< a length field above its limit (Limits::max_startup / max_message)
    bad_length,            ///< a length field below the minimum, or wrong for the packet kind
    unsupported_protocol,  ///< a startup code that is neither protocol 3.x nor a known special request
    bad_startup,           ///< startup packet layout: terminators, empty/duplicate names, no `user`
    truncated,             ///< a message body ends before a field it announces
    trailing_bytes,        ///< a message body has bytes after its last field
    bad_value,             ///< a field value we refuse (unknown status, format code, negative length, ...)
    scram_malformed,       ///< a SCRAM server message that does not follow RFC 5802's grammar
    scram_refused,         ///< a well-formed SCRAM parameter we refuse (nonce, salt, iteration count)
    scram_server_error,    ///< the server ended SCRAM with "e=<error>"
    scram_bad_signature,   ///< the server's signature is wrong: it does not know the password
    scram_out_of_order,    ///< a SCRAM step called before the step it follows
    crypto_failure,        ///< OpenSSL failed (out of memory or a broken library, never bad input)
};

const boost::system::error_category& pg_category() noexcept;
boost::system::error_code make_error_code(errc e) noexcept;

/// A protocol violation: the code for programs, the reason (one line, no secrets) for people.
struct Error {
    errc code = errc::bad_value;
    std::string reason;
};

template <typename T>
using Result = boost::system::result<T, Error>;

/// Lets Result<T>::value() throw (boost::system::system_error carrying code and reason).
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

}  // namespace gg::pg

template <>
struct boost::system::is_error_code_enum<gg::pg::errc> : std::true_type {};
