#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "glassgate/session/audit_chain.hpp"

using namespace gg;
using namespace gg::session;

namespace {

std::vector<std::string> make_chain(ByteView key, int n, ByteView seed = {}) {
    std::vector<std::string> lines;
    crypto::Digest prev{};
    for (int i = 1; i <= n; ++i) {
        AuditEvent ev;
        ev.time = TimePoint(std::chrono::seconds(1'700'000'000 + i));
        ev.type = "session.start";
        ev.session_id = "S" + std::to_string(i);
        ev.identity = "alice";
        ev.target = "appdb";
        ev.outcome = "ok";
        ev.details["n"] = i;
        auto l = make_audit_line(ev, static_cast<std::uint64_t>(i), prev, key, seed);
        prev = l.hash;
        lines.push_back(l.text);
    }
    return lines;
}

bool verify(ByteView key, const std::vector<std::string>& lines, std::string* problem = nullptr) {
    AuditVerifier v(key);
    for (const auto& l : lines) v.feed(l);
    if (problem) *problem = v.problem();
    return v.ok();
}

const Bytes the_seed(32, std::byte{0x11});
const Bytes other_seed(32, std::byte{0x22});

/// Public-key verification without the audit key; `problem` gets the first problem.
bool verify_signed(ByteView public_key, const std::vector<std::string>& lines, std::string* problem = nullptr,
                   std::uint64_t* signed_entries = nullptr) {
    AuditVerifier v({}, public_key);
    for (const auto& l : lines) v.feed(l);
    if (problem) *problem = v.problem();
    if (signed_entries) *signed_entries = v.signed_entries();
    CHECK_FALSE(v.mac_checked());
    return v.ok();
}

}  // namespace

TEST_SUITE_BEGIN("audit");

TEST_CASE("audit lines are JSON objects carrying the event and the chain") {
    const auto key = to_bytes("k");
    auto lines = make_chain(key, 3);
    auto v = boost::json::parse(lines[1]);
    auto& o = v.as_object();
    CHECK(o.at("event").as_string() == "session.start");
    CHECK(o.at("session").as_string() == "S2");
    CHECK(o.at("seq").as_int64() == 2);
    CHECK(o.at("time").as_string() == "2023-11-14T22:13:22.000000Z");
    CHECK(o.at("hash").as_string().size() == 64);
    CHECK(o.at("mac").as_string().size() == 64);
    CHECK(o.at("prev").as_string() == boost::json::parse(lines[0]).as_object().at("hash").as_string());
    CHECK_FALSE(o.contains("reason"));  // empty fields are omitted
    CHECK(verify(key, lines));
}

TEST_CASE("any edit, deletion, reordering or foreign key is detected") {
    const auto key = to_bytes("k");
    auto lines = make_chain(key, 5);
    std::string problem;

    auto edited = lines;
    edited[2].replace(edited[2].find("alice"), 5, "mallo");
    CHECK_FALSE(verify(key, edited, &problem));
    CHECK(problem.find("entry 3") != std::string::npos);
    CHECK(problem.find("edited") != std::string::npos);

    auto deleted = lines;
    deleted.erase(deleted.begin() + 1);
    CHECK_FALSE(verify(key, deleted, &problem));
    CHECK(problem.find("entry 2") != std::string::npos);

    auto swapped = lines;
    std::swap(swapped[1], swapped[2]);
    CHECK_FALSE(verify(key, swapped, &problem));

    CHECK_FALSE(verify(to_bytes("other key"), lines, &problem));
    CHECK(problem.find("MAC") != std::string::npos);

    auto truncated_line = lines;
    truncated_line[4].resize(truncated_line[4].size() - 3);
    CHECK_FALSE(verify(key, truncated_line, &problem));
    CHECK(problem.find("malformed") != std::string::npos);

    CHECK_FALSE(verify(key, {"not json at all"}));
    CHECK_FALSE(verify(key, {""}));
}

TEST_CASE("a chain rebuilt without the key fails the MAC check") {
    // An attacker who edits an entry and recomputes every hash still cannot produce the MACs.
    const auto key = to_bytes("real key");
    auto forged = make_chain(to_bytes("attacker key"), 3);
    std::string problem;
    CHECK_FALSE(verify(key, forged, &problem));
    CHECK(problem.find("entry 1") != std::string::npos);
}

TEST_CASE("strings with quotes, newlines and unicode survive") {
    const auto key = to_bytes("k");
    AuditEvent ev;
    ev.type = "auth.denied";
    ev.reason = "bad \"token\"\n\xC3\xA9";
    auto l = make_audit_line(ev, 1, {}, key);
    CHECK(l.text.find('\n') == std::string::npos);
    CHECK(verify(key, {l.text}));
    CHECK(boost::json::parse(l.text).as_object().at("reason").as_string() == "bad \"token\"\n\xC3\xA9");
}

TEST_CASE("bytes that are not UTF-8 (a client's database name, a login) are written as U+FFFD: the line verifies") {
    const auto key = to_bytes("k");
    AuditEvent ev;
    ev.type = "auth.denied";
    ev.target = "app\xff" "db";
    ev.identity = "\xC3";                    // a cut two-byte sequence
    ev.details["database"] = "\xED\xA0\x80";  // an encoded surrogate
    ev.details["k\xfe"] = boost::json::array{"\x80ok"};
    auto l = make_audit_line(ev, 1, {}, key, the_seed);
    std::string problem;
    CHECK_MESSAGE(verify(key, {l.text}, &problem), problem);
    const auto o = boost::json::parse(l.text).as_object();
    CHECK(o.at("target").as_string() == "app\xEF\xBF\xBD" "db");
    CHECK(o.at("identity").as_string() == "\xEF\xBF\xBD");
    CHECK(o.at("details").as_object().at("database").as_string() == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(o.at("details").as_object().at("k\xEF\xBF\xBD").as_array().at(0).as_string() == "\xEF\xBF\xBD" "ok");
    // Well-formed text is written as it was.
    ev.target = "caf\xC3\xA9";
    CHECK(boost::json::parse(make_audit_line(ev, 1, {}, key).text).as_object().at("target").as_string() == "caf\xC3\xA9");
}

TEST_CASE("signed lines: a trailing fixed-length sig member over the hash") {
    const auto key = to_bytes("k");
    const auto lines = make_chain(key, 3, the_seed);
    const auto o = boost::json::parse(lines[1]).as_object();
    REQUIRE(o.contains("sig"));
    CHECK(o.at("sig").as_string().size() == 128);
    const auto hash = from_hex(std::string(o.at("hash").as_string())).value();
    const auto mac = from_hex(std::string(o.at("mac").as_string())).value();
    Bytes msg = to_bytes(std::string_view("glassgate-audit-v1 signature\0", 29));
    msg.insert(msg.end(), hash.begin(), hash.end());
    msg.insert(msg.end(), mac.begin(), mac.end());
    CHECK(crypto::ed25519_verify(crypto::ed25519_public_from_seed(the_seed), msg,
                                 from_hex(std::string(o.at("sig").as_string())).value()));
    CHECK(lines[1].substr(lines[1].size() - 139, 9) == R"(","sig":")");
    // The unsigned line is the same with the sig member left out: hash and mac do not depend on it.
    const auto plain = make_chain(key, 3);
    CHECK(lines[1].substr(0, lines[1].size() - 139) + "\"}" == plain[1]);
}

TEST_CASE("signed lines verify with the public key alone; old lines with the audit key") {
    const auto key = to_bytes("k");
    const auto pub = crypto::ed25519_public_from_seed(the_seed);
    const auto lines = make_chain(key, 5, the_seed);
    std::string problem;
    std::uint64_t n = 0;
    CHECK(verify_signed(pub, lines, &problem, &n));
    CHECK(n == 5);
    CHECK(verify(key, lines));  // the audit key still verifies signed lines (sig not checked)
    AuditVerifier both(key, pub);
    for (const auto& l : lines) both.feed(l);
    CHECK(both.ok());
    CHECK(both.mac_checked());

    // A chain of old lines and signed lines: fine with the audit key, "not signed" with the public key.
    auto mixed = make_chain(key, 2);
    {
        AuditEvent ev;
        ev.type = "session.end";
        AuditVerifier v(key);
        for (const auto& l : mixed) v.feed(l);
        mixed.push_back(make_audit_line(ev, 3, v.head(), key, the_seed).text);
    }
    CHECK(verify(key, mixed));
    CHECK_FALSE(verify_signed(pub, mixed, &problem));
    CHECK(problem == "entry 1: not signed (no \"sig\" member)");
    CHECK_FALSE(verify_signed(pub, make_chain(key, 3), &problem));
    CHECK(problem.find("not signed") != std::string::npos);
    CHECK_THROWS_AS(AuditVerifier({}, as_bytes("short")), std::invalid_argument);
}

TEST_CASE("on the proxy: the audit key and the proxy's public key; old unsigned lines pass, a bad sig does not") {
    const auto key = to_bytes("k");
    const auto pub = crypto::ed25519_public_from_seed(the_seed);
    auto mixed = make_chain(key, 2);  // written before signing existed
    {
        AuditEvent ev;
        ev.type = "session.end";
        AuditVerifier v(key);
        for (const auto& l : mixed) v.feed(l);
        mixed.push_back(make_audit_line(ev, 3, v.head(), key, the_seed).text);
    }
    AuditVerifier host(key);
    host.also_check_signatures(pub);
    for (const auto& l : mixed) host.feed(l);
    CHECK(host.ok());
    CHECK(host.signed_entries() == 1);
    CHECK(host.mac_checked());
    // The signature of the last line replaced by another valid-looking one (hash and MAC intact): the
    // MAC-only check passes it, the host check does not.
    auto forged = mixed;
    const auto at = forged[2].size() - 2 - 128;
    forged[2][at] = forged[2][at] == '0' ? '1' : '0';
    CHECK(verify(key, forged));
    AuditVerifier host2(key);
    host2.also_check_signatures(pub);
    for (const auto& l : forged) host2.feed(l);
    CHECK_FALSE(host2.ok());
    CHECK(host2.problem().find("entry 3: signature invalid") == 0);
    AuditVerifier host3(key);
    CHECK_THROWS_AS(host3.also_check_signatures(as_bytes("short")), std::invalid_argument);
}

TEST_CASE("signed lines: a flipped byte, a removed line or another key fail") {
    const auto key = to_bytes("k");
    const auto pub = crypto::ed25519_public_from_seed(the_seed);
    const auto lines = make_chain(key, 4, the_seed);
    std::string problem;

    // Every byte of one line, flipped: the chain, the hash or the signature catches it.
    for (char mask : {'\x01', '\x20'}) {
        for (std::size_t i = 0; i < lines[2].size(); ++i) {
            auto f = lines;
            f[2][i] = static_cast<char>(f[2][i] ^ mask);
            INFO("offset ", i, " mask ", int(mask));
            CHECK_FALSE(verify_signed(pub, f, &problem));
            CHECK(problem.rfind("entry 3", 0) == 0);
        }
    }
    auto removed = lines;
    removed.erase(removed.begin() + 1);
    CHECK_FALSE(verify_signed(pub, removed, &problem));
    CHECK(problem.rfind("entry 2", 0) == 0);

    CHECK_FALSE(verify_signed(crypto::ed25519_public_from_seed(other_seed), lines, &problem));
    CHECK(problem.find("signature invalid") != std::string::npos);
    const auto other = make_chain(key, 4, other_seed);
    CHECK_FALSE(verify_signed(pub, other, &problem));
    CHECK(problem.rfind("entry 1: signature invalid", 0) == 0);

    // A forger without the signing key edits entry 1, recomputes its hash (any MAC will do when only the
    // public key is checked) and keeps the genuine signature: it does not fit the new hash.
    AuditEvent ev;
    ev.time = TimePoint(std::chrono::seconds(1'700'000'001));
    ev.type = "session.start";
    ev.session_id = "S1";
    ev.identity = "mallo";
    ev.target = "appdb";
    ev.outcome = "ok";
    ev.details["n"] = 1;
    auto forged = make_audit_line(ev, 1, {}, to_bytes("attacker")).text;
    forged = forged.substr(0, forged.size() - 2) + lines[0].substr(lines[0].size() - 139);
    CHECK_FALSE(verify_signed(pub, {forged}, &problem));
    CHECK(problem.rfind("entry 1: signature invalid", 0) == 0);
}

TEST_SUITE_END();
