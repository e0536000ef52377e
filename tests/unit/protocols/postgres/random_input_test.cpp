// Seeded random and mutated input into every decoder and view: each must return a value or an
// error, never crash, read out of bounds (run under ASan/UBSan) or report more than it was given.

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/protocols/postgres/scram.hpp"
#include "test_util.hpp"

using namespace gg::pg::test;

TEST_SUITE_BEGIN("postgres");

namespace {

bool within(ByteView inner, ByteView outer) {
    return inner.empty() || (inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size());
}

void feed_everything(ByteView in) {
    if (auto r = decode_startup(in); r.has_value()) {
        if (auto* d = std::get_if<StartupDecoded>(&*r)) CHECK(d->consumed <= in.size());
    }
    if (auto r = decode_message(in); r.has_value()) {
        if (auto* d = std::get_if<MessageDecoded>(&*r)) {
            CHECK(d->consumed <= in.size());
            CHECK(within(d->message.body, in));
        }
    }
    if (auto s = split_messages(in); s.has_value()) {
        CHECK(s->consumed <= in.size());
        for (const auto& m : s->messages) CHECK(within(m.body, in));
    }
    (void)parse_authentication(in);
    (void)parse_error_fields(in);
    (void)parse_parameter_status(in);
    (void)parse_backend_key_data(in);
    (void)parse_ready_for_query(in);
    (void)parse_password_message(in);
    (void)parse_query(in);
    (void)parse_parse(in);
    if (auto b = parse_bind(in); b.has_value()) {
        for (const auto& p : b->params) {
            if (p) CHECK(within(*p, in));
        }
    }
    (void)parse_execute(in);
    (void)parse_close(in);
    if (auto row = parse_data_row(in); row.has_value()) {
        for (const auto& v : *row) {
            if (v) CHECK(within(*v, in));
        }
    }
    (void)parse_row_description(in);
    (void)parse_command_complete(in);
    (void)base64_decode(as_chars(in));
}

Bytes mutate(Bytes b, std::mt19937& rng) {
    std::uniform_int_distribution<int> op(0, 3);
    std::uniform_int_distribution<int> byte(0, 255);
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
        const std::size_t at = b.empty() ? 0 : rng() % b.size();
        switch (op(rng)) {
            case 0:
                if (!b.empty()) b[at] = static_cast<std::byte>(byte(rng));
                break;
            case 1:
                b.resize(at);
                break;
            case 2:
                b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::byte>(byte(rng)));
                break;
            default:
                if (!b.empty()) b[at] = std::byte{0xff};  // -1 lengths, huge counts
                break;
        }
    }
    return b;
}

}  // namespace

TEST_CASE("random: pure noise") {
    std::mt19937 rng(20261123);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 20000; ++i) {
        Bytes b(rng() % 96);
        for (auto& x : b) x = static_cast<std::byte>(byte(rng));
        feed_everything(b);
    }
}

TEST_CASE("random: mutations of valid messages") {
    const std::vector<Bytes> seeds = {
        startup_message({{"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}}),
        cancel_request(42, 7),
        ssl_request(),
        cat(query("select 1"), bytes({'S', 0, 0, 0, 4}), terminate()),
        cat("\0s1\0"sv, bytes({0, 2, 0, 0, 0, 1, 0, 3, 0, 0, 0, 2}), "42"sv,
            bytes({0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 1})),
        cat(bytes({0, 3, 0, 0, 0, 1}), "1"sv, bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})),
        cat(bytes({0, 1}), "id\0"sv, bytes({0, 0, 0x40, 1, 0, 1, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0})),
        cat("s1\0select $1\0"sv, bytes({0, 1, 0, 0, 0, 0x17})),
        cat(bytes({0, 0, 0, 10}), "SCRAM-SHA-256\0\0"sv),
        cat(bytes({0, 0, 0, 5, 1, 2, 3, 4})),
        cat("SFATAL\0VFATAL\0C28000\0Mno\0"sv, "\0"sv),
        error_response({.sqlstate = "08P01", .message = "m", .detail = "d", .hint = "h"}),
    };
    std::mt19937 rng(7);
    for (int i = 0; i < 30000; ++i) {
        const auto& seed = seeds[rng() % seeds.size()];
        const Bytes m = mutate(seed, rng);
        feed_everything(m);
        // Also the body of a message-shaped seed, for the views.
        if (m.size() > 5) feed_everything(ByteView(m).subspan(5));
    }
}

TEST_CASE("random: SCRAM server messages") {
    const std::string nonce = "abcdefghijklmnopqrstuvwx";
    const std::vector<std::string> tokens = {"r=", "s=", "i=", "e=", "v=", "m=", ",", "=", nonce, nonce + "srv",
                                             "W22ZaJ0SNY7soEsUEjb6gQ==", "AAAA", "1000", "0", "-1", "99999999999",
                                             "x", "\x01", "\xff", ""};
    std::mt19937 rng(99);
    for (int i = 0; i < 3000; ++i) {
        std::string first;
        std::string final_msg;
        const int n = static_cast<int>(rng() % 8);
        for (int k = 0; k < n; ++k) first += tokens[rng() % tokens.size()];
        for (int k = 0; k < 3; ++k) final_msg += tokens[rng() % tokens.size()];
        ScramClient c("pw", nonce);
        (void)c.client_first();
        auto f = c.on_server_first(first);
        auto fin = c.on_server_final(final_msg);
        if (!f) {
            CHECK(fin.has_error());
        }
    }
}

TEST_SUITE_END();
