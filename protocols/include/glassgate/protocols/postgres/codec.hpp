#pragma once
// The PostgreSQL frontend/backend protocol 3.0, sans-IO: splitting byte streams into packets and
// messages, typed views of the messages glassgate looks at, and builders for the ones it writes.
// https://www.postgresql.org/docs/15/protocol-message-formats.html
//
//   startup phase : Int32 length (includes itself) | Int32 code | body
//   regular phase : Byte1 type | Int32 length (includes itself, >= 4) | body
//
// Every read is bounds-checked; a malformed input is an Error with a one-line reason, never a throw.
// Views (ByteView, std::string_view) point into the caller's buffer.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include "glassgate/protocols/bytes.hpp"

namespace gg::pg {

/// A protocol violation: `reason` is one line for logs and the client's 08P01 message.
struct Error {
    std::string reason;
};
template <typename T>
using Result = boost::system::result<T, Error>;
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

struct Limits {
    std::size_t max_startup = 10000;      ///< PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
    std::size_t max_message = 64u << 20;  ///< larger messages end the session
};

/// More input is needed: at least this many bytes in total, counted from the start of the input.
struct NeedMore {
    std::size_t at_least = 0;
};

// ---- startup phase -----------------------------------------------------------------------------
inline constexpr std::uint32_t ssl_request_code = 80877103;     // 1234.5679
inline constexpr std::uint32_t gssenc_request_code = 80877104;  // 1234.5680
inline constexpr std::uint32_t cancel_request_code = 80877102;  // 1234.5678

struct SslRequest {};
struct GssEncRequest {};
struct CancelRequest {
    std::int32_t pid = 0;
    std::uint32_t key = 0;
};
struct StartupMessage {
    std::uint16_t major = 3;
    std::uint16_t minor = 0;
    std::vector<std::pair<std::string, std::string>> params;
    [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
};
using StartupPacket = std::variant<SslRequest, GssEncRequest, CancelRequest, StartupMessage>;
struct StartupDecoded {
    StartupPacket packet;
    std::size_t consumed = 0;
};
/// One startup-phase packet from the front of `input`.
Result<std::variant<NeedMore, StartupDecoded>> decode_startup(ByteView input, const Limits& limits = {});

// ---- regular phase -----------------------------------------------------------------------------
struct Message {
    char type = 0;
    ByteView body;
    [[nodiscard]] std::size_t size() const noexcept { return 5 + body.size(); }
};
struct MessageDecoded {
    Message message;
    std::size_t consumed = 0;
};
/// One message from the front of `input`. The length is checked before anything is allocated.
Result<std::variant<NeedMore, MessageDecoded>> decode_message(ByteView input, const Limits& limits = {});

/// As many whole messages as `input` holds; `consumed` bytes are covered by them, the rest is a tail.
struct Split {
    std::vector<Message> messages;
    std::size_t consumed = 0;
};
Result<Split> split_messages(ByteView input, const Limits& limits = {});

// ---- builders: backend -> client ---------------------------------------------------------------
enum class Severity { error, fatal, panic, warning, notice, info, debug, log };
struct Fields {
    Severity severity = Severity::error;
    std::string sqlstate;
    std::string message;
    std::string detail;
    std::string hint;
};
Bytes error_response(const Fields& f);   ///< 'E' with S, V, C, M, [D], [H]
Bytes notice_response(const Fields& f);  ///< 'N'
Bytes authentication_ok();
Bytes authentication_cleartext_password();
Bytes parameter_status(std::string_view name, std::string_view value);
Bytes backend_key_data(std::int32_t pid, std::uint32_t key);
Bytes ready_for_query(char status);

// ---- builders: frontend -> server --------------------------------------------------------------
Bytes startup_message(const std::vector<std::pair<std::string, std::string>>& params);
Bytes ssl_request();
Bytes cancel_request(std::int32_t pid, std::uint32_t key);
Bytes terminate();
Bytes password_message(std::string_view password);
Bytes sasl_initial_response(std::string_view mechanism, std::string_view data);
Bytes sasl_response(std::string_view data);
Bytes query(std::string_view sql);

// ---- views -------------------------------------------------------------------------------------
struct Authentication {
    std::int32_t code = 0;  ///< 0 ok, 3 cleartext, 5 MD5, 10 SASL, 11 SASLContinue, 12 SASLFinal
    Bytes data;             ///< SASL data (11, 12)
    std::vector<std::string> mechanisms;  ///< SASL (10)
    std::array<std::byte, 4> md5_salt{};  ///< MD5 (5)
};
Result<Authentication> parse_authentication(ByteView body);
Result<Fields> parse_error_fields(ByteView body);
Result<std::pair<std::string, std::string>> parse_parameter_status(ByteView body);
struct BackendKey {
    std::int32_t pid = 0;
    std::uint32_t key = 0;
};
Result<BackendKey> parse_backend_key_data(ByteView body);
Result<char> parse_ready_for_query(ByteView body);
Result<std::string_view> parse_password_message(ByteView body);
Result<std::string_view> parse_query(ByteView body);
struct Parse {
    std::string_view statement;
    std::string_view query;
    std::vector<std::uint32_t> param_types;
};
Result<Parse> parse_parse(ByteView body);
struct Bind {
    std::string_view portal;
    std::string_view statement;
    std::vector<std::int16_t> param_formats;
    std::vector<std::optional<ByteView>> params;  ///< std::nullopt = NULL
    std::vector<std::int16_t> result_formats;
};
Result<Bind> parse_bind(ByteView body);
struct Execute {
    std::string_view portal;
    std::int32_t max_rows = 0;
};
Result<Execute> parse_execute(ByteView body);
struct Close {
    char kind = 'S';  ///< 'S' statement, 'P' portal
    std::string_view name;
};
Result<Close> parse_close(ByteView body);  ///< also Describe (same layout)
Result<std::vector<std::optional<ByteView>>> parse_data_row(ByteView body);
Result<std::vector<std::string>> parse_row_description(ByteView body);  ///< column names
Result<std::string_view> parse_command_complete(ByteView body);

std::string_view frontend_name(char type) noexcept;
std::string_view backend_name(char type) noexcept;

}  // namespace gg::pg
