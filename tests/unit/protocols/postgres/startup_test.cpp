// The startup decision machine (protocols/postgres/startup.hpp), driven as the proxy drives it:
// each read hands it one "flight" of client bytes, each action is done and logged, until it ends.

#include <doctest/doctest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/protocols/postgres/startup.hpp"
#include "test_util.hpp"

using namespace gg;
using namespace gg::pg;
using namespace gg::pg::test;
using namespace std::string_view_literals;

TEST_SUITE_BEGIN("postgres");

namespace {

// ---- byte tables ---------------------------------------------------------------------------------
//   SSLRequest    : Int32 8  | Int32 80877103 (1234.5679)
//   GSSENCRequest : Int32 8  | Int32 80877104 (1234.5680)
//   CancelRequest : Int32 16 | Int32 80877102 (1234.5678) | Int32 pid 4711 | Int32 key 0xdeadbeef
//   StartupMessage: Int32 len | Int32 196608 (3.0) | name\0value\0 ... | \0
const Bytes ssl_request_bytes = bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f});
const Bytes gssenc_bytes = bytes({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x30});
const Bytes cancel_bytes =
    bytes({0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x12, 0x67, 0xde, 0xad, 0xbe, 0xef});
// The start of a TLS ClientHello record: handshake (0x16), TLS 1.0 record version, length 0x00c8.
const Bytes client_hello = bytes({0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03});

/// A StartupMessage for protocol 3.0 with these parameters, in this order.
Bytes startup_packet(const std::vector<std::pair<std::string, std::string>>& params) { return startup_message(params); }

// psql connecting as alice to target appdb: Int32 0x39 | 3.0 | user alice | database appdb |
// application_name psql | \0
const Bytes psql_startup = cat(bytes({0x00, 0x00, 0x00, 0x39, 0x00, 0x03, 0x00, 0x00}),
                               "user\0alice\0"
                               "database\0appdb\0"
                               "application_name\0psql\0"
                               "\0"sv);

/// The proxy's targets: appdb (database app, may also pick reporting) and shop.
std::optional<RouteTarget> lookup(std::string_view name) {
    if (name == "appdb") return RouteTarget{"app", {"reporting"}};
    if (name == "shop") return RouteTarget{"shop", {}};
    return std::nullopt;
}

constexpr StartupFacts tls_only{.tls_configured = true, .plaintext_allowed = false};
constexpr StartupFacts plaintext_ok{.tls_configured = false, .plaintext_allowed = true};
constexpr StartupFacts no_tls{.tls_configured = false, .plaintext_allowed = false};

std::string hex32(std::uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
}

/// One line per action, for comparing whole exchanges.
std::string describe(const StartupAction& a) {
    struct Visitor {
        std::string operator()(const ReadMore& r) const { return "read " + std::to_string(r.at_least); }
        std::string operator()(const Answer& r) const { return std::string("answer ") + r.byte; }
        std::string operator()(const StartTls& t) const { return t.answer_s ? "tls after S" : "tls direct"; }
        std::string operator()(const ForwardCancel& c) const {
            return "cancel " + std::to_string(c.pid) + " " + hex32(c.key);
        }
        std::string operator()(const Disconnect& d) const {
            return "disconnect " + d.sqlstate + " | " + d.message + " | " + d.log_reason;
        }
        std::string operator()(const Deny& d) const {
            return "deny " + d.sqlstate + " | " + d.message + " | " + d.log_reason + " | user=" + d.user +
                   " target=" + d.target;
        }
        std::string operator()(const Proceed& p) const {
            std::string s = "proceed user=" + p.user + " target=" + p.target + " database=" + p.database +
                            (p.tls ? " tls" : " plain") + " reason=" + p.reason.value_or("<none>");
            for (const auto& [k, v] : p.forward) s += " " + k + "=" + v;
            return s;
        }
    };
    return std::visit(Visitor{}, a);
}

/// Drives a StartupNegotiation as the proxy does. Each flight is what one read returns; the next
/// flight is read only when the machine asks for more.
struct Exchange {
    std::vector<std::string> actions;  ///< every action but the reads, in order
    std::optional<StartupAction> last; ///< the final action; none when the client ran out of bytes
    std::size_t left = 0;              ///< bytes buffered and not consumed at the end
};
Exchange drive(StartupFacts facts, const std::vector<Bytes>& flights, std::string_view alpn = "postgresql") {
    StartupNegotiation neg(facts, lookup);
    Exchange ex;
    Bytes buf;
    std::size_t next_flight = 0;
    for (int guard = 0; guard < 1000; ++guard) {
        auto step = neg.next(buf);
        REQUIRE(step.consumed <= buf.size());
        if (const auto* more = std::get_if<ReadMore>(&step.action)) {
            CHECK(step.consumed == 0);
            CHECK(more->at_least > buf.size());  // never asks for what it has
            if (next_flight == flights.size()) {
                ex.left = buf.size();
                return ex;
            }
            append(buf, flights[next_flight++]);
            continue;
        }
        const std::string line = describe(step.action);
        if (const auto* tls = std::get_if<StartTls>(&step.action)) {
            // Direct TLS: the bytes consumed are the start of the handshake.
            ex.actions.push_back(line + (tls->answer_s ? "" : " with " + std::to_string(step.consumed) + " bytes"));
            buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(step.consumed));
            neg.tls_started(alpn);
            CHECK(neg.tls());
            continue;
        }
        ex.actions.push_back(line);
        buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(step.consumed));
        if (std::holds_alternative<Answer>(step.action)) continue;
        ex.last = step.action;
        ex.left = buf.size();
        // Ended: the machine stays ended.
        CHECK(describe(neg.next(buf).action) == "disconnect  |  | ");
        return ex;
    }
    FAIL("the negotiation did not end");
    return ex;
}

template <typename T>
const T& last_as(const Exchange& ex) {
    REQUIRE(ex.last.has_value());
    REQUIRE(std::holds_alternative<T>(*ex.last));
    return std::get<T>(*ex.last);
}

}  // namespace

TEST_CASE("startup: psql over TLS after an SSLRequest") {
    const auto ex = drive(tls_only, {ssl_request_bytes, psql_startup});
    CHECK(ex.actions == std::vector<std::string>{
                            "tls after S",
                            "proceed user=alice target=appdb database=app tls reason=<none> application_name=psql"});
    const auto& p = last_as<Proceed>(ex);
    CHECK(p.forward == StartupParams{{"application_name", "psql"}});
    CHECK(ex.left == 0);
}

TEST_CASE("startup: libpq 18 asks for GSSAPI encryption first, then TLS") {
    const auto ex = drive(tls_only, {gssenc_bytes, ssl_request_bytes, psql_startup});
    CHECK(ex.actions == std::vector<std::string>{
                            "answer N", "tls after S",
                            "proceed user=alice target=appdb database=app tls reason=<none> application_name=psql"});
}

TEST_CASE("startup: SSLRequest without [tls] is answered N; plaintext then needs allow_plaintext") {
    const auto refused = drive(no_tls, {ssl_request_bytes, psql_startup});
    CHECK(refused.actions ==
          std::vector<std::string>{"answer N",
                                   "deny 28000 | TLS required: connect with sslmode=require | plaintext connection "
                                   "refused | user=alice target="});
    const auto allowed = drive(plaintext_ok, {ssl_request_bytes, psql_startup});
    CHECK(allowed.actions == std::vector<std::string>{
                                 "answer N",
                                 "proceed user=alice target=appdb database=app plain reason=<none> "
                                 "application_name=psql"});
    // A plaintext client that never asked for TLS, on a listener that requires it.
    const auto plain = drive(tls_only, {psql_startup});
    CHECK(last_as<Deny>(plain).sqlstate == "28000");
    CHECK(last_as<Deny>(plain).target.empty());  // refused before routing
}

TEST_CASE("startup: bytes behind an SSLRequest are refused, nothing answered") {
    // They arrived unencrypted and may have been injected by a man-in-the-middle before the handshake.
    const auto garbage = drive(tls_only, {cat(ssl_request_bytes, "garbage"sv)});
    CHECK(garbage.actions ==
          std::vector<std::string>{"disconnect  |  | 7 unencrypted byte(s) after SSLRequest; closing"});
    const auto pipelined = drive(tls_only, {cat(ssl_request_bytes, psql_startup)});
    CHECK(last_as<Disconnect>(pipelined).log_reason == "57 unencrypted byte(s) after SSLRequest; closing");
    // Without [tls] the answer is N and the connection stays plaintext: what follows is read as such.
    const auto no = drive(plaintext_ok, {cat(ssl_request_bytes, psql_startup)});
    CHECK(no.actions.front() == "answer N");
    CHECK(std::holds_alternative<Proceed>(*no.last));
    // Likewise behind a GSSENCRequest, which is always answered N.
    const auto gss = drive(tls_only, {cat(gssenc_bytes, ssl_request_bytes)});
    CHECK(gss.actions == std::vector<std::string>{"answer N", "tls after S"});
}

TEST_CASE("startup: an SSLRequest inside TLS is a protocol violation") {
    const auto ex = drive(tls_only, {ssl_request_bytes, ssl_request_bytes});
    CHECK(ex.actions == std::vector<std::string>{"tls after S", "disconnect 08P01 | SSLRequest inside TLS | "});
    const auto direct = drive(tls_only, {client_hello, ssl_request_bytes});
    CHECK(direct.actions == std::vector<std::string>{"tls direct with 11 bytes",
                                                     "disconnect 08P01 | SSLRequest inside TLS | "});
}

TEST_CASE("startup: direct TLS (first byte 0x16)") {
    // Served with ALPN "postgresql": every byte read so far goes to the handshake.
    const auto ok = drive(tls_only, {client_hello, psql_startup});
    CHECK(ok.actions == std::vector<std::string>{
                            "tls direct with 11 bytes",
                            "proceed user=alice target=appdb database=app tls reason=<none> application_name=psql"});
    // Without ALPN: a TLS connection meant for another protocol is never taken for a PostgreSQL one.
    const auto no_alpn = drive(tls_only, {client_hello, psql_startup}, "");
    CHECK(no_alpn.actions == std::vector<std::string>{
                                 "tls direct with 11 bytes",
                                 "disconnect 08P01 | direct TLS connection without ALPN protocol \"postgresql\" | "
                                 "direct TLS without ALPN \"postgresql\"; closing"});
    const auto other_alpn = drive(tls_only, {client_hello}, "http/1.1");
    CHECK(last_as<Disconnect>(other_alpn).sqlstate == "08P01");
    // Without [tls]: closed without a word (the client expects TLS).
    const auto unconfigured = drive(plaintext_ok, {client_hello});
    CHECK(unconfigured.actions ==
          std::vector<std::string>{"disconnect  |  | direct TLS attempted but [tls] is not configured"});
    // ALPN matters only for direct TLS: after an SSLRequest none is expected.
    const auto after_s = drive(tls_only, {ssl_request_bytes, psql_startup}, "");
    CHECK(std::holds_alternative<Proceed>(*after_s.last));
    // 0x16 is a handshake only as the very first byte; later it is a startup length (0x16xxxxxx: too large).
    const auto late = drive(tls_only, {gssenc_bytes, client_hello});
    REQUIRE(late.actions.size() == 2);
    CHECK(late.actions[1].rfind("disconnect 08P01 | invalid startup packet: invalid length of startup packet", 0) == 0);
}

TEST_CASE("startup: next() before tls_started() fails closed") {
    StartupNegotiation neg(tls_only, lookup);
    auto step = neg.next(ssl_request_bytes);
    REQUIRE(std::holds_alternative<StartTls>(step.action));
    CHECK(step.consumed == 8);
    CHECK(describe(neg.next(psql_startup).action) == "disconnect  |  | ");
    CHECK_FALSE(neg.tls());
    StartupNegotiation direct(tls_only, lookup);
    step = direct.next(client_hello);
    REQUIRE(std::holds_alternative<StartTls>(step.action));
    CHECK(step.consumed == client_hello.size());
    CHECK(describe(direct.next({}).action) == "disconnect  |  | ");
}

TEST_CASE("startup: a CancelRequest is forwarded, plaintext or not") {
    const auto plain = drive(tls_only, {cancel_bytes});
    CHECK(plain.actions == std::vector<std::string>{"cancel 4711 deadbeef"});
    const auto over_tls = drive(tls_only, {ssl_request_bytes, cancel_bytes});
    CHECK(over_tls.actions == std::vector<std::string>{"tls after S", "cancel 4711 deadbeef"});
}

TEST_CASE("startup: too many negotiation rounds") {
    // Four requests are answered; the fifth round is refused before anything more is read.
    const auto ex = drive(no_tls, {gssenc_bytes, ssl_request_bytes, gssenc_bytes, ssl_request_bytes, psql_startup});
    CHECK(ex.actions == std::vector<std::string>{"answer N", "answer N", "answer N", "answer N",
                                                 "disconnect 08P01 | too many negotiation requests | "});
    CHECK(ex.left == 0);  // the startup packet was never read
    // Direct TLS counts as a round.
    const auto direct = drive(tls_only, {client_hello, gssenc_bytes, gssenc_bytes, gssenc_bytes, psql_startup});
    CHECK(direct.actions.back() == "disconnect 08P01 | too many negotiation requests | ");
    // Three requests and then the startup packet are fine.
    const auto three = drive(plaintext_ok, {gssenc_bytes, ssl_request_bytes, gssenc_bytes, psql_startup});
    CHECK(std::holds_alternative<Proceed>(*three.last));
}

TEST_CASE("startup: malformed packets end the connection with 08P01 and a log line") {
    struct Case {
        const char* name;
        Bytes input;
        const char* reason;
    };
    const Case cases[] = {
        {"length 7", bytes({0x00, 0x00, 0x00, 0x07, 0x00, 0x03, 0x00, 0x00}),
         "invalid length of startup packet: 7 bytes"},
        {"length 10001", bytes({0x00, 0x00, 0x27, 0x11, 0x00, 0x03, 0x00, 0x00}),
         "invalid length of startup packet: 10001 bytes (limit 10000)"},
        {"protocol 2.0", bytes({0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00}),
         "unsupported frontend protocol 2.0: glassgate speaks 3.0"},
        {"missing terminator", cat(bytes({0x00, 0x00, 0x00, 0x10, 0x00, 0x03, 0x00, 0x00}), "user\0bob"sv),
         "startup packet: value of \"user\" not NUL-terminated"},
        {"no user", cat(bytes({0x00, 0x00, 0x00, 0x17, 0x00, 0x03, 0x00, 0x00}), "database\0shop\0\0"sv),
         "no PostgreSQL user name specified in startup packet"},
        {"cancel of length 12", bytes({0x00, 0x00, 0x00, 0x0c, 0x04, 0xd2, 0x16, 0x2e, 0x00, 0x00, 0x12, 0x67}),
         "CancelRequest of invalid length 12"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const auto ex = drive(tls_only, {c.input});
        const auto& d = last_as<Disconnect>(ex);
        CHECK(d.sqlstate == "08P01");
        CHECK(d.message == std::string("invalid startup packet: ") + c.reason);
        CHECK(d.log_reason == std::string("bad startup packet: ") + c.reason);
    }
}

TEST_CASE("startup: a packet split at every offset gives the same outcome; a cut one waits") {
    const Bytes stream = cat(gssenc_bytes, psql_startup);
    const auto whole = drive(plaintext_ok, {stream});
    REQUIRE(whole.last.has_value());
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        CAPTURE(split);
        const Bytes head(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(split));
        const Bytes tail(stream.begin() + static_cast<std::ptrdiff_t>(split), stream.end());
        const auto ex = drive(plaintext_ok, {head, tail});
        CHECK(ex.actions == whole.actions);
        const auto cut = drive(plaintext_ok, {head});
        if (split < stream.size()) CHECK_FALSE(cut.last.has_value());
    }
    // ReadMore asks for the whole packet once its length is in.
    StartupNegotiation neg(plaintext_ok, lookup);
    CHECK(describe(neg.next({}).action) == "read 1");
    CHECK(describe(neg.next(ByteView(psql_startup).first(2)).action) == "read 8");
    CHECK(describe(neg.next(ByteView(psql_startup).first(4)).action) == "read 57");
}

TEST_CASE("startup: routing by dbname = target or target/database") {
    struct Case {
        const char* name;
        std::vector<std::pair<std::string, std::string>> params;
        const char* outcome;
    };
    const Case cases[] = {
        {"target", {{"user", "alice"}, {"database", "shop"}},
         "proceed user=alice target=shop database=shop plain reason=<none>"},
        {"no database: the user name, as libpq does", {{"user", "shop"}},
         "proceed user=shop target=shop database=shop plain reason=<none>"},
        {"another database of the target", {{"user", "alice"}, {"database", "appdb/reporting"}},
         "proceed user=alice target=appdb database=reporting plain reason=<none>"},
        {"the target's own database, spelled out", {{"user", "alice"}, {"database", "appdb/app"}},
         "proceed user=alice target=appdb database=app plain reason=<none>"},
        {"a database the target does not list", {{"user", "alice"}, {"database", "appdb/template1"}},
         "deny 3D000 | target \"appdb\" does not allow database \"template1\" | database not allowed by target | "
         "user=alice target=appdb"},
        {"an empty database after the slash", {{"user", "alice"}, {"database", "appdb/"}},
         "deny 3D000 | target \"appdb\" does not allow database \"\" | database not allowed by target | user=alice "
         "target=appdb"},
        {"unknown target", {{"user", "alice"}, {"database", "nodb"}},
         "deny 3D000 | no PostgreSQL target \"nodb\" on this proxy | unknown target | user=alice target=nodb"},
        {"unknown target with a database", {{"user", "alice"}, {"database", "nodb/app"}},
         "deny 3D000 | no PostgreSQL target \"nodb\" on this proxy | unknown target | user=alice target=nodb"},
        {"replication, whatever its value", {{"user", "alice"}, {"database", "appdb"}, {"replication", "false"}},
         "deny 28000 | replication connections are not allowed through glassgate | replication connection refused | "
         "user=alice target="},
        // Plaintext and replication are refused before the target is looked at.
        {"replication to an unknown target", {{"user", "alice"}, {"database", "nodb"}, {"replication", "database"}},
         "deny 28000 | replication connections are not allowed through glassgate | replication connection refused | "
         "user=alice target="},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const auto ex = drive(plaintext_ok, {startup_packet(c.params)});
        REQUIRE(ex.last.has_value());
        CHECK(describe(*ex.last) == c.outcome);
    }
    // Without a lookup there are no targets.
    StartupNegotiation none(plaintext_ok, nullptr);
    CHECK(describe(none.next(psql_startup).action).rfind("deny 3D000 | no PostgreSQL target \"appdb\"", 0) == 0);
}

TEST_CASE("startup: which parameters are forwarded, and glassgate's own settings taken out of options") {
    struct Case {
        const char* name;
        std::vector<std::pair<std::string, std::string>> params;
        const char* outcome;
    };
    const Case cases[] = {
        {"user and database are glassgate's, the rest goes on in order",
         {{"client_encoding", "UTF8"},
          {"user", "alice"},
          {"DateStyle", "ISO"},
          {"database", "appdb"},
          {"application_name", "x"}},
         "proceed user=alice target=appdb database=app plain reason=<none> client_encoding=UTF8 DateStyle=ISO "
         "application_name=x"},
        {"options with the reason only: nothing left to forward",
         {{"user", "alice"}, {"options", "-c glassgate.reason=INC-1"}, {"database", "appdb"}},
         "proceed user=alice target=appdb database=app plain reason=INC-1"},
        {"options are forwarded last, without glassgate.*",
         {{"user", "alice"}, {"options", "-c statement_timeout=5s -c glassgate.reason=INC-1"}, {"database", "appdb"},
          {"application_name", "psql"}},
         "proceed user=alice target=appdb database=app plain reason=INC-1 application_name=psql "
         "options=-c statement_timeout=5s"},
        {"empty options are not forwarded", {{"user", "alice"}, {"options", ""}, {"database", "appdb"}},
         "proceed user=alice target=appdb database=app plain reason=<none>"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const auto ex = drive(plaintext_ok, {startup_packet(c.params)});
        REQUIRE(ex.last.has_value());
        CHECK(describe(*ex.last) == c.outcome);
    }
    for (const char* p : {"user", "database", "replication", "options"}) CHECK(consumed_param(p));
    for (const char* p : {"application_name", "client_encoding", "Options", ""}) CHECK_FALSE(consumed_param(p));
}

TEST_CASE("options: split as the server splits them (pg_split_opts)") {
    struct Case {
        std::string_view in;
        std::vector<std::string> out;
    };
    const Case cases[] = {
        {"", {}},
        {"   ", {}},
        {"-c a=1", {"-c", "a=1"}},
        {" \t-c\na=1\r ", {"-c", "a=1"}},
        {"-c a=x\\ y", {"-c", "a=x y"}},        // a backslash escapes a space
        {"a\\\\b", {"a\\b"}},                    // and a backslash
        {"a\\bc", {"abc"}},                      // and any other character
        {"a\\", {"a\\"}},                        // a final backslash stays
        {"\\ ", {" "}},                          // an argument of one escaped space
        {"a\\\tb c", {"a\tb", "c"}},
        {"a\vb\fc", {"a", "b", "c"}},          // vertical tab and form feed separate too (isspace)
        {"a\\\nb", {"a\nb"}},                   // an escaped newline is part of the argument
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CHECK(split_options(c.in) == c.out);
    }
    CHECK(join_options({}) == "");
    CHECK(join_options({"-c", "a=x y", "b\\c", "t\tu"}) == "-c a=x\\ y b\\\\c t\\\tu");
    // Newlines and the other separators are escaped too: an argument the client sent with an escaped
    // newline stays one argument for the server.
    CHECK(join_options({"a\nb", "c\rd", "e\vf\fg"}) == "a\\\nb c\\\rd e\\\vf\\\fg");
    // join is split's inverse for what it escapes.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"-c", "a=x y"}, {"\\", " ", "a\\ b\t"}, {"--x=1", "-cy=2"},
          {"\nwork_mem=1", "-c", "a\r\n", "\v\f"}}) {
        CHECK(split_options(join_options(args)) == args);
    }
}

TEST_CASE("options: glassgate.* settings in every spelling the server accepts") {
    struct Case {
        std::string_view in;
        std::optional<std::string> reason;
        std::optional<std::string> forward;
    };
    const Case cases[] = {
        {"-c glassgate.reason=INC-1", "INC-1", std::nullopt},
        {"-cglassgate.reason=INC-1", "INC-1", std::nullopt},
        {"--glassgate.reason=INC-1", "INC-1", std::nullopt},
        {"-c glassgate.reason=CHG-1\\ failover -c statement_timeout=4321", "CHG-1 failover",
         "-c statement_timeout=4321"},
        {"-c glassgate.reason=", "", std::nullopt},
        {"-c glassgate.reason", std::nullopt, std::nullopt},             // no value: taken out, no reason
        {"-c glassgate.other=1 -c a=1", std::nullopt, "-c a=1"},        // any glassgate.* is ours
        {"-c glassgate.reasonable=1", std::nullopt, std::nullopt},
        {"-c glassgate.reason=a -c glassgate.reason=b", "b", std::nullopt},  // the last one counts
        {"-c a=1 -c", std::nullopt, "-c a=1 -c"},                       // a trailing -c is left alone
        {"-c", std::nullopt, "-c"},
        {"-c -c glassgate.reason=x", "x", "-c"},  // each "-c" is read with the argument after it
        // Taking "-cglassgate.x" out would pair the first "-c" with "glassgate.y=1": taken out too.
        {"-c -cglassgate.x glassgate.y=1 -c a=1", std::nullopt, "-c a=1"},
        {"-c -cglassgate.x glassgate.reason=z", std::nullopt, std::nullopt},
        {"-c x=a\\ b", std::nullopt, "-c x=a\\ b"},                     // the rest re-joined, escaped again
        {"glassgate.reason=x", std::nullopt, "glassgate.reason=x"},     // not a setting: not ours
        {"-c Glassgate.reason=x", std::nullopt, "-c Glassgate.reason=x"},
        {"", std::nullopt, std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        const auto o = take_glassgate_options(c.in);
        CHECK(o.reason == c.reason);
        CHECK(o.forward == c.forward);
    }
}

TEST_CASE("startup: seeded random and mutated input never crashes and always ends or waits") {
    std::mt19937 rng(20261204);
    std::uniform_int_distribution<int> byte(0, 255);
    const Bytes seeds[] = {psql_startup, ssl_request_bytes, gssenc_bytes, cancel_bytes, client_hello,
                           cat(gssenc_bytes, psql_startup)};
    for (int i = 0; i < 3000; ++i) {
        Bytes input = seeds[static_cast<std::size_t>(i) % std::size(seeds)];
        const int mutations = 1 + i % 4;
        for (int m = 0; m < mutations && !input.empty(); ++m) {
            input[static_cast<std::size_t>(byte(rng)) % input.size()] = static_cast<std::byte>(byte(rng));
        }
        if (i % 7 == 0) input.resize(static_cast<std::size_t>(byte(rng)) % (input.size() + 1));
        const StartupFacts facts{.tls_configured = i % 2 == 0, .plaintext_allowed = i % 3 == 0};
        const auto ex = drive(facts, {input});
        CHECK(ex.left <= input.size());
    }
}

TEST_SUITE_END();
