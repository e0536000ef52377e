#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "glassgate/protocols/postgres/codec.hpp"
#include "test_util.hpp"

using namespace gg::pg::test;

TEST_SUITE_BEGIN("postgres");

namespace {

// psql 15 connecting as alice to database shop: user, database, application_name, client_encoding.
//   Int32 77 | Int32 196608 (3.0) | name\0value\0 ... | \0
const Bytes psql_startup = cat(bytes({0x00, 0x00, 0x00, 0x4d, 0x00, 0x03, 0x00, 0x00}),
                               "user\0alice\0"
                               "database\0shop\0"
                               "application_name\0psql\0"
                               "client_encoding\0UTF8\0"
                               "\0"sv);
const Bytes ssl_request_bytes = bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f});
const Bytes gssenc_request_bytes = bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x30});
// CancelRequest: Int32 16 | Int32 80877102 | Int32 pid 4711 | Int32 key 0xdeadbeef
const Bytes cancel_bytes =
    bytes({0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x12, 0x67, 0xde, 0xad, 0xbe, 0xef});

/// A copy: the result passed in is usually a temporary.
StartupDecoded startup_ok(const Result<std::variant<NeedMore, StartupDecoded>>& r) {
    REQUIRE(r.has_value());
    REQUIRE(std::holds_alternative<StartupDecoded>(*r));
    return std::get<StartupDecoded>(*r);
}

/// A streaming consumer as the proxy drives it: one startup packet, then regular messages. Each
/// decoded unit is recorded as text, so two feeding patterns can be compared.
struct StreamDecoder {
    Bytes buffer;
    bool startup = true;
    std::vector<std::string> seen;
    std::size_t last_need = 0;  ///< at_least of the last NeedMore, 0 if the buffer was drained

    /// Returns false on a decode error.
    bool feed(ByteView part) {
        append(buffer, part);
        for (;;) {
            last_need = 0;
            Step step = Step::need_more;
            if (startup) {
                step = take(decode_startup(buffer), [](const StartupDecoded& d) {
                    std::string s = "startup";
                    for (const auto& [k, v] : std::get<StartupMessage>(d.packet).params) s += " " + k + "=" + v;
                    return s;
                });
                if (step == Step::took) startup = false;
            } else {
                if (buffer.empty()) return true;
                step = take(decode_message(buffer), [](const MessageDecoded& d) {
                    return std::string(1, d.message.type) + ":" + to_hex(d.message.body);
                });
            }
            if (step != Step::took) return step == Step::need_more;
        }
    }

private:
    enum class Step { error, need_more, took };
    /// One decode result: on NeedMore remembers how much; on a unit records `describe(unit)` and
    /// drops its bytes from the buffer.
    template <typename Decoded, typename Describe>
    Step take(const Result<std::variant<NeedMore, Decoded>>& r, Describe describe) {
        if (!r) return Step::error;
        if (auto* n = std::get_if<NeedMore>(&*r)) {
            last_need = n->at_least;
            return Step::need_more;
        }
        const auto& d = std::get<Decoded>(*r);
        seen.push_back(describe(d));
        buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(d.consumed));
        return Step::took;
    }
};

}  // namespace

TEST_CASE("startup: a psql startup packet") {
    REQUIRE(psql_startup.size() == 0x4d);
    Bytes input = cat(psql_startup, "Q"sv);  // a pipelined byte behind it is not consumed
    const auto d = startup_ok(decode_startup(input));
    CHECK(d.consumed == 0x4d);
    const auto& m = std::get<StartupMessage>(d.packet);
    CHECK(m.major == 3);
    CHECK(m.minor == 0);
    REQUIRE(m.params.size() == 4);
    CHECK(m.params[0] == std::pair<std::string, std::string>{"user", "alice"});
    CHECK(m.params[3] == std::pair<std::string, std::string>{"client_encoding", "UTF8"});
    CHECK(m.get("database") == "shop");
    CHECK(m.get("application_name") == "psql");
    CHECK_FALSE(m.get("options").has_value());
}

TEST_CASE("startup: SSLRequest, GSSENCRequest, CancelRequest") {
    {
        const auto d = startup_ok(decode_startup(ssl_request_bytes));
        CHECK(std::holds_alternative<SslRequest>(d.packet));
        CHECK(d.consumed == 8);
    }
    {
        // Bytes behind the request are not consumed: the caller sees consumed < size and refuses them.
        const auto d = startup_ok(decode_startup(cat(gssenc_request_bytes, psql_startup)));
        CHECK(std::holds_alternative<GssEncRequest>(d.packet));
        CHECK(d.consumed == 8);
    }
    {
        const auto d = startup_ok(decode_startup(cancel_bytes));
        REQUIRE(std::holds_alternative<CancelRequest>(d.packet));
        CHECK(std::get<CancelRequest>(d.packet).pid == 4711);
        CHECK(std::get<CancelRequest>(d.packet).key == 0xdeadbeefu);
        CHECK(d.consumed == 16);
    }
}

TEST_CASE("startup: protocol 3.2 is accepted and its minor version kept") {
    const Bytes p = cat(bytes({0x00, 0x00, 0x00, 0x14, 0x00, 0x03, 0x00, 0x02}), "user\0alice\0\0"sv);
    const auto d = startup_ok(decode_startup(p));
    CHECK(std::get<StartupMessage>(d.packet).minor == 2);
}

TEST_CASE("startup: NeedMore") {
    for (std::size_t n = 0; n < 4; ++n) {
        auto r = decode_startup(ByteView(psql_startup).first(n));
        REQUIRE(r.has_value());
        REQUIRE(std::holds_alternative<NeedMore>(*r));
        CHECK(std::get<NeedMore>(*r).at_least > n);
        CHECK(std::get<NeedMore>(*r).at_least <= psql_startup.size());
    }
    for (std::size_t n = 4; n < psql_startup.size(); ++n) {
        auto r = decode_startup(ByteView(psql_startup).first(n));
        REQUIRE(r.has_value());
        REQUIRE(std::holds_alternative<NeedMore>(*r));
        CHECK(std::get<NeedMore>(*r).at_least == psql_startup.size());
    }
}

TEST_CASE("startup: malformed packets") {
    const BadInput cases[] = {
        {"length 7", bytes({0x00, 0x00, 0x00, 0x07, 0x00, 0x03, 0x00}), errc::bad_length},
        {"length 0", bytes({0x00, 0x00, 0x00, 0x00}), errc::bad_length},
        // Refused from the length field alone: nothing is buffered for it.
        {"length 10001", bytes({0x00, 0x00, 0x27, 0x11}), errc::too_large},
        {"length 2^31", bytes({0x80, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00}), errc::too_large},
        {"length 2^32-1", bytes({0xff, 0xff, 0xff, 0xff}), errc::too_large},
        {"missing final terminator", cat(bytes({0x00, 0x00, 0x00, 0x13, 0x00, 0x03, 0x00, 0x00}), "user\0alice\0"sv),
         errc::bad_startup},
        {"value not terminated", cat(bytes({0x00, 0x00, 0x00, 0x12, 0x00, 0x03, 0x00, 0x00}), "user\0alice"sv),
         errc::bad_startup},
        {"name not terminated", cat(bytes({0x00, 0x00, 0x00, 0x0c, 0x00, 0x03, 0x00, 0x00}), "user"sv),
         errc::bad_startup},
        {"no parameters and no terminator", bytes({0x00, 0x00, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00}), errc::bad_startup},
        {"protocol 2.0", cat(bytes({0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x00}), "user\0alice\0\0"sv),
         errc::unsupported_protocol},
        {"protocol 4.0", cat(bytes({0x00, 0x00, 0x00, 0x14, 0x00, 0x04, 0x00, 0x00}), "user\0alice\0\0"sv),
         errc::unsupported_protocol},
        {"unknown request 1234.5681", bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x31}),
         errc::unsupported_protocol},
        {"duplicate parameter", cat(bytes({0x00, 0x00, 0x00, 0x1d, 0x00, 0x03, 0x00, 0x00}), "user\0alice\0user\0bob\0\0"sv),
         errc::bad_startup},
        {"user missing", cat(bytes({0x00, 0x00, 0x00, 0x17, 0x00, 0x03, 0x00, 0x00}), "database\0shop\0\0"sv),
         errc::bad_startup},
        {"user empty", cat(bytes({0x00, 0x00, 0x00, 0x0f, 0x00, 0x03, 0x00, 0x00}), "user\0\0\0"sv), errc::bad_startup},
        {"empty name before the end", cat(bytes({0x00, 0x00, 0x00, 0x17, 0x00, 0x03, 0x00, 0x00}), "user\0alice\0\0x\0\0"sv),
         errc::bad_startup},
        {"bytes after the terminator", cat(bytes({0x00, 0x00, 0x00, 0x15, 0x00, 0x03, 0x00, 0x00}), "user\0alice\0\0x"sv),
         errc::bad_startup},
        {"cancel of length 12", bytes({0x00, 0x00, 0x00, 0x0c, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x12, 0x67}),
         errc::bad_length},
        {"cancel of length 20",
         bytes({0x00, 0x00, 0x00, 0x14, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x12, 0x67, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0}),
         errc::bad_length},
        {"SSLRequest of length 12", bytes({0x00, 0x00, 0x00, 0x0c, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0}), errc::bad_length},
    };
    check_refused(cases, [](ByteView in) {
        auto r = decode_startup(in);
        if (r.has_error()) CHECK_FALSE(r.error().reason.empty());
        return r;
    });
}

TEST_CASE("startup: a smaller max_startup is honoured") {
    Limits l;
    l.max_startup = 64;
    auto r = decode_startup(psql_startup, l);
    REQUIRE(r.has_error());
    CHECK(r.error().code == errc::too_large);
}

TEST_CASE("frame: split at every offset yields NeedMore, then the same units") {
    const Bytes stream = cat(psql_startup, query("select 1"), bytes({'S', 0, 0, 0, 4}), terminate());
    StreamDecoder whole;
    REQUIRE(whole.feed(stream));
    REQUIRE(whole.seen.size() == 4);
    CHECK(whole.seen[0] == "startup user=alice database=shop application_name=psql client_encoding=UTF8");
    CHECK(whole.seen[1] == "Q:" + to_hex(as_bytes("select 1\0"sv)));
    CHECK(whole.seen[2] == "S:");
    CHECK(whole.seen[3] == "X:");
    CHECK(whole.buffer.empty());

    const std::size_t boundaries[] = {0, psql_startup.size(), psql_startup.size() + 14, psql_startup.size() + 19,
                                      stream.size()};
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        CAPTURE(split);
        StreamDecoder d;
        REQUIRE(d.feed(ByteView(stream).first(split)));
        const bool at_boundary = std::find(std::begin(boundaries), std::end(boundaries), split) != std::end(boundaries);
        if (!at_boundary) {
            CHECK(d.last_need > d.buffer.size());  // NeedMore asks for more than it has
        }
        REQUIRE(d.feed(ByteView(stream).subspan(split)));
        CHECK(d.seen == whole.seen);
        CHECK(d.buffer.empty());
    }

    StreamDecoder bytewise;
    for (std::size_t i = 0; i < stream.size(); ++i) REQUIRE(bytewise.feed(ByteView(stream).subspan(i, 1)));
    CHECK(bytewise.seen == whole.seen);
}

TEST_CASE("message: decode") {
    const Bytes q = cat(bytes({'Q', 0x00, 0x00, 0x00, 0x0d}), "select 1\0"sv);
    auto r = decode_message(q);
    REQUIRE(r.has_value());
    REQUIRE(std::holds_alternative<MessageDecoded>(*r));
    const auto& d = std::get<MessageDecoded>(*r);
    CHECK(d.message.type == 'Q');
    CHECK(as_chars(d.message.body) == "select 1\0"sv);
    CHECK(d.message.body.data() == q.data() + 5);  // a view, not a copy
    CHECK(d.message.size() == q.size());
    CHECK(d.consumed == q.size());

    auto sync = decode_message(bytes({'S', 0x00, 0x00, 0x00, 0x04}));
    REQUIRE(sync.has_value());
    CHECK(std::get<MessageDecoded>(*sync).message.body.empty());

    for (std::size_t n = 0; n < q.size(); ++n) {
        auto p = decode_message(ByteView(q).first(n));
        REQUIRE(p.has_value());
        REQUIRE(std::holds_alternative<NeedMore>(*p));
        CHECK(std::get<NeedMore>(*p).at_least == (n < 5 ? 5u : q.size()));
    }
}

TEST_CASE("message: invalid lengths are refused from the header alone") {
    const BadInput cases[] = {
        {"length 3", bytes({'Q', 0x00, 0x00, 0x00, 0x03}), errc::bad_length},
        {"length 0", bytes({'Q', 0x00, 0x00, 0x00, 0x00}), errc::bad_length},
        {"length 0x7fffffff", bytes({'D', 0x7f, 0xff, 0xff, 0xff}), errc::too_large},
        {"length 0xffffffff", bytes({'D', 0xff, 0xff, 0xff, 0xff}), errc::too_large},
        {"length max_message + 1", bytes({'D', 0x04, 0x00, 0x00, 0x01}), errc::too_large},
    };
    check_refused(cases, [](ByteView in) { return decode_message(in); });
    // Exactly max_message is allowed (and then needs its bytes).
    auto at_limit = decode_message(bytes({'D', 0x04, 0x00, 0x00, 0x00}));
    REQUIRE(at_limit.has_value());
    CHECK(std::get<NeedMore>(*at_limit).at_least == (64u << 20) + 1);

    Limits small;
    small.max_message = 8;
    CHECK(decode_message(cat(bytes({'Q', 0x00, 0x00, 0x00, 0x08}), "abc\0"sv), small).has_value());
    auto over = decode_message(cat(bytes({'Q', 0x00, 0x00, 0x00, 0x09}), "abcd\0"sv), small);
    REQUIRE(over.has_error());
    CHECK(over.error().code == errc::too_large);
    CHECK(over.error().reason.find("'Q'") != std::string::npos);
}

TEST_CASE("message: split_messages on three messages and a partial tail") {
    const Bytes first = bytes({'1', 0x00, 0x00, 0x00, 0x04});                                     // ParseComplete
    const Bytes second = cat(bytes({'C', 0x00, 0x00, 0x00, 0x0d}), "SELECT 1\0"sv);                // CommandComplete
    const Bytes third = bytes({'Z', 0x00, 0x00, 0x00, 0x05, 'I'});                                 // ReadyForQuery
    const Bytes tail = cat(bytes({'D', 0x00, 0x00, 0x00, 0x10, 0x00, 0x01}), "\0\0"sv);             // DataRow, cut
    const Bytes stream = cat(first, second, third, tail);
    auto s = split_messages(stream);
    REQUIRE(s.has_value());
    REQUIRE(s->messages.size() == 3);
    CHECK(s->messages[0].type == '1');
    CHECK(s->messages[1].type == 'C');
    CHECK(as_chars(s->messages[1].body) == "SELECT 1\0"sv);
    CHECK(s->messages[2].type == 'Z');
    CHECK(s->consumed == first.size() + second.size() + third.size());
    CHECK(stream.size() - s->consumed == tail.size());

    auto empty = split_messages({});
    REQUIRE(empty.has_value());
    CHECK(empty->messages.empty());
    CHECK(empty->consumed == 0);

    // A bad header after good messages still fails the whole split: never forward past it.
    auto bad = split_messages(cat(first, bytes({'Q', 0x00, 0x00, 0x00, 0x02})));
    REQUIRE(bad.has_error());
    CHECK(bad.error().code == errc::bad_length);
}

TEST_CASE("message: scan_message agrees with decode_message at every offset and on bad headers") {
    const Bytes stream = cat(bytes({'1', 0x00, 0x00, 0x00, 0x04}), cat(bytes({'C', 0x00, 0x00, 0x00, 0x0d}), "SELECT 1\0"sv),
                             bytes({'Z', 0x00, 0x00, 0x00, 0x05, 'I'}));
    auto agree = [](ByteView in, const Limits& limits) {
        const auto f = scan_message(in, limits);
        const auto d = decode_message(in, limits);
        if (!d) {
            CHECK(f.error);
            CHECK(f.size == 0);
            return;
        }
        CHECK_FALSE(f.error);
        if (const auto* m = std::get_if<MessageDecoded>(&*d)) {
            CHECK(f.size == m->consumed);
            CHECK(f.type == m->message.type);
        } else {
            CHECK(f.size == 0);
            CHECK(f.need == std::get<NeedMore>(*d).at_least);
        }
    };
    for (std::size_t from = 0; from < stream.size(); ++from) {
        for (std::size_t n = 0; from + n <= stream.size(); ++n) agree(ByteView(stream).subspan(from, n), Limits{});
    }
    Limits small;
    small.max_message = 8;
    for (const Bytes& bad : {bytes({'Q', 0x00, 0x00, 0x00, 0x03}), bytes({'D', 0xff, 0xff, 0xff, 0xff}),
                             bytes({'D', 0x04, 0x00, 0x00, 0x01}), bytes({'Q', 0x00, 0x00, 0x00, 0x09})}) {
        agree(bad, Limits{});
        agree(bad, small);
    }
    const auto at_limit = scan_message(bytes({'D', 0x04, 0x00, 0x00, 0x00}));
    CHECK_FALSE(at_limit.error);
    CHECK(at_limit.need == (64u << 20) + 1);
}

TEST_CASE("error: category, message, value() throws") {
    const auto ec = make_error_code(errc::truncated);
    CHECK(std::string(ec.category().name()) == "postgres");
    CHECK(ec.message() == "truncated message");
    Result<int> r = Error{errc::bad_value, "x"};
    CHECK_THROWS(r.value());
    CHECK(describe_type('Q') == "'Q'");
    CHECK(describe_type('\x01') == "0x01");
}

TEST_SUITE_END();
