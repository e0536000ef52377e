// PostgreSQL cancel keys: clients get the backend's real pid with a key of glassgate's own.

#include "glassgate/proxy/postgres/pg_proxy.hpp"

#include <doctest/doctest.h>

using gg::proxy::postgres::CancelRegistry;
namespace ip = boost::asio::ip;

TEST_SUITE_BEGIN("cancel registry");

TEST_CASE("a cancel matches only the backend pid with the key glassgate handed out") {
    CancelRegistry reg;
    const ip::tcp::endpoint db1(ip::make_address("127.0.0.1"), 5432);
    const ip::tcp::endpoint db2(ip::make_address("127.0.0.2"), 5432);
    // Two servers may use the same pid: both sessions are kept apart by their keys.
    const auto k1 = reg.add({db1, 4242, 0x11111111u, "s1"});
    const auto k2 = reg.add({db2, 4242, 0x22222222u, "s2"});
    CHECK(k1 != k2);
    const auto t1 = reg.find(4242, k1);
    REQUIRE(t1);
    CHECK(t1->session_id == "s1");
    CHECK(t1->backend == db1);
    CHECK(t1->backend_key == 0x11111111u);  // the backend's own key goes to the backend only
    const auto t2 = reg.find(4242, k2);
    REQUIRE(t2);
    CHECK(t2->session_id == "s2");
    // A wrong key, the backend's own key, or another pid cancel nothing.
    for (std::uint32_t wrong : {k1 ^ 1u, k1 ^ 0x80000000u, 0x11111111u}) {
        if (wrong == k1 || wrong == k2) continue;
        CHECK_FALSE(reg.find(4242, wrong));
    }
    CHECK_FALSE(reg.find(4243, k1));
    CHECK(reg.backend_pids() == std::set<int>{4242});
    reg.remove(4242, k1);
    CHECK_FALSE(reg.find(4242, k1));
    CHECK(reg.find(4242, k2));
    reg.remove(4242, k1);  // twice: nothing else goes
    CHECK(reg.find(4242, k2));
    reg.remove(4242, k2);
    CHECK(reg.backend_pids().empty());
}

TEST_SUITE_END();
