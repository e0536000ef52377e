// Typed views of PostgreSQL messages (protocols/postgres/messages.hpp), frontend and backend.
//   byte 0 : bit 0 direction (0 frontend, 1 backend); bit 1 body mode
//   stream mode : the rest is a message stream, split with split_messages, each message parsed by
//                 the view its type selects in that direction
//   body mode   : byte 1 is the type, the rest one message body
// Views must point into the body; a Bind that parses is re-encoded (encode.hpp) and must parse
// back to the same values; its redacted form must parse too.

#include <cstddef>
#include <cstdint>
#include <variant>

#include "fuzz_util.hpp"
#include "glassgate/protocols/postgres/codec.hpp"

using namespace gg;
using namespace gg::pg;

namespace {

void check_bind(const Bind& b, ByteView body) {
    GG_FUZZ_CHECK(fuzz::within(b.portal, body) && fuzz::within(b.statement, body));
    for (std::size_t i = 0; i < b.params.size(); ++i) {
        if (b.params[i]) GG_FUZZ_CHECK(fuzz::within(*b.params[i], body));
        auto f = param_format(b, i);
        GG_FUZZ_CHECK(f == 0 || f == 1);
    }
    const Bytes again = bind(b);
    auto split = split_messages(again);
    GG_FUZZ_CHECK(split.has_value() && split->messages.size() == 1 && split->messages[0].type == 'B');
    auto back = parse_bind(split->messages[0].body);
    GG_FUZZ_CHECK(back.has_value());
    GG_FUZZ_CHECK(back->portal == b.portal && back->statement == b.statement);
    GG_FUZZ_CHECK(back->param_formats == b.param_formats && back->result_formats == b.result_formats);
    GG_FUZZ_CHECK(back->params.size() == b.params.size());
    for (std::size_t i = 0; i < b.params.size(); ++i) {
        GG_FUZZ_CHECK(back->params[i].has_value() == b.params[i].has_value());
        if (b.params[i]) {
            GG_FUZZ_CHECK(as_chars(*back->params[i]) == as_chars(*b.params[i]));
        }
    }
    const Bytes redacted = redact_bind(b);
    auto rsplit = split_messages(redacted);
    GG_FUZZ_CHECK(rsplit.has_value() && rsplit->messages.size() == 1);
    auto r = parse_bind(rsplit->messages[0].body);
    GG_FUZZ_CHECK(r.has_value() && r->params.size() == b.params.size());
}

void frontend(char type, ByteView body) {
    (void)frontend_name(type);
    switch (type) {
        case 'p':
            if (auto r = parse_password_message(body)) GG_FUZZ_CHECK(fuzz::within(*r, body));
            break;
        case 'Q':
            if (auto r = parse_query(body)) GG_FUZZ_CHECK(fuzz::within(*r, body));
            break;
        case 'P':
            if (auto r = parse_parse(body)) {
                GG_FUZZ_CHECK(fuzz::within(r->statement, body) && fuzz::within(r->query, body));
                GG_FUZZ_CHECK(r->param_types.size() * 4 <= body.size());
            }
            break;
        case 'B':
            if (auto r = parse_bind(body)) check_bind(*r, body);
            break;
        case 'E':
            if (auto r = parse_execute(body)) GG_FUZZ_CHECK(fuzz::within(r->portal, body));
            break;
        case 'C':
        case 'D':
            if (auto r = parse_close(body)) {
                GG_FUZZ_CHECK(r->kind == 'S' || r->kind == 'P');
                GG_FUZZ_CHECK(fuzz::within(r->name, body));
            }
            break;
        default: break;
    }
}

void backend(char type, ByteView body) {
    (void)backend_name(type);
    switch (type) {
        case 'R':
            if (auto r = parse_authentication(body)) GG_FUZZ_CHECK(r->data.size() <= body.size());
            break;
        case 'E':
        case 'N':
            if (auto r = parse_error_fields(body)) {
                (void)severity_name(r->severity);
                // What glassgate would write from these fields parses back to them.
                const Bytes again = type == 'E' ? error_response(*r) : notice_response(*r);
                auto split = split_messages(again);
                GG_FUZZ_CHECK(split.has_value() && split->messages.size() == 1);
                auto back = parse_error_fields(split->messages[0].body);
                GG_FUZZ_CHECK(back.has_value());
                GG_FUZZ_CHECK(back->message == r->message && back->detail == r->detail && back->hint == r->hint);
            }
            break;
        case 'S': (void)parse_parameter_status(body); break;
        case 'K': (void)parse_backend_key_data(body); break;
        case 'Z':
            if (auto r = parse_ready_for_query(body)) GG_FUZZ_CHECK(*r == 'I' || *r == 'T' || *r == 'E');
            break;
        case 'D':
            if (auto r = parse_data_row(body)) {
                for (const auto& v : *r) {
                    if (v) GG_FUZZ_CHECK(fuzz::within(*v, body));
                }
                GG_FUZZ_CHECK(r->size() <= 0xFFFF);
            }
            break;
        case 'T': (void)parse_row_description(body); break;
        case 'C':
            if (auto r = parse_command_complete(body)) GG_FUZZ_CHECK(fuzz::within(*r, body));
            break;
        default: break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const bool from_backend = (data[0] & 1u) != 0;
    const bool body_mode = (data[0] & 2u) != 0;
    auto parse = [&](char type, ByteView body) { from_backend ? backend(type, body) : frontend(type, body); };
    if (body_mode) {
        parse(static_cast<char>(data[1]), fuzz::view(data + 2, size - 2));
        return 0;
    }
    auto split = split_messages(fuzz::view(data + 1, size - 1));
    if (!split.has_value()) return 0;
    for (const auto& m : split->messages) parse(m.type, m.body);
    return 0;
}
