#include "glassgate/protocols/postgres/codec.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <algorithm>
#include <stdexcept>

namespace gg::pg {

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
    boost::throw_exception(std::runtime_error("postgres protocol: " + e.reason), loc);
}

namespace {

Error fail(std::string r) { return Error{std::move(r)}; }

/// Wraps builder output: Byte1 type | Int32 length | body.
class MessageWriter {
public:
    explicit MessageWriter(char type) {
        w_.u8(static_cast<std::uint8_t>(type));
        w_.u32(0);
    }
    ByteWriter& w() { return w_; }
    Bytes done() {
        w_.patch_u32(1, static_cast<std::uint32_t>(w_.size() - 1));
        return w_.take();
    }

private:
    ByteWriter w_;
};

/// True if the reader consumed exactly its input.
template <typename T>
Result<T> finish(const ByteReader& r, T v, std::string_view what) {
    if (!r.ok()) return fail(std::string(what) + ": truncated");
    if (r.remaining() != 0) return fail(std::string(what) + ": " + std::to_string(r.remaining()) + " unexpected trailing byte(s)");
    return v;
}

std::string_view severity_name(Severity s) {
    switch (s) {
        case Severity::error: return "ERROR";
        case Severity::fatal: return "FATAL";
        case Severity::panic: return "PANIC";
        case Severity::warning: return "WARNING";
        case Severity::notice: return "NOTICE";
        case Severity::info: return "INFO";
        case Severity::debug: return "DEBUG";
        case Severity::log: return "LOG";
    }
    return "ERROR";
}

Bytes fields_message(char type, const Fields& f) {
    MessageWriter m(type);
    auto field = [&](char code, std::string_view v) {
        m.w().u8(static_cast<std::uint8_t>(code));
        m.w().cstring(v);
    };
    field('S', severity_name(f.severity));
    field('V', severity_name(f.severity));
    field('C', f.sqlstate.empty() ? "XX000" : f.sqlstate);
    field('M', f.message);
    if (!f.detail.empty()) field('D', f.detail);
    if (!f.hint.empty()) field('H', f.hint);
    m.w().u8(0);
    return m.done();
}

/// Strings inside messages must not contain NUL; cut at the first one (it could not be sent anyway).
std::string_view no_nul(std::string_view s) { return s.substr(0, s.find('\0')); }

}  // namespace

std::optional<std::string> StartupMessage::get(std::string_view name) const {
    for (const auto& [k, v] : params) {
        if (k == name) return v;
    }
    return std::nullopt;
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest)
//   Int32 length | Int32 code (196608 = 3.0, or 80877102/3/4) | body
Result<std::variant<NeedMore, StartupDecoded>> decode_startup(ByteView input, const Limits& limits) {
    if (input.size() < 4) return std::variant<NeedMore, StartupDecoded>{NeedMore{4}};
    ByteReader hdr(input);
    const std::uint32_t len = *hdr.u32();
    // PostgreSQL: len < 4 + 4 or > MAX_STARTUP_PACKET_LENGTH is an invalid length.
    if (len < 8 || len > limits.max_startup) {
        return fail("invalid length of startup packet (" + std::to_string(len) + ")");
    }
    if (input.size() < len) return std::variant<NeedMore, StartupDecoded>{NeedMore{len}};
    ByteReader r(input.first(len));
    (void)r.u32();
    const std::uint32_t code = *r.u32();
    StartupDecoded out;
    out.consumed = len;
    if (code == ssl_request_code || code == gssenc_request_code) {
        if (len != 8) return fail("SSL/GSSENC request of wrong length " + std::to_string(len));
        out.packet = code == ssl_request_code ? StartupPacket{SslRequest{}} : StartupPacket{GssEncRequest{}};
        return std::variant<NeedMore, StartupDecoded>{std::move(out)};
    }
    if (code == cancel_request_code) {
        if (len != 16) return fail("cancel request of wrong length " + std::to_string(len));
        CancelRequest c;
        c.pid = *r.i32();
        c.key = *r.u32();
        out.packet = c;
        return std::variant<NeedMore, StartupDecoded>{std::move(out)};
    }
    StartupMessage m;
    m.major = static_cast<std::uint16_t>(code >> 16);
    m.minor = static_cast<std::uint16_t>(code & 0xFFFF);
    if (m.major != 3) {
        return fail("unsupported frontend protocol " + std::to_string(m.major) + "." + std::to_string(m.minor) +
                    ": glassgate speaks 3.0");
    }
    // Name/value pairs, each NUL-terminated, ended by one more NUL which must be the last byte.
    for (;;) {
        if (r.remaining() == 0) return fail("startup packet: missing terminator");
        auto name = r.cstring();
        if (!name) return fail("startup packet: parameter name not terminated");
        if (name->empty()) break;
        auto value = r.cstring();
        if (!value) return fail("startup packet: value of \"" + std::string(*name) + "\" not terminated");
        for (const auto& [k, v] : m.params) {
            if (k == *name) return fail("startup packet: duplicate parameter \"" + std::string(*name) + "\"");
        }
        m.params.emplace_back(std::string(*name), std::string(*value));
    }
    if (r.remaining() != 0) return fail("startup packet: data after the terminator");
    if (!m.get("user") || m.get("user")->empty()) return fail("startup packet: no PostgreSQL user name specified");
    out.packet = std::move(m);
    return std::variant<NeedMore, StartupDecoded>{std::move(out)};
}

Result<std::variant<NeedMore, MessageDecoded>> decode_message(ByteView input, const Limits& limits) {
    if (input.size() < 5) return std::variant<NeedMore, MessageDecoded>{NeedMore{5}};
    ByteReader r(input);
    const char type = static_cast<char>(*r.u8());
    const std::uint32_t len = *r.u32();
    if (len < 4) return fail("message '" + std::string(1, type) + "' with invalid length " + std::to_string(len));
    if (len > limits.max_message) {
        return fail("message '" + std::string(1, type) + "' of " + std::to_string(len) + " bytes exceeds the limit of " +
                    std::to_string(limits.max_message));
    }
    const std::size_t total = std::size_t{1} + len;
    if (input.size() < total) return std::variant<NeedMore, MessageDecoded>{NeedMore{total}};
    MessageDecoded d;
    d.message.type = type;
    d.message.body = input.subspan(5, len - 4);
    d.consumed = total;
    return std::variant<NeedMore, MessageDecoded>{d};
}

Result<Split> split_messages(ByteView input, const Limits& limits) {
    Split s;
    while (s.consumed < input.size()) {
        auto d = decode_message(input.subspan(s.consumed), limits);
        if (!d) return d.error();
        auto* m = std::get_if<MessageDecoded>(&*d);
        if (!m) break;
        s.messages.push_back(m->message);
        s.consumed += m->consumed;
    }
    return s;
}

Bytes error_response(const Fields& f) { return fields_message('E', f); }
Bytes notice_response(const Fields& f) { return fields_message('N', f); }

Bytes authentication_ok() {
    MessageWriter m('R');
    m.w().i32(0);
    return m.done();
}
Bytes authentication_cleartext_password() {
    MessageWriter m('R');
    m.w().i32(3);
    return m.done();
}
Bytes parameter_status(std::string_view name, std::string_view value) {
    MessageWriter m('S');
    m.w().cstring(no_nul(name));
    m.w().cstring(no_nul(value));
    return m.done();
}
Bytes backend_key_data(std::int32_t pid, std::uint32_t key) {
    MessageWriter m('K');
    m.w().i32(pid);
    m.w().u32(key);
    return m.done();
}
Bytes ready_for_query(char status) {
    MessageWriter m('Z');
    m.w().u8(static_cast<std::uint8_t>(status));
    return m.done();
}

Bytes startup_message(const std::vector<std::pair<std::string, std::string>>& params) {
    ByteWriter w;
    w.u32(0);
    w.u32(196608);
    for (const auto& [k, v] : params) {
        w.cstring(no_nul(k));
        w.cstring(no_nul(v));
    }
    w.u8(0);
    w.patch_u32(0, static_cast<std::uint32_t>(w.size()));
    return w.take();
}
Bytes ssl_request() {
    ByteWriter w;
    w.u32(8);
    w.u32(ssl_request_code);
    return w.take();
}
Bytes cancel_request(std::int32_t pid, std::uint32_t key) {
    ByteWriter w;
    w.u32(16);
    w.u32(cancel_request_code);
    w.i32(pid);
    w.u32(key);
    return w.take();
}
Bytes terminate() { return MessageWriter('X').done(); }
Bytes password_message(std::string_view password) {
    MessageWriter m('p');
    m.w().cstring(no_nul(password));
    return m.done();
}
Bytes sasl_initial_response(std::string_view mechanism, std::string_view data) {
    MessageWriter m('p');
    m.w().cstring(no_nul(mechanism));
    m.w().i32(static_cast<std::int32_t>(data.size()));
    m.w().str(data);
    return m.done();
}
Bytes sasl_response(std::string_view data) {
    MessageWriter m('p');
    m.w().str(data);
    return m.done();
}
Bytes query(std::string_view sql) {
    MessageWriter m('Q');
    m.w().cstring(no_nul(sql));
    return m.done();
}

Result<Authentication> parse_authentication(ByteView body) {
    ByteReader r(body);
    Authentication a;
    auto code = r.i32();
    if (!code) return fail("Authentication: truncated");
    a.code = *code;
    switch (a.code) {
        case 0:
        case 3:
            break;
        case 5: {
            auto salt = r.take(4);
            if (!salt) return fail("AuthenticationMD5Password: truncated salt");
            std::copy(salt->begin(), salt->end(), a.md5_salt.begin());
            break;
        }
        case 10:
            for (;;) {
                auto m = r.cstring();
                if (!m) return fail("AuthenticationSASL: mechanism list not terminated");
                if (m->empty()) break;
                a.mechanisms.emplace_back(*m);
            }
            break;
        case 11:
        case 12: {
            auto rest = r.take(r.remaining());
            a.data.assign(rest->begin(), rest->end());
            break;
        }
        default:
            // Other methods (GSS, SSPI, ...): no body glassgate understands; the caller refuses them.
            (void)r.take(r.remaining());
            break;
    }
    return finish(r, std::move(a), "Authentication");
}

Result<Fields> parse_error_fields(ByteView body) {
    ByteReader r(body);
    Fields f;
    bool have_v = false;
    for (;;) {
        auto code = r.u8();
        if (!code) return fail("ErrorResponse: missing terminator");
        if (*code == 0) break;
        auto v = r.cstring();
        if (!v) return fail("ErrorResponse: field not terminated");
        switch (static_cast<char>(*code)) {
            case 'V':
            case 'S': {
                if (*code == 'S' && have_v) break;
                static constexpr std::pair<std::string_view, Severity> map[] = {
                    {"ERROR", Severity::error},   {"FATAL", Severity::fatal}, {"PANIC", Severity::panic},
                    {"WARNING", Severity::warning}, {"NOTICE", Severity::notice}, {"INFO", Severity::info},
                    {"DEBUG", Severity::debug},   {"LOG", Severity::log}};
                for (const auto& [n, s] : map) {
                    if (v->starts_with(n)) f.severity = s;
                }
                if (*code == 'V') have_v = true;
                break;
            }
            case 'C': f.sqlstate = *v; break;
            case 'M': f.message = *v; break;
            case 'D': f.detail = *v; break;
            case 'H': f.hint = *v; break;
            default: break;
        }
    }
    return finish(r, std::move(f), "ErrorResponse");
}

Result<std::pair<std::string, std::string>> parse_parameter_status(ByteView body) {
    ByteReader r(body);
    auto n = r.cstring();
    auto v = r.cstring();
    if (!n || !v) return fail("ParameterStatus: truncated");
    return finish(r, std::pair<std::string, std::string>{std::string(*n), std::string(*v)}, "ParameterStatus");
}

Result<BackendKey> parse_backend_key_data(ByteView body) {
    ByteReader r(body);
    BackendKey k;
    auto p = r.i32();
    auto key = r.u32();
    if (!p || !key) return fail("BackendKeyData: truncated");
    k.pid = *p;
    k.key = *key;
    return finish(r, k, "BackendKeyData");
}

Result<char> parse_ready_for_query(ByteView body) {
    ByteReader r(body);
    auto s = r.u8();
    if (!s) return fail("ReadyForQuery: truncated");
    const char c = static_cast<char>(*s);
    if (c != 'I' && c != 'T' && c != 'E') return fail("ReadyForQuery: unknown status");
    return finish(r, c, "ReadyForQuery");
}

Result<std::string_view> parse_password_message(ByteView body) {
    ByteReader r(body);
    auto s = r.cstring();
    if (!s) return fail("PasswordMessage: not terminated");
    return finish(r, *s, "PasswordMessage");
}

Result<std::string_view> parse_query(ByteView body) {
    ByteReader r(body);
    auto s = r.cstring();
    if (!s) return fail("Query: not terminated");
    return finish(r, *s, "Query");
}

Result<Parse> parse_parse(ByteView body) {
    ByteReader r(body);
    Parse p;
    auto name = r.cstring();
    auto q = r.cstring();
    auto n = r.u16();
    if (!name || !q || !n) return fail("Parse: truncated");
    p.statement = *name;
    p.query = *q;
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto t = r.u32();
        if (!t) return fail("Parse: truncated parameter types");
        p.param_types.push_back(*t);
    }
    return finish(r, std::move(p), "Parse");
}

Result<Bind> parse_bind(ByteView body) {
    ByteReader r(body);
    Bind b;
    auto portal = r.cstring();
    auto stmt = r.cstring();
    if (!portal || !stmt) return fail("Bind: truncated names");
    b.portal = *portal;
    b.statement = *stmt;
    auto nf = r.u16();
    if (!nf) return fail("Bind: truncated");
    for (std::uint16_t i = 0; i < *nf; ++i) {
        auto f = r.u16();
        if (!f) return fail("Bind: truncated formats");
        b.param_formats.push_back(static_cast<std::int16_t>(*f));
    }
    auto np = r.u16();
    if (!np) return fail("Bind: truncated");
    if (*nf > 1 && *nf != *np) return fail("Bind: format count does not match parameter count");
    for (std::uint16_t i = 0; i < *np; ++i) {
        auto len = r.i32();
        if (!len) return fail("Bind: truncated parameter");
        if (*len == -1) {
            b.params.emplace_back(std::nullopt);
            continue;
        }
        if (*len < 0) return fail("Bind: negative parameter length");
        auto v = r.take(static_cast<std::size_t>(*len));
        if (!v) return fail("Bind: truncated parameter value");
        b.params.emplace_back(*v);
    }
    auto nr = r.u16();
    if (!nr) return fail("Bind: truncated result formats");
    for (std::uint16_t i = 0; i < *nr; ++i) {
        auto f = r.u16();
        if (!f) return fail("Bind: truncated result formats");
        b.result_formats.push_back(static_cast<std::int16_t>(*f));
    }
    return finish(r, std::move(b), "Bind");
}

Result<Execute> parse_execute(ByteView body) {
    ByteReader r(body);
    Execute e;
    auto p = r.cstring();
    auto n = r.i32();
    if (!p || !n) return fail("Execute: truncated");
    e.portal = *p;
    e.max_rows = *n;
    return finish(r, e, "Execute");
}

Result<Close> parse_close(ByteView body) {
    ByteReader r(body);
    Close c;
    auto k = r.u8();
    auto n = r.cstring();
    if (!k || !n) return fail("Close/Describe: truncated");
    c.kind = static_cast<char>(*k);
    if (c.kind != 'S' && c.kind != 'P') return fail("Close/Describe: unknown kind");
    c.name = *n;
    return finish(r, c, "Close");
}

Result<std::vector<std::optional<ByteView>>> parse_data_row(ByteView body) {
    ByteReader r(body);
    auto n = r.u16();
    if (!n) return fail("DataRow: truncated");
    std::vector<std::optional<ByteView>> out;
    out.reserve(*n);
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto len = r.i32();
        if (!len) return fail("DataRow: truncated column");
        if (*len == -1) {
            out.emplace_back(std::nullopt);
            continue;
        }
        if (*len < 0) return fail("DataRow: negative column length");
        auto v = r.take(static_cast<std::size_t>(*len));
        if (!v) return fail("DataRow: truncated column value");
        out.emplace_back(*v);
    }
    return finish(r, std::move(out), "DataRow");
}

Result<std::vector<std::string>> parse_row_description(ByteView body) {
    ByteReader r(body);
    auto n = r.u16();
    if (!n) return fail("RowDescription: truncated");
    std::vector<std::string> names;
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto name = r.cstring();
        // table oid, column number, type oid, type size, type modifier, format
        if (!name || !r.u32() || !r.u16() || !r.u32() || !r.u16() || !r.u32() || !r.u16()) {
            return fail("RowDescription: truncated field");
        }
        names.emplace_back(*name);
    }
    return finish(r, std::move(names), "RowDescription");
}

Result<std::string_view> parse_command_complete(ByteView body) {
    ByteReader r(body);
    auto s = r.cstring();
    if (!s) return fail("CommandComplete: not terminated");
    return finish(r, *s, "CommandComplete");
}

std::string_view frontend_name(char type) noexcept {
    switch (type) {
        case 'Q': return "Query";
        case 'P': return "Parse";
        case 'B': return "Bind";
        case 'E': return "Execute";
        case 'D': return "Describe";
        case 'C': return "Close";
        case 'S': return "Sync";
        case 'H': return "Flush";
        case 'F': return "FunctionCall";
        case 'd': return "CopyData";
        case 'c': return "CopyDone";
        case 'f': return "CopyFail";
        case 'X': return "Terminate";
        case 'p': return "PasswordMessage";
        default: return "Unknown";
    }
}

std::string_view backend_name(char type) noexcept {
    switch (type) {
        case 'R': return "Authentication";
        case 'K': return "BackendKeyData";
        case 'S': return "ParameterStatus";
        case 'Z': return "ReadyForQuery";
        case 'T': return "RowDescription";
        case 'D': return "DataRow";
        case 'C': return "CommandComplete";
        case 'E': return "ErrorResponse";
        case 'N': return "NoticeResponse";
        case 'A': return "NotificationResponse";
        case '1': return "ParseComplete";
        case '2': return "BindComplete";
        case '3': return "CloseComplete";
        case 'n': return "NoData";
        case 's': return "PortalSuspended";
        case 't': return "ParameterDescription";
        case 'I': return "EmptyQueryResponse";
        case 'G': return "CopyInResponse";
        case 'H': return "CopyOutResponse";
        case 'W': return "CopyBothResponse";
        case 'd': return "CopyData";
        case 'c': return "CopyDone";
        case 'V': return "FunctionCallResponse";
        case 'v': return "NegotiateProtocolVersion";
        default: return "Unknown";
    }
}

}  // namespace gg::pg
