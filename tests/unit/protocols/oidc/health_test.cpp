#include <doctest/doctest.h>

#include "glassgate/protocols/oidc/health.hpp"

#include <chrono>
#include <vector>

using namespace gg::oidc;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {

const Clock::time_point t0 = Clock::time_point(std::chrono::seconds(1795428000));

/// Feeds a sequence of probe results ('+' success, '-' failure), one every 5 s, and collects the
/// transitions.
struct Feed {
    HealthMonitor m;
    Clock::time_point now = t0;
    std::vector<Transition> transitions;

    explicit Feed(HealthConfig c) : m(c, t0) {}
    Feed& run(std::string_view seq) {
        for (char c : seq) {
            now += 5s;
            if (auto t = m.on_probe(c == '+', c == '+' ? "discovery 200" : "connect: refused", now)) {
                transitions.push_back(*t);
            }
        }
        return *this;
    }
};

}  // namespace

TEST_SUITE_BEGIN("oidc");

TEST_CASE("health: starts unknown, which is not unreachable") {
    HealthMonitor m({3, 2}, t0);
    CHECK(m.state() == IdpHealth::unknown);
    CHECK(m.since() == t0);
    CHECK(m.consecutive_failures() == 0);
    CHECK(m.last_evidence().empty());
}

TEST_CASE("health: unknown -> healthy on the first success") {
    Feed f({3, 2});
    f.run("+");
    REQUIRE(f.transitions.size() == 1);
    CHECK(f.transitions[0].from == IdpHealth::unknown);
    CHECK(f.transitions[0].to == IdpHealth::healthy);
    CHECK(f.transitions[0].at == t0 + 5s);
    CHECK(f.transitions[0].evidence == "discovery 200");
    CHECK(f.transitions[0].source == EvidenceSource::probe);
    CHECK(f.m.since() == t0 + 5s);
    f.run("+++");
    CHECK(f.transitions.size() == 1);  // reported once
}

TEST_CASE("health: unknown -> degraded on the first failure, unreachable at the threshold") {
    Feed f({3, 2});
    f.run("-");
    REQUIRE(f.transitions.size() == 1);
    CHECK(f.transitions[0].to == IdpHealth::degraded);
    f.run("-");
    CHECK(f.transitions.size() == 1);
    CHECK(f.m.consecutive_failures() == 2);
    f.run("-");
    REQUIRE(f.transitions.size() == 2);
    CHECK(f.transitions[1].from == IdpHealth::degraded);
    CHECK(f.transitions[1].to == IdpHealth::unreachable);
    CHECK(f.transitions[1].evidence == "connect: refused");
    CHECK(f.m.last_evidence() == "connect: refused");
    f.run("-----");
    CHECK(f.transitions.size() == 2);
    CHECK(f.m.consecutive_failures() == 8);
}

TEST_CASE("health: unreachable_after = 1 goes straight to unreachable") {
    Feed f({1, 2});
    f.run("+-");
    REQUIRE(f.transitions.size() == 2);
    CHECK(f.transitions[1].from == IdpHealth::healthy);
    CHECK(f.transitions[1].to == IdpHealth::unreachable);
    Feed g({1, 2});
    g.run("-");
    REQUIRE(g.transitions.size() == 1);
    CHECK(g.transitions[0].from == IdpHealth::unknown);
    CHECK(g.transitions[0].to == IdpHealth::unreachable);
}

TEST_CASE("health: unreachable needs healthy_after successes in a row, then healthy (no stop at degraded)") {
    Feed f({3, 3});
    f.run("---");
    REQUIRE(f.m.state() == IdpHealth::unreachable);
    const auto before = f.transitions.size();
    f.run("++");
    CHECK(f.m.state() == IdpHealth::unreachable);
    CHECK(f.transitions.size() == before);
    f.run("-++");  // the failure resets the success count
    CHECK(f.m.state() == IdpHealth::unreachable);
    f.run("+");
    REQUIRE(f.transitions.size() == before + 1);
    CHECK(f.transitions.back().from == IdpHealth::unreachable);
    CHECK(f.transitions.back().to == IdpHealth::healthy);
}

TEST_CASE("health: degraded -> healthy after healthy_after successes") {
    Feed f({3, 2});
    f.run("+-+");
    CHECK(f.m.state() == IdpHealth::degraded);
    f.run("+");
    CHECK(f.m.state() == IdpHealth::healthy);
    REQUIRE(f.transitions.size() == 3);
    CHECK(f.transitions[2].from == IdpHealth::degraded);
}

TEST_CASE("health: a flapping IdP does not flap the state") {
    SUBCASE("alternating from healthy never reaches unreachable (unreachable_after >= 2)") {
        for (int n = 2; n <= 5; ++n) {
            Feed f({n, 2});
            f.run("+");
            for (int i = 0; i < 200; ++i) f.run("-+");
            CHECK(f.m.state() == IdpHealth::degraded);
            // healthy -> degraded once; then it stays degraded (one success never reaches healthy_after = 2).
            CHECK(f.transitions.size() == 2);
        }
    }
    SUBCASE("alternating from unreachable never returns to healthy (healthy_after >= 2)") {
        for (int n = 2; n <= 5; ++n) {
            Feed f({3, n});
            f.run("---");
            REQUIRE(f.m.state() == IdpHealth::unreachable);
            const auto before = f.transitions.size();
            for (int i = 0; i < 200; ++i) f.run("+-");
            CHECK(f.m.state() == IdpHealth::unreachable);
            CHECK(f.transitions.size() == before);
        }
    }
}

TEST_CASE("health: passive evidence counts like probes, and is marked as passive") {
    HealthMonitor m({2, 2}, t0);
    CHECK(m.on_probe(true, "ok", t0 + 1s).has_value());
    auto t1 = m.on_passive(false, "sign-in: TLS handshake failed", t0 + 2s);
    REQUIRE(t1.has_value());
    CHECK(t1->to == IdpHealth::degraded);
    CHECK(t1->source == EvidenceSource::passive);
    auto t2 = m.on_probe(false, "timeout", t0 + 3s);  // probe + passive failures add up
    REQUIRE(t2.has_value());
    CHECK(t2->to == IdpHealth::unreachable);
    CHECK_FALSE(m.on_passive(true, "device flow answered", t0 + 4s).has_value());
    auto t3 = m.on_probe(true, "ok", t0 + 5s);
    REQUIRE(t3.has_value());
    CHECK(t3->to == IdpHealth::healthy);
    CHECK(m.consecutive_successes() == 2);
}

TEST_CASE("health: thresholds below 1 count as 1; evidence is bounded") {
    HealthMonitor m({0, -4}, t0);
    CHECK(m.config().unreachable_after == 1);
    CHECK(m.config().healthy_after == 1);
    auto t = m.on_probe(false, std::string(10000, 'x'), t0);
    REQUIRE(t.has_value());
    CHECK(t->to == IdpHealth::unreachable);
    CHECK(m.last_evidence().size() == 512);
    CHECK(to_string(IdpHealth::unreachable) == "unreachable");
}

TEST_SUITE_END();
