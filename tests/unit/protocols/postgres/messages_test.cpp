#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "glassgate/protocols/postgres/codec.hpp"
#include "test_util.hpp"

using namespace gg::pg::test;

TEST_SUITE_BEGIN("postgres");

namespace {

/// The single whole message in `b` (a builder's output).
Message only_message(const Bytes& b) {
    auto r = decode_message(b);
    REQUIRE(r.has_value());
    REQUIRE(std::holds_alternative<MessageDecoded>(*r));
    REQUIRE(std::get<MessageDecoded>(*r).consumed == b.size());
    return std::get<MessageDecoded>(*r).message;
}

// Bind: portal "", statement "s1", formats (text, binary, text), params "42", int4 7, NULL,
// one result format (binary).
const Bytes bind_body = cat("\0s1\0"sv,
                            bytes({0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}),  // 3 parameter formats
                            bytes({0x00, 0x03}),                                      // 3 parameters
                            bytes({0x00, 0x00, 0x00, 0x02}), "42"sv,                  // text "42"
                            bytes({0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07}),  // binary int4 7
                            bytes({0xff, 0xff, 0xff, 0xff}),                          // NULL
                            bytes({0x00, 0x01, 0x00, 0x01}));                         // 1 result format: binary
// DataRow: "1", NULL, "" (empty, not NULL)
const Bytes data_row_body = cat(bytes({0x00, 0x03, 0x00, 0x00, 0x00, 0x01}), "1"sv,
                                bytes({0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00}));
const Bytes parse_body = cat("s1\0select $1\0"sv, bytes({0x00, 0x01, 0x00, 0x00, 0x00, 0x17}));
const Bytes execute_body = cat("\0"sv, bytes({0x00, 0x00, 0x00, 0x64}));
const Bytes close_body = cat("S"sv, "s1\0"sv);
const Bytes row_description_body = cat(bytes({0x00, 0x02}), "id\0"sv,
                                       bytes({0, 0, 0x40, 0x01, 0, 1, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0}),
                                       "name\0"sv,
                                       bytes({0, 0, 0x40, 0x01, 0, 2, 0, 0, 0, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}));
const Bytes error_body = cat("SFATAL\0VFATAL\0C28000\0Mno\0"sv, "\0"sv);

}  // namespace

TEST_CASE("builders: exact bytes of backend messages") {
    CHECK(authentication_ok() == bytes({'R', 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00}));
    CHECK(authentication_cleartext_password() == bytes({'R', 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03}));
    CHECK(ready_for_query('I') == bytes({'Z', 0x00, 0x00, 0x00, 0x05, 'I'}));
    CHECK(backend_key_data(1234, 0xdeadbeef) ==
          bytes({'K', 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x04, 0xd2, 0xde, 0xad, 0xbe, 0xef}));
    CHECK(parameter_status("client_encoding", "UTF8") ==
          cat(bytes({'S', 0x00, 0x00, 0x00, 0x19}), "client_encoding\0UTF8\0"sv));
    CHECK(error_response({.severity = Severity::fatal, .sqlstate = "28000", .message = "no"}) ==
          cat(bytes({'E', 0x00, 0x00, 0x00, 0x1e}), error_body));
    CHECK(notice_response({.severity = Severity::warning, .sqlstate = "01000", .message = "m", .detail = "d", .hint = "h"}) ==
          cat(bytes({'N', 0x00, 0x00, 0x00, 0x27}), "SWARNING\0VWARNING\0C01000\0Mm\0Dd\0Hh\0\0"sv));
    // No SQLSTATE given: XX000 (internal_error), never an empty C field.
    CHECK(error_response({.message = "x"}) == cat(bytes({'E', 0x00, 0x00, 0x00, 0x1d}), "SERROR\0VERROR\0CXX000\0Mx\0\0"sv));
}

TEST_CASE("builders: exact bytes of frontend messages") {
    CHECK(ssl_request() == bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f}));
    CHECK(cancel_request(4711, 0xdeadbeef) ==
          bytes({0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x12, 0x67, 0xde, 0xad, 0xbe, 0xef}));
    CHECK(terminate() == bytes({'X', 0x00, 0x00, 0x00, 0x04}));
    CHECK(password_message("sso") == cat(bytes({'p', 0x00, 0x00, 0x00, 0x08}), "sso\0"sv));
    CHECK(query("select 1") == cat(bytes({'Q', 0x00, 0x00, 0x00, 0x0d}), "select 1\0"sv));
    CHECK(sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=abc") ==
          cat(bytes({'p', 0x00, 0x00, 0x00, 0x21}), "SCRAM-SHA-256\0"sv, bytes({0x00, 0x00, 0x00, 0x0b}), "n,,n=,r=abc"sv));
    CHECK(sasl_response("c=biws") == cat(bytes({'p', 0x00, 0x00, 0x00, 0x0a}), "c=biws"sv));
    CHECK(startup_message({{"user", "alice"}}) ==
          cat(bytes({0x00, 0x00, 0x00, 0x14, 0x00, 0x03, 0x00, 0x00}), "user\0alice\0\0"sv));
}

TEST_CASE("builders: an embedded NUL cannot forge fields") {
    // Without the cut, "\0Hforged" would read as a hint field.
    auto e = error_response({.sqlstate = "42501", .message = std::string("denied\0Hforged", 14)});
    auto f = parse_error_fields(only_message(e).body);
    REQUIRE(f.has_value());
    CHECK(f->message == "denied");
    CHECK(f->hint.empty());
    auto s = parameter_status(std::string_view("a\0b", 3), "v");
    auto ps = parse_parameter_status(only_message(s).body);
    REQUIRE(ps.has_value());
    CHECK(ps->first == "a");
}

TEST_CASE("builders: round trip through the parsers") {
    const Fields in{.severity = Severity::fatal, .sqlstate = "57P01", .message = "session ended",
                    .detail = "time cap reached", .hint = "sign in again"};
    for (const auto& b : {error_response(in), notice_response(in)}) {
        auto f = parse_error_fields(only_message(b).body);
        REQUIRE(f.has_value());
        CHECK(f->severity == in.severity);
        CHECK(f->sqlstate == in.sqlstate);
        CHECK(f->message == in.message);
        CHECK(f->detail == in.detail);
        CHECK(f->hint == in.hint);
    }
    CHECK(only_message(error_response(in)).type == 'E');
    CHECK(only_message(notice_response(in)).type == 'N');

    for (Severity s : {Severity::error, Severity::fatal, Severity::panic, Severity::warning, Severity::notice,
                       Severity::info, Severity::debug, Severity::log}) {
        auto f = parse_error_fields(only_message(notice_response({.severity = s})).body);
        REQUIRE(f.has_value());
        CHECK(f->severity == s);
    }

    auto ps = parse_parameter_status(only_message(parameter_status("TimeZone", "UTC")).body);
    REQUIRE(ps.has_value());
    CHECK(*ps == std::pair<std::string, std::string>{"TimeZone", "UTC"});

    auto k = parse_backend_key_data(only_message(backend_key_data(-5, 0xfffffffe)).body);
    REQUIRE(k.has_value());
    CHECK(k->pid == -5);
    CHECK(k->key == 0xfffffffeu);

    for (char st : {'I', 'T', 'E'}) {
        auto z = parse_ready_for_query(only_message(ready_for_query(st)).body);
        REQUIRE(z.has_value());
        CHECK(*z == st);
    }

    auto a = parse_authentication(only_message(authentication_ok()).body);
    REQUIRE(a.has_value());
    CHECK(a->code == 0);
    auto c = parse_authentication(only_message(authentication_cleartext_password()).body);
    REQUIRE(c.has_value());
    CHECK(c->code == 3);

    // The views point into the message: keep it alive.
    const Bytes pw_msg = password_message("hunter2");
    auto pw = parse_password_message(only_message(pw_msg).body);
    REQUIRE(pw.has_value());
    CHECK(*pw == "hunter2");
    const Bytes q_msg = query("select now()");
    auto q = parse_query(only_message(q_msg).body);
    REQUIRE(q.has_value());
    CHECK(*q == "select now()");

    auto sm = decode_startup(startup_message({{"user", "svc"}, {"database", "db"}}));
    REQUIRE(sm.has_value());
    const auto& m = std::get<StartupMessage>(std::get<StartupDecoded>(*sm).packet);
    CHECK(m.get("user") == "svc");
    CHECK(m.get("database") == "db");
}

TEST_CASE("views: Authentication") {
    auto md5 = parse_authentication(bytes({0, 0, 0, 5, 0x01, 0x02, 0x03, 0x04}));
    REQUIRE(md5.has_value());
    CHECK(md5->code == 5);
    CHECK(md5->md5_salt == std::array<std::byte, 4>{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}});

    auto sasl = parse_authentication(cat(bytes({0, 0, 0, 10}), "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"sv));
    REQUIRE(sasl.has_value());
    CHECK(sasl->code == 10);
    CHECK(sasl->mechanisms == std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});

    auto cont = parse_authentication(cat(bytes({0, 0, 0, 11}), "r=abc,s=xyz,i=4096"sv));
    REQUIRE(cont.has_value());
    CHECK(cont->code == 11);
    CHECK(as_chars(cont->data) == "r=abc,s=xyz,i=4096");

    auto fin = parse_authentication(cat(bytes({0, 0, 0, 12}), "v=abc"sv));
    REQUIRE(fin.has_value());
    CHECK(fin->code == 12);
    CHECK(as_chars(fin->data) == "v=abc");

    const BadInput bad[] = {
        {"empty", {}, errc::truncated},
        {"short code", bytes({0, 0, 0}), errc::truncated},
        {"ok with trailing bytes", bytes({0, 0, 0, 0, 1}), errc::trailing_bytes},
        {"md5 with 3 salt bytes", bytes({0, 0, 0, 5, 1, 2, 3}), errc::truncated},
        {"md5 with 5 salt bytes", bytes({0, 0, 0, 5, 1, 2, 3, 4, 5}), errc::trailing_bytes},
        {"sasl list not terminated", cat(bytes({0, 0, 0, 10}), "SCRAM-SHA-256\0"sv), errc::truncated},
        {"sasl trailing", cat(bytes({0, 0, 0, 10}), "SCRAM-SHA-256\0\0x"sv), errc::trailing_bytes},
    };
    check_refused(bad, [](ByteView b) { return parse_authentication(b); });
}

TEST_CASE("views: ErrorResponse fields") {
    auto f = parse_error_fields(error_body);
    REQUIRE(f.has_value());
    CHECK(f->severity == Severity::fatal);
    CHECK(f->sqlstate == "28000");
    CHECK(f->message == "no");

    // A German server: S is localized, V is not and wins; unknown fields (P, F, L, R) are skipped.
    auto de = parse_error_fields(cat("SFEHLER\0VERROR\0C42P01\0MRelation existiert nicht\0P15\0Fparse.c\0L1\0Rf\0"sv, "\0"sv));
    REQUIRE(de.has_value());
    CHECK(de->severity == Severity::error);
    CHECK(de->sqlstate == "42P01");
    CHECK(de->message == "Relation existiert nicht");
    // Before 9.6 there is no V: S is used.
    auto old = parse_error_fields(cat("SWARNING\0C01000\0Mw\0"sv, "\0"sv));
    REQUIRE(old.has_value());
    CHECK(old->severity == Severity::warning);

    CHECK(parse_error_fields({}).error().code == errc::truncated);
    CHECK(parse_error_fields(as_bytes("SERROR\0"sv)).error().code == errc::truncated);
    CHECK(parse_error_fields(as_bytes("SERROR"sv)).error().code == errc::truncated);
    CHECK(parse_error_fields(as_bytes("SERROR\0\0x"sv)).error().code == errc::trailing_bytes);
}

TEST_CASE("views: Bind with text, binary and NULL parameters") {
    auto b = parse_bind(bind_body);
    REQUIRE(b.has_value());
    CHECK(b->portal == "");
    CHECK(b->statement == "s1");
    CHECK(b->param_formats == std::vector<std::int16_t>{0, 1, 0});
    REQUIRE(b->params.size() == 3);
    REQUIRE(b->params[0].has_value());
    CHECK(as_chars(*b->params[0]) == "42");
    REQUIRE(b->params[1].has_value());
    CHECK(to_hex(*b->params[1]) == "00000007");
    CHECK_FALSE(b->params[2].has_value());
    CHECK(b->result_formats == std::vector<std::int16_t>{1});
    CHECK(param_format(*b, 0) == 0);
    CHECK(param_format(*b, 1) == 1);

    // One format applies to all parameters; none means text.
    const Bytes one_format = cat("p\0s\0"sv, bytes({0, 1, 0, 1, 0, 2, 0, 0, 0, 1, 'x', 0, 0, 0, 0, 0, 0}));
    auto one = parse_bind(one_format);
    REQUIRE(one.has_value());
    CHECK(one->portal == "p");
    CHECK(param_format(*one, 0) == 1);
    CHECK(param_format(*one, 1) == 1);
    REQUIRE(one->params.size() == 2);
    CHECK(one->params[1].has_value());  // length 0: an empty value, not NULL
    CHECK(one->params[1]->empty());
    auto none = parse_bind(cat("\0\0"sv, bytes({0, 0, 0, 0, 0, 0})));
    REQUIRE(none.has_value());
    CHECK(none->params.empty());
    CHECK(param_format(*none, 0) == 0);
}

TEST_CASE("builders: Bind round trip, and the redacted Bind keeps the call's shape, not its values") {
    auto b = parse_bind(bind_body);
    REQUIRE(b.has_value());
    // bind() writes exactly what parse_bind read.
    CHECK(bind(*b) == cat(bytes({'B', 0, 0, 0, static_cast<std::uint8_t>(4 + bind_body.size())}), bind_body));

    const Bytes red = redact_bind(*b);
    // 'B' | len | "" | "s1" | 0 formats (all text) | 3 params: "<redacted: 2 bytes>", "<redacted: 4 bytes>", NULL
    // | 1 result format (binary)
    const Bytes want_body = cat("\0s1\0"sv, bytes({0, 0, 0, 3}), bytes({0, 0, 0, 19}), "<redacted: 2 bytes>"sv,
                                bytes({0, 0, 0, 19}), "<redacted: 4 bytes>"sv, bytes({0xFF, 0xFF, 0xFF, 0xFF}),
                                bytes({0, 1, 0, 1}));
    CHECK(to_hex(red) == to_hex(cat(bytes({'B', 0, 0, 0, static_cast<std::uint8_t>(4 + want_body.size())}), want_body)));
    const auto m = only_message(red);
    auto rb = parse_bind(m.body);
    REQUIRE(rb.has_value());
    CHECK(rb->statement == "s1");
    REQUIRE(rb->params.size() == 3);
    CHECK(as_chars(*rb->params[0]) == "<redacted: 2 bytes>");
    CHECK(as_chars(*rb->params[1]) == "<redacted: 4 bytes>");
    CHECK_FALSE(rb->params[2].has_value());
    CHECK(param_format(*rb, 1) == 0);  // text now: the replay shows the marker, not hex
    CHECK(rb->result_formats == std::vector<std::int16_t>{1});
    // Nothing of the values survives.
    CHECK(to_hex(red).find("00000007") == std::string::npos);
    CHECK(std::string(reinterpret_cast<const char*>(red.data()), red.size()).find("42") == std::string::npos);
}

TEST_CASE("views: malformed Bind") {
    const BadInput bad[] = {
        {"negative length -2", cat("\0\0"sv, bytes({0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0})), errc::bad_value},
        {"negative length INT_MIN", cat("\0\0"sv, bytes({0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0})), errc::bad_value},
        {"length beyond the body", cat("\0\0"sv, bytes({0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0})), errc::truncated},
        {"format code 2", cat("\0\0"sv, bytes({0, 1, 0, 2, 0, 0, 0, 0})), errc::bad_value},
        {"result format code -1", cat("\0\0"sv, bytes({0, 0, 0, 0, 0, 1, 0xff, 0xff})), errc::bad_value},
        {"2 formats for 3 parameters",
         cat("\0\0"sv, bytes({0, 2, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0})),
         errc::bad_value},
        {"count larger than the body", cat("\0\0"sv, bytes({0, 0, 0xff, 0xff})), errc::truncated},
        {"trailing garbage", cat(bind_body, "x"sv), errc::trailing_bytes},
    };
    check_refused(bad, [](ByteView b) { return parse_bind(b); });
}

TEST_CASE("views: DataRow with NULLs") {
    auto row = parse_data_row(data_row_body);
    REQUIRE(row.has_value());
    REQUIRE(row->size() == 3);
    CHECK(as_chars(*(*row)[0]) == "1");
    CHECK_FALSE((*row)[1].has_value());
    REQUIRE((*row)[2].has_value());
    CHECK((*row)[2]->empty());

    CHECK(parse_data_row(bytes({0, 1, 0xff, 0xff, 0xff, 0xfb})).error().code == errc::bad_value);  // -5
    CHECK(parse_data_row(bytes({0, 1, 0, 0, 0, 2, 'a'})).error().code == errc::truncated);
    CHECK(parse_data_row(cat(data_row_body, "x"sv)).error().code == errc::trailing_bytes);
    CHECK(parse_data_row(bytes({0, 0})).value().empty());
}

TEST_CASE("views: Parse, Execute, Close/Describe, RowDescription, CommandComplete, ReadyForQuery") {
    auto p = parse_parse(parse_body);
    REQUIRE(p.has_value());
    CHECK(p->statement == "s1");
    CHECK(p->query == "select $1");
    CHECK(p->param_types == std::vector<std::uint32_t>{23});

    auto e = parse_execute(execute_body);
    REQUIRE(e.has_value());
    CHECK(e->portal == "");
    CHECK(e->max_rows == 100);

    auto c = parse_close(close_body);
    REQUIRE(c.has_value());
    CHECK(c->kind == 'S');
    CHECK(c->name == "s1");
    auto d = parse_close(as_bytes("P\0"sv));
    REQUIRE(d.has_value());
    CHECK(d->kind == 'P');
    CHECK(d->name == "");
    CHECK(parse_close(as_bytes("X\0"sv)).error().code == errc::bad_value);

    auto rd = parse_row_description(row_description_body);
    REQUIRE(rd.has_value());
    CHECK(*rd == std::vector<std::string>{"id", "name"});

    auto tag = parse_command_complete(as_bytes("SELECT 1\0"sv));
    REQUIRE(tag.has_value());
    CHECK(*tag == "SELECT 1");

    CHECK(parse_ready_for_query(as_bytes("X"sv)).error().code == errc::bad_value);
    CHECK(parse_ready_for_query({}).error().code == errc::truncated);
    // Protocol 3.2's longer cancel keys are not protocol 3.0.
    CHECK(parse_backend_key_data(bytes({0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3})).error().code == errc::trailing_bytes);
    CHECK(parse_backend_key_data(bytes({0, 0, 0, 1, 0, 0, 0})).error().code == errc::truncated);
    CHECK(parse_password_message(as_bytes("abc"sv)).error().code == errc::truncated);
    CHECK(parse_password_message(as_bytes("abc\0d"sv)).error().code == errc::trailing_bytes);
}

TEST_CASE("views: every proper prefix is an error, so is one byte more") {
    using Parser = std::function<bool(ByteView)>;
    struct Case {
        const char* name;
        Bytes body;
        Parser ok;
    };
    const Case cases[] = {
        {"Bind", bind_body, [](ByteView b) { return parse_bind(b).has_value(); }},
        {"DataRow", data_row_body, [](ByteView b) { return parse_data_row(b).has_value(); }},
        {"Parse", parse_body, [](ByteView b) { return parse_parse(b).has_value(); }},
        {"Execute", execute_body, [](ByteView b) { return parse_execute(b).has_value(); }},
        {"Close", close_body, [](ByteView b) { return parse_close(b).has_value(); }},
        {"RowDescription", row_description_body, [](ByteView b) { return parse_row_description(b).has_value(); }},
        {"ErrorResponse", error_body, [](ByteView b) { return parse_error_fields(b).has_value(); }},
        {"ParameterStatus", cat("a\0b\0"sv), [](ByteView b) { return parse_parameter_status(b).has_value(); }},
        {"BackendKeyData", bytes({0, 0, 0, 1, 0, 0, 0, 2}), [](ByteView b) { return parse_backend_key_data(b).has_value(); }},
        {"ReadyForQuery", bytes({'I'}), [](ByteView b) { return parse_ready_for_query(b).has_value(); }},
        {"Query", cat("select 1\0"sv), [](ByteView b) { return parse_query(b).has_value(); }},
        {"CommandComplete", cat("SELECT 1\0"sv), [](ByteView b) { return parse_command_complete(b).has_value(); }},
        {"PasswordMessage", cat("pw\0"sv), [](ByteView b) { return parse_password_message(b).has_value(); }},
        {"AuthenticationMD5", bytes({0, 0, 0, 5, 1, 2, 3, 4}), [](ByteView b) { return parse_authentication(b).has_value(); }},
        {"AuthenticationSASL", cat(bytes({0, 0, 0, 10}), "SCRAM-SHA-256\0\0"sv),
         [](ByteView b) { return parse_authentication(b).has_value(); }},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        CHECK(c.ok(c.body));
        for (std::size_t n = 0; n < c.body.size(); ++n) {
            CAPTURE(n);
            CHECK_FALSE(c.ok(ByteView(c.body).first(n)));
        }
        CHECK_FALSE(c.ok(cat(c.body, "\0"sv)));
    }
}

TEST_CASE("names of message types") {
    CHECK(frontend_name('Q') == "Query");
    CHECK(frontend_name('D') == "Describe");
    CHECK(frontend_name('p') == "PasswordMessage");
    CHECK(backend_name('D') == "DataRow");
    CHECK(backend_name('Z') == "ReadyForQuery");
    CHECK(backend_name('R') == "Authentication");
    CHECK(frontend_name('Z') == "Unknown");
    CHECK(backend_name('\0') == "Unknown");
}

TEST_SUITE_END();
