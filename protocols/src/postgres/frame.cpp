#include "glassgate/protocols/postgres/frame.hpp"

#include <cstdio>

namespace gg::pg {
namespace {

using StartupStep = std::variant<NeedMore, StartupDecoded>;
using MessageStep = std::variant<NeedMore, MessageDecoded>;

Error fail(errc code, std::string reason) { return Error{code, std::move(reason)}; }

/// At most 64 characters of a peer-supplied name, for error reasons.
std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) {
        out += (c >= 0x20 && c < 0x7F) ? c : '?';
    }
    return out;
}

std::uint32_t read_u32(ByteView b) noexcept {
    return (std::to_integer<std::uint32_t>(b[0]) << 24) | (std::to_integer<std::uint32_t>(b[1]) << 16) |
           (std::to_integer<std::uint32_t>(b[2]) << 8) | std::to_integer<std::uint32_t>(b[3]);
}

}  // namespace

std::string describe_type(char type) {
    const auto u = static_cast<unsigned char>(type);
    if (u >= 0x21 && u < 0x7F) return std::string{'\'', type, '\''};
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(u));
    return buf;
}

std::optional<std::string> StartupMessage::get(std::string_view name) const {
    for (const auto& [k, v] : params) {
        if (k == name) return v;
    }
    return std::nullopt;
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html
//   StartupMessage : Int32 len | Int32 196608 (3.0)  | { String name | String value }* | Byte1 0
//   CancelRequest  : Int32 16  | Int32 80877102      | Int32 pid | Int32 secret key
//   SSLRequest     : Int32 8   | Int32 80877103
//   GSSENCRequest  : Int32 8   | Int32 80877104
// The length counts itself. PostgreSQL (ProcessStartupPacket) refuses lengths outside 8..10000 and
// requires the terminating NUL to be the packet's last byte.
Result<StartupStep> decode_startup(ByteView input, const Limits& limits) {
    if (input.size() < 4) return StartupStep{NeedMore{8}};
    const std::uint32_t len = read_u32(input);
    if (len > limits.max_startup) {
        return fail(errc::too_large, "invalid length of startup packet: " + std::to_string(len) + " bytes (limit " +
                                         std::to_string(limits.max_startup) + ")");
    }
    if (len < 8) return fail(errc::bad_length, "invalid length of startup packet: " + std::to_string(len) + " bytes");
    if (input.size() < len) return StartupStep{NeedMore{len}};

    ByteReader r(input.first(len));
    (void)r.u32();
    const std::uint32_t code = *r.u32();
    StartupDecoded out;
    out.consumed = len;

    if (code == ssl_request_code || code == gssenc_request_code) {
        const char* what = code == ssl_request_code ? "SSLRequest" : "GSSENCRequest";
        if (len != 8) return fail(errc::bad_length, std::string(what) + " of invalid length " + std::to_string(len));
        out.packet = code == ssl_request_code ? StartupPacket{SslRequest{}} : StartupPacket{GssEncRequest{}};
        return StartupStep{std::move(out)};
    }
    if (code == cancel_request_code) {
        if (len != 16) return fail(errc::bad_length, "CancelRequest of invalid length " + std::to_string(len));
        CancelRequest c;
        c.pid = *r.i32();
        c.key = *r.u32();
        out.packet = c;
        return StartupStep{std::move(out)};
    }

    StartupMessage m;
    m.major = static_cast<std::uint16_t>(code >> 16);
    m.minor = static_cast<std::uint16_t>(code & 0xFFFFu);
    if (m.major != 3) {
        return fail(errc::unsupported_protocol, "unsupported frontend protocol " + std::to_string(m.major) + "." +
                                                    std::to_string(m.minor) + ": glassgate speaks 3.0");
    }
    for (;;) {
        if (r.remaining() == 0) return fail(errc::bad_startup, "startup packet: no terminator as last byte");
        auto name = r.cstring();
        if (!name) return fail(errc::bad_startup, "startup packet: parameter name not NUL-terminated");
        if (name->empty()) break;  // the terminator (or an empty name, caught by the check below)
        auto value = r.cstring();
        if (!value) {
            return fail(errc::bad_startup, "startup packet: value of \"" + excerpt(*name) + "\" not NUL-terminated");
        }
        // Refused rather than "last one wins": two values for one name is either a bug or an attempt to
        // make glassgate and the server read different values.
        if (m.get(*name)) {
            return fail(errc::bad_startup, "startup packet: duplicate parameter \"" + excerpt(*name) + "\"");
        }
        m.params.emplace_back(std::string(*name), std::string(*value));
    }
    if (r.remaining() != 0) {
        return fail(errc::bad_startup, "startup packet: empty parameter name or bytes after the terminator");
    }
    if (auto user = m.get("user"); !user || user->empty()) {
        return fail(errc::bad_startup, "no PostgreSQL user name specified in startup packet");
    }
    out.packet = std::move(m);
    return StartupStep{std::move(out)};
}

// https://www.postgresql.org/docs/15/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
//   Byte1 type | Int32 len (counts itself, not the type byte; >= 4) | len - 4 bytes of body
Result<MessageStep> decode_message(ByteView input, const Limits& limits) {
    if (input.size() < 5) return MessageStep{NeedMore{5}};
    const char type = static_cast<char>(input[0]);
    const std::uint32_t len = read_u32(input.subspan(1));
    if (len < 4) {
        return fail(errc::bad_length, "message " + describe_type(type) + " of invalid length " + std::to_string(len));
    }
    if (len > limits.max_message) {
        return fail(errc::too_large, "message " + describe_type(type) + " of " + std::to_string(len) +
                                         " bytes exceeds the limit of " + std::to_string(limits.max_message));
    }
    const std::size_t total = std::size_t{1} + len;
    if (input.size() < total) return MessageStep{NeedMore{total}};
    MessageDecoded d;
    d.message.type = type;
    d.message.body = input.subspan(5, len - 4);
    d.consumed = total;
    return MessageStep{d};
}

FrameScan scan_message(ByteView input, const Limits& limits) noexcept {
    FrameScan f;
    if (input.size() < 5) {
        f.need = 5;
        return f;
    }
    f.type = static_cast<char>(input[0]);
    const std::uint32_t len = read_u32(input.subspan(1));
    if (len < 4 || len > limits.max_message) {
        f.error = true;
        return f;
    }
    const std::size_t total = std::size_t{1} + len;
    if (input.size() < total) {
        f.need = total;
        return f;
    }
    f.size = total;
    return f;
}

Result<Split> split_messages(ByteView input, const Limits& limits) {
    Split s;
    while (s.consumed < input.size()) {
        auto d = decode_message(input.subspan(s.consumed), limits);
        if (!d) return d.error();
        const auto* m = std::get_if<MessageDecoded>(&*d);
        if (!m) break;
        s.messages.push_back(m->message);
        s.consumed += m->consumed;
    }
    return s;
}

}  // namespace gg::pg
