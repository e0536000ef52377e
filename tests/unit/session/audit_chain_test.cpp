#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "glassgate/session/audit_chain.hpp"

using namespace gg;
using namespace gg::session;

namespace {

std::vector<std::string> make_chain(ByteView key, int n) {
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
        auto l = make_audit_line(ev, static_cast<std::uint64_t>(i), prev, key);
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

TEST_SUITE_END();
