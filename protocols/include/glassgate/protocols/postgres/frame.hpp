#pragma once
// Splits a PostgreSQL (protocol 3.0) byte stream into packets and messages. Sans-IO: the caller owns
// the buffer, feeds whatever it has and is told how much was consumed or how much more is needed.
// https://www.postgresql.org/docs/15/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
//
//   startup phase : Int32 length (includes itself) | Int32 code | body
//   regular phase : Byte1 type | Int32 length (includes itself, >= 4) | body
//
// Lengths are checked against Limits before anything is allocated or waited for, so a peer cannot
// make us buffer 2 GiB by announcing it. Views (Message::body) point into the caller's buffer.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/error.hpp"

namespace gg::pg {

struct Limits {
    /// PostgreSQL's own MAX_STARTUP_PACKET_LENGTH: a startup packet is 8..10000 bytes.
    std::size_t max_startup = 10000;
    /// The largest regular message (its length field, which counts itself but not the type byte).
    std::size_t max_message = 64u << 20;
};

/// More input is needed: at least this many bytes in total, counted from the start of the input.
struct NeedMore {
    std::size_t at_least = 0;
};

// ---- startup phase -----------------------------------------------------------------------------
inline constexpr std::uint32_t protocol_3_0 = 196608;           // 3 << 16 | 0
inline constexpr std::uint32_t cancel_request_code = 80877102;  // 1234 << 16 | 5678
inline constexpr std::uint32_t ssl_request_code = 80877103;     // 1234 << 16 | 5679
inline constexpr std::uint32_t gssenc_request_code = 80877104;  // 1234 << 16 | 5680

/// The client asks for TLS; the answer is one byte, 'S' or 'N'. Bytes the client sent behind an
/// SSLRequest (StartupDecoded::consumed < input size) arrived unencrypted and may have been injected
/// by a man-in-the-middle to be taken as sent over TLS: the caller must treat them as an error.
struct SslRequest {};
/// The client asks for GSSAPI encryption (libpq 18 tries it first); answer 'N'. Same rule as SSL.
struct GssEncRequest {};
/// Sent on a new connection to cancel the query running on another one (exactly 16 bytes).
struct CancelRequest {
    std::int32_t pid = 0;
    std::uint32_t key = 0;
};
struct StartupMessage {
    std::uint16_t major = 3;
    std::uint16_t minor = 0;  ///< > 0 is accepted and kept: the caller answers NegotiateProtocolVersion
    std::vector<std::pair<std::string, std::string>> params;  ///< in wire order, names unique
    /// The value of parameter `name`, if present.
    [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
};
using StartupPacket = std::variant<SslRequest, GssEncRequest, CancelRequest, StartupMessage>;
struct StartupDecoded {
    StartupPacket packet;
    std::size_t consumed = 0;
};

/// One startup-phase packet from the front of `input`.
/// Errors: too_large (length > max_startup, incl. 2^31 and above), bad_length (length < 8, a
/// CancelRequest not of 16 bytes, an SSL/GSSENC request not of 8), unsupported_protocol (major not 3
/// and not a known request code), bad_startup (a name or value not NUL-terminated, no final
/// terminator or bytes after it, duplicate names, no or empty `user`).
[[nodiscard]] Result<std::variant<NeedMore, StartupDecoded>> decode_startup(ByteView input,
                                                                            const Limits& limits = {});

// ---- regular phase -----------------------------------------------------------------------------
struct Message {
    char type = 0;
    ByteView body;  ///< views into the decoded input
    [[nodiscard]] std::size_t size() const noexcept { return 5 + body.size(); }
};
struct MessageDecoded {
    Message message;
    std::size_t consumed = 0;
};

/// One message from the front of `input`. Errors: bad_length (length field < 4), too_large (length
/// field > max_message), both reported from the 5-byte header alone.
[[nodiscard]] Result<std::variant<NeedMore, MessageDecoded>> decode_message(ByteView input,
                                                                            const Limits& limits = {});

/// As many whole messages as `input` holds; `consumed` bytes are covered by them, the rest is a
/// partial tail (possibly empty). An invalid header anywhere is an error, even after good messages.
struct Split {
    std::vector<Message> messages;
    std::size_t consumed = 0;
};
[[nodiscard]] Result<Split> split_messages(ByteView input, const Limits& limits = {});

/// The frame at the front of `input`, found without building anything: for relays that walk a read
/// buffer in place (no allocation, no error text on the hot path).
///   size > 0                 : a whole message of `size` bytes (type byte included) is at the front
///   size == 0, error == false: incomplete; `need` is the total the message needs (5 until its header is in)
///   size == 0, error == true : invalid header (length < 4 or above max_message); decode_message says why
/// Agrees with decode_message on every input (tested byte for byte).
struct FrameScan {
    std::size_t size = 0;
    std::size_t need = 0;
    char type = 0;
    bool error = false;
};
[[nodiscard]] FrameScan scan_message(ByteView input, const Limits& limits = {}) noexcept;

/// "'Q'" for printable types, "0x01" otherwise: for error reasons and logs.
std::string describe_type(char type);

}  // namespace gg::pg
