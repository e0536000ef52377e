#include "glassgate/protocols/postgres/messages.hpp"

#include <algorithm>

#include "glassgate/protocols/postgres/frame.hpp"

namespace gg::pg {
namespace {

Error fail(errc code, std::string reason) { return Error{code, std::move(reason)}; }
Error truncated(std::string_view what) { return fail(errc::truncated, std::string(what) + ": truncated"); }

/// The value if the reader consumed exactly its input; otherwise why not.
template <typename T>
Result<T> finish(const ByteReader& r, T value, std::string_view what) {
    if (!r.ok()) return truncated(what);
    if (r.remaining() != 0) {
        return fail(errc::trailing_bytes,
                    std::string(what) + ": " + std::to_string(r.remaining()) + " unexpected byte(s) after the last field");
    }
    return value;
}

/// Capacity for `count` announced items of at least `min_size` bytes each: never more than the
/// remaining bytes can hold, so a lying count cannot make us allocate.
std::size_t bounded(std::size_t count, const ByteReader& r, std::size_t min_size) {
    return std::min(count, r.remaining() / min_size);
}

std::optional<Severity> severity_from(std::string_view v) noexcept {
    static constexpr Severity all[] = {Severity::error, Severity::fatal, Severity::panic, Severity::warning,
                                       Severity::notice, Severity::info, Severity::debug, Severity::log};
    for (Severity s : all) {
        if (v == severity_name(s)) return s;
    }
    return std::nullopt;
}

/// Reads Int16 format codes, each 0 (text) or 1 (binary).
Result<std::vector<std::int16_t>> read_formats(ByteReader& r, std::string_view what) {
    auto n = r.u16();
    if (!n) return truncated(what);
    std::vector<std::int16_t> out;
    out.reserve(bounded(*n, r, 2));
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto f = r.u16();
        if (!f) return truncated(what);
        if (*f > 1) return fail(errc::bad_value, std::string(what) + ": format code " + std::to_string(*f) + " is neither 0 nor 1");
        out.push_back(static_cast<std::int16_t>(*f));
    }
    return out;
}

/// Reads Int16 count, then per value Int32 length (-1 = NULL) and that many bytes.
Result<std::vector<std::optional<ByteView>>> read_values(ByteReader& r, std::string_view what) {
    auto n = r.u16();
    if (!n) return truncated(what);
    std::vector<std::optional<ByteView>> out;
    out.reserve(bounded(*n, r, 4));
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto len = r.i32();
        if (!len) return truncated(what);
        if (*len == -1) {
            out.emplace_back(std::nullopt);
            continue;
        }
        if (*len < 0) return fail(errc::bad_value, std::string(what) + ": negative value length " + std::to_string(*len));
        auto v = r.take(static_cast<std::size_t>(*len));
        if (!v) return truncated(what);
        out.emplace_back(*v);
    }
    return out;
}

/// Bodies made of exactly one String.
Result<std::string_view> one_string(ByteView body, std::string_view what) {
    ByteReader r(body);
    auto s = r.cstring();
    if (!s) return fail(errc::truncated, std::string(what) + ": string not NUL-terminated");
    return finish(r, *s, what);
}

}  // namespace

std::string_view severity_name(Severity s) noexcept {
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

// https://www.postgresql.org/docs/15/protocol-message-formats.html (AuthenticationOk ...
// AuthenticationSASLFinal)
//   Int32 code | code 5: Byte4 salt | code 10: { String mechanism }* Byte1 0
//              | code 8, 11, 12: Byte[n] data (the rest of the message)
Result<Authentication> parse_authentication(ByteView body) {
    ByteReader r(body);
    Authentication a;
    auto code = r.i32();
    if (!code) return truncated("Authentication");
    a.code = *code;
    switch (a.code) {
        case 0:  // Ok
        case 2:  // KerberosV5
        case 3:  // CleartextPassword
        case 7:  // GSS
        case 9:  // SSPI
            break;
        case 5: {  // MD5Password
            auto salt = r.take(4);
            if (!salt) return truncated("AuthenticationMD5Password");
            std::copy(salt->begin(), salt->end(), a.md5_salt.begin());
            break;
        }
        case 10:  // SASL
            for (;;) {
                auto m = r.cstring();
                if (!m) return fail(errc::truncated, "AuthenticationSASL: mechanism list not terminated");
                if (m->empty()) break;
                a.mechanisms.emplace_back(*m);
            }
            break;
        default: {  // 8 GSSContinue, 11 SASLContinue, 12 SASLFinal; unknown codes keep their bytes too
            auto rest = r.take(r.remaining());
            a.data.assign(rest->begin(), rest->end());
            break;
        }
    }
    return finish(r, std::move(a), "Authentication");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (ErrorResponse, NoticeResponse)
// https://www.postgresql.org/docs/15/protocol-error-fields.html
//   { Byte1 field code | String value }* | Byte1 0
Result<Fields> parse_error_fields(ByteView body) {
    ByteReader r(body);
    Fields f;
    std::optional<Severity> from_s;
    std::optional<Severity> from_v;
    for (;;) {
        auto code = r.u8();
        if (!code) return fail(errc::truncated, "ErrorResponse: no terminator");
        if (*code == 0) break;
        auto v = r.cstring();
        if (!v) return fail(errc::truncated, "ErrorResponse: field not NUL-terminated");
        switch (static_cast<char>(*code)) {
            case 'S': from_s = severity_from(*v); break;  // may be localized: then unrecognized
            case 'V': from_v = severity_from(*v); break;  // never localized (9.6 and later)
            case 'C': f.sqlstate = *v; break;
            case 'M': f.message = *v; break;
            case 'D': f.detail = *v; break;
            case 'H': f.hint = *v; break;
            default: break;
        }
    }
    f.severity = from_v.value_or(from_s.value_or(Severity::error));
    return finish(r, std::move(f), "ErrorResponse");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (ParameterStatus)
//   String name | String value
Result<std::pair<std::string, std::string>> parse_parameter_status(ByteView body) {
    ByteReader r(body);
    auto n = r.cstring();
    auto v = r.cstring();
    if (!n || !v) return truncated("ParameterStatus");
    return finish(r, std::pair<std::string, std::string>{std::string(*n), std::string(*v)}, "ParameterStatus");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (BackendKeyData)
//   Int32 process id | Int32 secret key
Result<BackendKey> parse_backend_key_data(ByteView body) {
    ByteReader r(body);
    auto pid = r.i32();
    auto key = r.u32();
    if (!pid || !key) return truncated("BackendKeyData");
    return finish(r, BackendKey{*pid, *key}, "BackendKeyData");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (ReadyForQuery)
//   Byte1 status: 'I' | 'T' | 'E'
Result<char> parse_ready_for_query(ByteView body) {
    ByteReader r(body);
    auto s = r.u8();
    if (!s) return truncated("ReadyForQuery");
    const char c = static_cast<char>(*s);
    if (c != 'I' && c != 'T' && c != 'E') {
        return fail(errc::bad_value, "ReadyForQuery: unknown transaction status " + describe_type(c));
    }
    return finish(r, c, "ReadyForQuery");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (PasswordMessage)
//   String password
Result<std::string_view> parse_password_message(ByteView body) { return one_string(body, "PasswordMessage"); }

// https://www.postgresql.org/docs/15/protocol-message-formats.html (Query)
//   String query
Result<std::string_view> parse_query(ByteView body) { return one_string(body, "Query"); }

// https://www.postgresql.org/docs/15/protocol-message-formats.html (Parse)
//   String statement | String query | Int16 n | Int32 type oid * n
Result<Parse> parse_parse(ByteView body) {
    ByteReader r(body);
    Parse p;
    auto name = r.cstring();
    auto q = r.cstring();
    auto n = r.u16();
    if (!name || !q || !n) return truncated("Parse");
    p.statement = *name;
    p.query = *q;
    p.param_types.reserve(bounded(*n, r, 4));
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto t = r.u32();
        if (!t) return truncated("Parse");
        p.param_types.push_back(*t);
    }
    return finish(r, std::move(p), "Parse");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (Bind)
//   String portal | String statement
//   Int16 nf | Int16 format * nf                          (0 text, 1 binary)
//   Int16 np | { Int32 len (-1 = NULL) | Byte[len] } * np (nf is 0, 1 or np)
//   Int16 nr | Int16 result format * nr
Result<Bind> parse_bind(ByteView body) {
    ByteReader r(body);
    Bind b;
    auto portal = r.cstring();
    auto stmt = r.cstring();
    if (!portal || !stmt) return truncated("Bind");
    b.portal = *portal;
    b.statement = *stmt;
    auto pf = read_formats(r, "Bind");
    if (!pf) return pf.error();
    b.param_formats = std::move(*pf);
    auto params = read_values(r, "Bind");
    if (!params) return params.error();
    b.params = std::move(*params);
    if (b.param_formats.size() > 1 && b.param_formats.size() != b.params.size()) {
        return fail(errc::bad_value, "Bind: " + std::to_string(b.param_formats.size()) + " parameter formats for " +
                                         std::to_string(b.params.size()) + " parameters");
    }
    auto rf = read_formats(r, "Bind");
    if (!rf) return rf.error();
    b.result_formats = std::move(*rf);
    return finish(r, std::move(b), "Bind");
}

std::int16_t param_format(const Bind& b, std::size_t i) noexcept {
    if (b.param_formats.empty()) return 0;
    if (b.param_formats.size() == 1) return b.param_formats[0];
    return i < b.param_formats.size() ? b.param_formats[i] : std::int16_t{0};
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (Execute)
//   String portal | Int32 max rows (0 = no limit)
Result<Execute> parse_execute(ByteView body) {
    ByteReader r(body);
    auto p = r.cstring();
    auto n = r.i32();
    if (!p || !n) return truncated("Execute");
    return finish(r, Execute{*p, *n}, "Execute");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (Close, Describe)
//   Byte1 'S' (statement) | 'P' (portal) | String name
Result<Close> parse_close(ByteView body) {
    ByteReader r(body);
    auto k = r.u8();
    auto n = r.cstring();
    if (!k || !n) return truncated("Close/Describe");
    const char kind = static_cast<char>(*k);
    if (kind != 'S' && kind != 'P') return fail(errc::bad_value, "Close/Describe: unknown kind " + describe_type(kind));
    return finish(r, Close{kind, *n}, "Close/Describe");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (DataRow)
//   Int16 n | { Int32 len (-1 = NULL) | Byte[len] } * n
Result<std::vector<std::optional<ByteView>>> parse_data_row(ByteView body) {
    ByteReader r(body);
    auto values = read_values(r, "DataRow");
    if (!values) return values.error();
    return finish(r, std::move(*values), "DataRow");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (RowDescription)
//   Int16 n | { String name | Int32 table oid | Int16 column | Int32 type oid | Int16 type size
//               | Int32 type modifier | Int16 format } * n
Result<std::vector<std::string>> parse_row_description(ByteView body) {
    ByteReader r(body);
    auto n = r.u16();
    if (!n) return truncated("RowDescription");
    std::vector<std::string> names;
    names.reserve(bounded(*n, r, 19));
    for (std::uint16_t i = 0; i < *n; ++i) {
        auto name = r.cstring();
        if (!name || !r.take(18)) return truncated("RowDescription");
        names.emplace_back(*name);
    }
    return finish(r, std::move(names), "RowDescription");
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (CommandComplete)
//   String command tag
Result<std::string_view> parse_command_complete(ByteView body) { return one_string(body, "CommandComplete"); }

std::string_view frontend_name(char type) noexcept {
    switch (type) {
        case 'B': return "Bind";
        case 'C': return "Close";
        case 'c': return "CopyDone";
        case 'd': return "CopyData";
        case 'D': return "Describe";
        case 'E': return "Execute";
        case 'f': return "CopyFail";
        case 'F': return "FunctionCall";
        case 'H': return "Flush";
        case 'P': return "Parse";
        case 'p': return "PasswordMessage";  // also GSSResponse, SASLInitialResponse, SASLResponse
        case 'Q': return "Query";
        case 'S': return "Sync";
        case 'X': return "Terminate";
        default: return "Unknown";
    }
}

std::string_view backend_name(char type) noexcept {
    switch (type) {
        case '1': return "ParseComplete";
        case '2': return "BindComplete";
        case '3': return "CloseComplete";
        case 'A': return "NotificationResponse";
        case 'c': return "CopyDone";
        case 'C': return "CommandComplete";
        case 'd': return "CopyData";
        case 'D': return "DataRow";
        case 'E': return "ErrorResponse";
        case 'G': return "CopyInResponse";
        case 'H': return "CopyOutResponse";
        case 'I': return "EmptyQueryResponse";
        case 'K': return "BackendKeyData";
        case 'n': return "NoData";
        case 'N': return "NoticeResponse";
        case 'R': return "Authentication";
        case 's': return "PortalSuspended";
        case 'S': return "ParameterStatus";
        case 't': return "ParameterDescription";
        case 'T': return "RowDescription";
        case 'v': return "NegotiateProtocolVersion";
        case 'V': return "FunctionCallResponse";
        case 'W': return "CopyBothResponse";
        case 'Z': return "ReadyForQuery";
        default: return "Unknown";
    }
}

}  // namespace gg::pg
