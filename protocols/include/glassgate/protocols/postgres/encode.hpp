#pragma once
// Builders of the PostgreSQL (protocol 3.0) messages glassgate writes, each returning one whole
// message (type byte and length included). Strings are written up to their first NUL: the protocol
// cannot carry an embedded NUL, and writing it would let a value forge the fields that follow.
// https://www.postgresql.org/docs/15/protocol-message-formats.html

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/messages.hpp"

namespace gg::pg {

// ---- backend -> client -------------------------------------------------------------------------
Bytes error_response(const Fields& f);   ///< 'E': S, V, C, M, [D], [H], terminator
Bytes notice_response(const Fields& f);  ///< 'N': same fields
Bytes authentication_ok();               ///< 'R' 0
Bytes authentication_cleartext_password();  ///< 'R' 3
Bytes parameter_status(std::string_view name, std::string_view value);  ///< 'S'
Bytes backend_key_data(std::int32_t pid, std::uint32_t key);            ///< 'K'
Bytes ready_for_query(char status);                                     ///< 'Z' with 'I', 'T' or 'E'

// ---- frontend -> server ------------------------------------------------------------------------
/// StartupMessage for protocol 3.0; the caller includes `user` (and usually `database`).
Bytes startup_message(const std::vector<std::pair<std::string, std::string>>& params);
Bytes ssl_request();
Bytes cancel_request(std::int32_t pid, std::uint32_t key);
Bytes terminate();                                  ///< 'X'
Bytes password_message(std::string_view password);  ///< 'p', NUL-terminated (cleartext or MD5 hash)
/// 'p' SASLInitialResponse: mechanism, Int32 length of data, data.
Bytes sasl_initial_response(std::string_view mechanism, std::string_view data);
Bytes sasl_response(std::string_view data);  ///< 'p' SASLResponse: the data, no terminator
Bytes query(std::string_view sql);           ///< 'Q'
/// 'B': portal, statement, parameter formats, values (NULL as length -1), result formats, as given.
Bytes bind(const Bind& b);
/// The same Bind with every parameter value replaced by the text "<redacted: N bytes>" (NULL stays
/// NULL) and every parameter format text, so a recording keeps the shape of the call, not its values.
Bytes redact_bind(const Bind& b);

}  // namespace gg::pg
