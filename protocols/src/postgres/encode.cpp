#include "glassgate/protocols/postgres/encode.hpp"

#include "glassgate/protocols/postgres/frame.hpp"

namespace gg::pg {
namespace {

/// Byte1 type | Int32 length (patched in done()) | body.
class MessageWriter {
public:
    explicit MessageWriter(char type) {
        w_.u8(static_cast<std::uint8_t>(type));
        w_.u32(0);
    }
    ByteWriter& w() noexcept { return w_; }
    /// Writes `s` up to its first NUL, then a NUL.
    void cstring(std::string_view s) { w_.cstring(s.substr(0, s.find('\0'))); }
    Bytes done() {
        w_.patch_u32(1, static_cast<std::uint32_t>(w_.size() - 1));
        return w_.take();
    }

private:
    ByteWriter w_;
};

// https://www.postgresql.org/docs/15/protocol-error-fields.html
//   Byte1 'E'/'N' | Int32 len | { Byte1 field code | String value }* | Byte1 0
Bytes fields_message(char type, const Fields& f) {
    MessageWriter m(type);
    auto field = [&m](char code, std::string_view v) {
        m.w().u8(static_cast<std::uint8_t>(code));
        m.cstring(v);
    };
    field('S', severity_name(f.severity));
    field('V', severity_name(f.severity));
    field('C', f.sqlstate.empty() ? std::string_view("XX000") : std::string_view(f.sqlstate));
    field('M', f.message);
    if (!f.detail.empty()) field('D', f.detail);
    if (!f.hint.empty()) field('H', f.hint);
    m.w().u8(0);
    return m.done();
}

Bytes authentication(std::int32_t code) {
    MessageWriter m('R');
    m.w().i32(code);
    return m.done();
}

}  // namespace

Bytes error_response(const Fields& f) { return fields_message('E', f); }
Bytes notice_response(const Fields& f) { return fields_message('N', f); }
Bytes authentication_ok() { return authentication(0); }
Bytes authentication_cleartext_password() { return authentication(3); }

Bytes parameter_status(std::string_view name, std::string_view value) {
    MessageWriter m('S');
    m.cstring(name);
    m.cstring(value);
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
    w.u32(protocol_3_0);
    for (const auto& [k, v] : params) {
        w.cstring(std::string_view(k).substr(0, k.find('\0')));
        w.cstring(std::string_view(v).substr(0, v.find('\0')));
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
    m.cstring(password);
    return m.done();
}

Bytes sasl_initial_response(std::string_view mechanism, std::string_view data) {
    MessageWriter m('p');
    m.cstring(mechanism);
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
    m.cstring(sql);
    return m.done();
}

// https://www.postgresql.org/docs/15/protocol-message-formats.html (Bind)
//   String portal | String statement | Int16 n, Int16[n] formats | Int16 n, { Int32 len (-1 NULL) | bytes }*n
//   | Int16 n, Int16[n] result formats
Bytes bind(const Bind& b) {
    MessageWriter m('B');
    m.cstring(b.portal);
    m.cstring(b.statement);
    m.w().u16(static_cast<std::uint16_t>(b.param_formats.size()));
    for (auto f : b.param_formats) m.w().u16(static_cast<std::uint16_t>(f));
    m.w().u16(static_cast<std::uint16_t>(b.params.size()));
    for (const auto& v : b.params) {
        if (!v) {
            m.w().i32(-1);
            continue;
        }
        m.w().u32(static_cast<std::uint32_t>(v->size()));
        m.w().bytes(*v);
    }
    m.w().u16(static_cast<std::uint16_t>(b.result_formats.size()));
    for (auto f : b.result_formats) m.w().u16(static_cast<std::uint16_t>(f));
    return m.done();
}

Bytes redact_bind(const Bind& b) {
    Bind r;
    r.portal = b.portal;
    r.statement = b.statement;
    r.result_formats = b.result_formats;  // formats of the results, not values: kept
    std::vector<std::string> texts;
    texts.reserve(b.params.size());
    for (const auto& v : b.params) texts.push_back(v ? "<redacted: " + std::to_string(v->size()) + " bytes>" : std::string());
    for (std::size_t i = 0; i < b.params.size(); ++i) {
        if (b.params[i]) {
            r.params.emplace_back(as_bytes(texts[i]));
        } else {
            r.params.emplace_back(std::nullopt);
        }
    }
    return bind(r);  // no parameter formats: all text
}

}  // namespace gg::pg
