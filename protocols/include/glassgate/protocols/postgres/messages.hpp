#pragma once
// Typed views of the PostgreSQL (protocol 3.0) messages glassgate looks at: each parses the body of
// one Message (after frame.hpp has split it off). Every read is bounds-checked; a body with bytes
// after its last field is an error (errc::trailing_bytes), one that ends early is errc::truncated.
// std::string_view / ByteView members point into the body passed in.
// https://www.postgresql.org/docs/15/protocol-message-formats.html

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/error.hpp"

namespace gg::pg {

enum class Severity { error, fatal, panic, warning, notice, info, debug, log };

/// The fields of an ErrorResponse or NoticeResponse glassgate writes and reads.
struct Fields {
    Severity severity = Severity::error;
    std::string sqlstate;  ///< 'C'; a builder writes XX000 when empty
    std::string message;   ///< 'M'
    std::string detail;    ///< 'D', omitted when empty
    std::string hint;      ///< 'H', omitted when empty
};

/// "ERROR", "FATAL", ... (the non-localized 'V' spelling).
std::string_view severity_name(Severity s) noexcept;

/// Authentication request ('R', backend). Codes: 0 ok, 3 cleartext, 5 MD5 (md5_salt), 10 SASL
/// (mechanisms), 11 SASLContinue and 12 SASLFinal (data). Other codes (2 Kerberos, 7/8 GSS, 9 SSPI)
/// are returned with their raw data for the caller to refuse.
struct Authentication {
    std::int32_t code = 0;
    Bytes data;
    std::vector<std::string> mechanisms;
    std::array<std::byte, 4> md5_salt{};
};
[[nodiscard]] Result<Authentication> parse_authentication(ByteView body);

/// ErrorResponse ('E') and NoticeResponse ('N'). Severity from 'V' (never localized) when present,
/// else from 'S'; unrecognized severities read as error. Fields other than S V C M D H are skipped.
[[nodiscard]] Result<Fields> parse_error_fields(ByteView body);

/// ParameterStatus ('S', backend): name, value.
[[nodiscard]] Result<std::pair<std::string, std::string>> parse_parameter_status(ByteView body);

struct BackendKey {
    std::int32_t pid = 0;
    std::uint32_t key = 0;
};
/// BackendKeyData ('K'): exactly 8 bytes in protocol 3.0 (3.2 allows longer keys; not spoken here).
[[nodiscard]] Result<BackendKey> parse_backend_key_data(ByteView body);

/// ReadyForQuery ('Z'): 'I' idle, 'T' in a transaction, 'E' in a failed transaction.
[[nodiscard]] Result<char> parse_ready_for_query(ByteView body);

/// PasswordMessage ('p') carrying a cleartext password: one NUL-terminated string.
[[nodiscard]] Result<std::string_view> parse_password_message(ByteView body);

/// Query ('Q'): the SQL text.
[[nodiscard]] Result<std::string_view> parse_query(ByteView body);

struct Parse {
    std::string_view statement;  ///< "" = the unnamed statement
    std::string_view query;
    std::vector<std::uint32_t> param_types;  ///< OIDs; 0 = unspecified
};
[[nodiscard]] Result<Parse> parse_parse(ByteView body);

struct Bind {
    std::string_view portal;
    std::string_view statement;
    std::vector<std::int16_t> param_formats;      ///< empty: all text; one: applies to all; else one each
    std::vector<std::optional<ByteView>> params;  ///< std::nullopt = NULL
    std::vector<std::int16_t> result_formats;     ///< same convention as param_formats
};
/// Bind ('B'). Errors besides truncation: a format code other than 0/1, a number of parameter
/// formats other than 0, 1 or the number of parameters, a negative length other than -1 (NULL).
[[nodiscard]] Result<Bind> parse_bind(ByteView body);
/// The format (0 text, 1 binary) of parameter `i` under Bind's format-code convention.
[[nodiscard]] std::int16_t param_format(const Bind& b, std::size_t i) noexcept;

struct Execute {
    std::string_view portal;
    std::int32_t max_rows = 0;  ///< 0 = no limit
};
[[nodiscard]] Result<Execute> parse_execute(ByteView body);

struct Close {
    char kind = 'S';  ///< 'S' prepared statement, 'P' portal
    std::string_view name;
};
/// Close ('C', frontend) and Describe ('D', frontend): same layout.
[[nodiscard]] Result<Close> parse_close(ByteView body);

/// DataRow ('D', backend): one value per column, std::nullopt = NULL.
[[nodiscard]] Result<std::vector<std::optional<ByteView>>> parse_data_row(ByteView body);

/// RowDescription ('T'): the column names.
[[nodiscard]] Result<std::vector<std::string>> parse_row_description(ByteView body);

/// CommandComplete ('C', backend): the command tag, e.g. "SELECT 1".
[[nodiscard]] Result<std::string_view> parse_command_complete(ByteView body);

/// Human-readable names of message types: frontend_name('Q') = "Query", backend_name('D') =
/// "DataRow"; "Unknown" for types the direction does not have.
std::string_view frontend_name(char type) noexcept;
std::string_view backend_name(char type) noexcept;

}  // namespace gg::pg
