// Break-glass decisions: rule matching, mode, account state machine and its JSON, passphrase format,
// Shamir sharing over GF(2^8) with byte-level vectors, failure backoff. Time and randomness are parameters.

#include <doctest/doctest.h>

#include <random>

#include <boost/json/serialize.hpp>

#include "glassgate/session/breakglass.hpp"

using namespace gg;
using namespace gg::session;
using namespace gg::session::breakglass;
using namespace std::chrono_literals;

namespace {

TimePoint at(std::int64_t s) { return TimePoint(std::chrono::seconds(s)); }

Bytes bytes(std::initializer_list<int> v) {
    Bytes b;
    for (int x : v) b.push_back(static_cast<std::byte>(x));
    return b;
}

std::vector<RuleSpec> rules() {
    return {
        {"outage-db", Trigger::idp_unreachable, {"bg-oncall-1", "bg-oncall-2"}, {"orders-db", "web-*"}},
        {"declared-all", Trigger::declared, {"bg-oncall-2", "bg-dba"}, {"*"}},
    };
}

}  // namespace

TEST_SUITE_BEGIN("breakglass");

TEST_CASE("match_rule: trigger vs mode, accounts, targets, first match wins") {
    const auto r = rules();
    Mode normal;
    Mode outage{.idp_unreachable = true};
    Mode declared = make_mode(false, Declaration{"INC-1", "cli:root", at(100), std::nullopt}, at(200));
    REQUIRE(declared.emergency());

    CHECK(match_rule(r, normal, "bg-oncall-1", "orders-db").why == NoMatch::not_emergency);
    CHECK(match_rule(r, outage, "alice", "orders-db").why == NoMatch::unknown_account);
    CHECK(match_rule(r, normal, "alice", "orders-db").why == NoMatch::unknown_account);

    auto m = match_rule(r, outage, "bg-oncall-1", "orders-db");
    REQUIRE(m.rule.has_value());
    CHECK(*m.rule == 0);
    CHECK(match_rule(r, outage, "bg-oncall-1", "web-7").rule == std::optional<std::size_t>(0));
    CHECK(match_rule(r, outage, "bg-oncall-1", "billing-db").why == NoMatch::target_not_allowed);
    // bg-dba is only in the declared rule: an IdP outage alone does not arm it.
    CHECK(match_rule(r, outage, "bg-dba", "billing-db").why == NoMatch::not_armed);
    CHECK(match_rule(r, declared, "bg-dba", "billing-db").rule == std::optional<std::size_t>(1));
    // A declaration does not arm idp_unreachable rules.
    CHECK(match_rule(r, declared, "bg-oncall-1", "orders-db").why == NoMatch::not_armed);
    // Both causes: the first matching rule in file order.
    Mode both = make_mode(true, Declaration{"INC-1", "cli:root", at(100), std::nullopt}, at(200));
    CHECK(match_rule(r, both, "bg-oncall-2", "orders-db").rule == std::optional<std::size_t>(0));
    CHECK(match_rule(r, both, "bg-oncall-2", "billing-db").rule == std::optional<std::size_t>(1));

    CHECK(is_breakglass_account(r, "bg-dba"));
    CHECK_FALSE(is_breakglass_account(r, "alice"));
}

TEST_CASE("mode: declarations expire; JSON round trip; reason text") {
    Declaration d{"INC-42 db down", "cli:root", at(1000), at(1000 + 3600)};
    auto back = declaration_from_json(boost::json::serialize(to_json(d)));
    REQUIRE(back.has_value());
    CHECK(back->reason == d.reason);
    CHECK(back->declared_by == d.declared_by);
    CHECK(back->declared_at == d.declared_at);
    CHECK(back->until == d.until);
    CHECK(make_mode(false, d, at(1500)).emergency());
    CHECK_FALSE(make_mode(false, d, at(1000 + 3600)).emergency());
    CHECK(make_mode(false, std::nullopt, at(0)).name() == "normal");
    CHECK(make_mode(true, std::nullopt, at(0)).reason() == "identity provider unreachable");
    CHECK(make_mode(false, d, at(1500)).reason().find("INC-42 db down") != std::string::npos);
    CHECK_FALSE(declaration_from_json("{}").has_value());
    CHECK_FALSE(declaration_from_json("not json").has_value());
}

TEST_CASE("stored times outside what the clock can hold, or of the wrong type, make a record unreadable") {
    // 2^60 us is far beyond year 2262, the end of system_clock's nanosecond range.
    CHECK_FALSE(declaration_from_json(R"({"reason":"r","declared_at_us":1152921504606846976})").has_value());
    CHECK_FALSE(declaration_from_json(R"({"reason":"r","declared_at_us":-1152921504606846976})").has_value());
    // A damaged end time must not read as "until the emergency is ended".
    CHECK_FALSE(declaration_from_json(R"({"reason":"r","declared_at_us":1,"until_us":1152921504606846976})").has_value());
    CHECK_FALSE(declaration_from_json(R"({"reason":"r","declared_at_us":1,"until_us":"tomorrow"})").has_value());
    CHECK(declaration_from_json(R"({"reason":"r","declared_at_us":1,"until_us":null})").has_value());
    const std::string head = R"({"name":"x","state":"used","generation":1,"hash":"h",)";
    CHECK_FALSE(account_from_json(head + R"("staged_at_us":17648064000000010})").has_value());
    CHECK_FALSE(account_from_json(head + R"("staged_at_us":1,"last_used_us":9223372036854775807})").has_value());
    CHECK_FALSE(account_from_json(head + R"("staged_at_us":1,"ended_at_us":-9223372036854775807})").has_value());
    auto ok = account_from_json(head + R"("staged_at_us":1,"last_used_us":2,"ended_at_us":3})");
    REQUIRE(ok.has_value());
    CHECK(ok->ended_at == TimePoint(std::chrono::microseconds(3)));
    CHECK_FALSE(serialize(*ok).empty());
}

TEST_CASE("clean_reason") {
    CHECK(clean_reason("  INC-1 ") == std::optional<std::string>("INC-1"));
    CHECK_FALSE(clean_reason("").has_value());
    CHECK_FALSE(clean_reason("   ").has_value());
    CHECK_FALSE(clean_reason("a\nb").has_value());
    CHECK_FALSE(clean_reason(std::string(201, 'x')).has_value());
}

TEST_CASE("account state machine: stage, consume once, finish, re-stage revokes") {
    auto a = stage(std::nullopt, "bg-oncall-1", "$argon2id$v=19$...", "cli:root", at(10), 0, 0);
    CHECK(a.state == AccountState::staged);
    CHECK(a.generation == 1);
    auto in_use = consume(a, "S1", "orders-db", "INC-1", "127.0.0.1:5000", at(20));
    REQUIRE(in_use.has_value());
    CHECK(in_use->state == AccountState::in_use);
    CHECK(in_use->last_used == at(20));
    CHECK(in_use->history == std::vector<std::string>{"S1"});
    // The consumed credential cannot be consumed again.
    CHECK_FALSE(consume(*in_use, "S2", "orders-db", "INC-1", "x", at(21)).has_value());
    // Only the consuming session finishes it.
    CHECK_FALSE(finish(*in_use, "S2", at(30)).has_value());
    auto used = finish(*in_use, "S1", at(30));
    REQUIRE(used.has_value());
    CHECK(used->state == AccountState::used);
    CHECK_FALSE(consume(*used, "S3", "orders-db", "INC-1", "x", at(31)).has_value());
    CHECK_FALSE(revoke(*used, at(31)).has_value());
    auto again = stage(used, "bg-oncall-1", "$argon2id$new", "cli:root", at(40), 3, 2);
    CHECK(again.generation == 2);
    CHECK(again.state == AccountState::staged);
    CHECK(again.history == std::vector<std::string>{"S1"});
    CHECK(again.last_used == at(20));
    CHECK(again.shares == 3);
    auto rev = revoke(again, at(50));
    REQUIRE(rev.has_value());
    CHECK(rev->state == AccountState::revoked);
}

TEST_CASE("account JSON round trip and malformed records") {
    auto a = stage(std::nullopt, "bg-1", "$argon2id$v=19$m=65536,t=2,p=1$abc$def", "cli:root", at(10), 5, 3);
    a = *consume(a, "S1", "t", "INC-9", "1.2.3.4:5", at(20));
    const auto text = serialize(a);
    auto b = account_from_json(text);
    REQUIRE(b.has_value());
    CHECK(b->name == a.name);
    CHECK(b->state == AccountState::in_use);
    CHECK(b->hash == a.hash);
    CHECK(b->generation == 1);
    CHECK(b->staged_at == at(10));
    CHECK(b->last_used == at(20));
    CHECK(b->session == "S1");
    CHECK(b->reason == "INC-9");
    CHECK(b->shares == 5);
    CHECK(b->threshold == 3);
    CHECK(b->history == a.history);
    CHECK(serialize(*b) == text);
    // Listings never carry the hash.
    CHECK_FALSE(to_json(a, false).contains("hash"));
    CHECK_FALSE(account_from_json("{}").has_value());
    CHECK_FALSE(account_from_json(R"({"name":"x","state":"bogus","generation":1,"staged_at_us":1,"hash":"h"})").has_value());
    CHECK_FALSE(account_from_json("[1]").has_value());
    CHECK(account_state_from_string("in-use") == AccountState::in_use);
}

TEST_CASE("passphrase: RFC 4648 base32 vector, groups, normalisation") {
    // "12345678901234567890" is the RFC 4226/6238 test secret; its base32 is well known.
    const std::string ascii = "12345678901234567890";
    const auto p = format_passphrase(as_bytes(ascii));
    CHECK(p == "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ");
    CHECK(format_passphrase(Bytes(20)) == "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA");
    CHECK(format_passphrase(Bytes(20, std::byte{0xff})) == "7777-7777-7777-7777-7777-7777-7777-7777");
    CHECK(normalize_passphrase("gezdgnbvgy3tqojq gezdgnbvgy3tqojq") == std::optional<std::string>(p));
    CHECK(normalize_passphrase(p) == std::optional<std::string>(p));
    auto b = passphrase_to_bytes(p);
    REQUIRE(b.has_value());
    CHECK(as_chars(*b) == ascii);
    CHECK_FALSE(normalize_passphrase("GEZD-GNBV").has_value());          // too short
    CHECK_FALSE(normalize_passphrase("GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJ1").has_value());  // '1' not base32
    CHECK_FALSE(normalize_passphrase("").has_value());
    CHECK_FALSE(normalize_passphrase("sso").has_value());
    // 32 characters of 5 bits: 160 bits, above the 128-bit floor.
    CHECK(passphrase_bytes * 8 >= 128);
}

TEST_CASE("GF(2^8): FIPS-197 multiplication vectors and inverses") {
    CHECK(gf_mul(0x57, 0x83) == 0xc1);  // FIPS-197 section 4.2
    CHECK(gf_mul(0x57, 0x13) == 0xfe);  // FIPS-197 section 4.2.1
    CHECK(gf_mul(0x53, 0xca) == 0x01);  // inverse pair from FIPS-197 section 5.1.1
    CHECK(gf_inv(0x53) == 0xca);
    CHECK(gf_inv(0) == 0);
    CHECK(gf_mul(0, 0x99) == 0);
    for (int a = 1; a < 256; ++a) {
        CHECK(gf_mul(static_cast<std::uint8_t>(a), gf_inv(static_cast<std::uint8_t>(a))) == 1);
    }
}

TEST_CASE("Shamir split: byte-level vectors with fixed coefficients") {
    // k = 2, f(x) = 0x42 + 0x11 x: f(1) = 0x53, f(2) = 0x42 ^ 0x22 = 0x60, f(3) = 0x42 ^ 0x33 = 0x71.
    auto s2 = split(bytes({0x42}), 3, 2, bytes({0x11}));
    REQUIRE(s2.has_value());
    REQUIRE(s2->size() == 3);
    CHECK((*s2)[0].x == 1);
    CHECK((*s2)[0].y == bytes({0x53}));
    CHECK((*s2)[1].y == bytes({0x60}));
    CHECK((*s2)[2].y == bytes({0x71}));
    // k = 3, f(x) = 0x42 + x + 2 x^2: f(1) = 0x41, f(2) = 0x42^2^8 = 0x48, f(3) = 0x42^3^(2*5) = 0x4b.
    auto s3 = split(bytes({0x42}), 3, 3, bytes({0x01, 0x02}));
    REQUIRE(s3.has_value());
    CHECK((*s3)[0].y == bytes({0x41}));
    CHECK((*s3)[1].y == bytes({0x48}));
    CHECK((*s3)[2].y == bytes({0x4b}));
    CHECK(combine(*s3) == std::optional<Bytes>(bytes({0x42})));
    // Bad arguments.
    CHECK_FALSE(split(bytes({1}), 3, 1, {}).has_value());
    CHECK_FALSE(split(bytes({1}), 2, 3, bytes({1, 2})).has_value());
    CHECK_FALSE(split(bytes({1}), 256, 2, bytes({1})).has_value());
    CHECK_FALSE(split(bytes({1, 2}), 3, 2, bytes({1})).has_value());  // wrong amount of randomness
}

TEST_CASE("Shamir: every k-subset recovers a 20-byte secret; k-1 shares do not") {
    std::mt19937 rng(1234);  // test determinism only; production randomness comes from OpenSSL
    Bytes secret(20), random(20 * 2);
    for (auto& b : secret) b = static_cast<std::byte>(rng());
    for (auto& b : random) b = static_cast<std::byte>(rng());
    auto shares = split(secret, 5, 3, random);
    REQUIRE(shares.has_value());
    int subsets = 0;
    for (int a = 0; a < 5; ++a) {
        for (int b = a + 1; b < 5; ++b) {
            for (int c = b + 1; c < 5; ++c) {
                std::vector<Share> pick = {(*shares)[c], (*shares)[a], (*shares)[b]};
                CHECK(combine(pick) == std::optional<Bytes>(secret));
                ++subsets;
            }
            CHECK_FALSE(combine({(*shares)[a], (*shares)[b]}).has_value());  // below threshold
        }
    }
    CHECK(subsets == 10);
    // Duplicate x, mixed thresholds, mixed lengths are refused.
    CHECK_FALSE(combine({(*shares)[0], (*shares)[0], (*shares)[1]}).has_value());
    auto other = *split(secret, 3, 2, Bytes(20));
    CHECK_FALSE(combine({(*shares)[0], (*shares)[1], other[2]}).has_value());
}

TEST_CASE("share text: format, checksum catches a typo, round trip") {
    Share s{2, 1, bytes({0xde, 0xad, 0xbe, 0xef})};
    const auto text = format_share(s);
    CHECK(text.rfind("gg1-2-1-deadbeef-", 0) == 0);
    CHECK(text.size() == std::string("gg1-2-1-deadbeef-").size() + 4);
    auto back = parse_share(text + "\n");
    REQUIRE(back.has_value());
    CHECK(back->threshold == 2);
    CHECK(back->x == 1);
    CHECK(back->y == s.y);
    auto typo = text;
    typo[9] = typo[9] == 'e' ? 'f' : 'e';
    CHECK_FALSE(parse_share(typo).has_value());
    CHECK_FALSE(parse_share("gg1-2-1-zz-0000").has_value());
    CHECK_FALSE(parse_share("").has_value());
    CHECK_FALSE(parse_share("gg2-2-1-de-0000").has_value());
}

TEST_CASE("failure limiter: free failures, exponential backoff, cap, forget, success resets") {
    FailureLimiter lim;
    const std::string key = "account:bg-1";
    for (int i = 1; i <= 3; ++i) {
        CHECK_FALSE(lim.blocked_until(key, at(100)).has_value());
        CHECK(lim.failure(key, at(100)) == i);
    }
    CHECK_FALSE(lim.blocked_until(key, at(100)).has_value());
    CHECK(lim.failure(key, at(100)) == 4);  // 4th: 2 s
    CHECK(lim.blocked_until(key, at(101)) == std::optional<TimePoint>(at(102)));
    CHECK_FALSE(lim.blocked_until(key, at(102)).has_value());
    CHECK(lim.failure(key, at(102)) == 5);  // 5th: 4 s (alert_every = 5)
    CHECK(lim.blocked_until(key, at(103)) == std::optional<TimePoint>(at(106)));
    for (int i = 0; i < 20; ++i) (void)lim.failure(key, at(110));
    CHECK(lim.blocked_until(key, at(110)) == std::optional<TimePoint>(at(410)));  // capped at 300 s
    // Quiet for forget_after: counting starts over.
    CHECK(lim.failure(key, at(110 + 900)) == 1);
    lim.success(key);
    CHECK(lim.failure(key, at(2000)) == 1);
    CHECK_FALSE(lim.blocked_until("source:1.2.3.4", at(0)).has_value());
}

TEST_SUITE_END();
