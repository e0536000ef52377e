#include <doctest/doctest.h>

#include "glassgate/session/policy.hpp"

using gg::session::allow_list_admits;

TEST_SUITE_BEGIN("policy");

TEST_CASE("allow lists name identities and groups, exactly") {
    const std::vector<std::string> allow = {"alice", "group:dba"};
    CHECK(allow_list_admits(allow, "alice", {}));
    CHECK(allow_list_admits(allow, "bob", {"dev", "dba"}));
    CHECK(!allow_list_admits(allow, "bob", {"dev"}));
    CHECK(!allow_list_admits(allow, "Alice", {}));       // case-sensitive
    CHECK(!allow_list_admits(allow, "group:dba", {}));   // a user named like a group entry is not the group
    CHECK(!allow_list_admits(allow, "bob", {"group:dba"}));
    CHECK(!allow_list_admits({}, "alice", {"dba"}));
    CHECK(!allow_list_admits({"group:"}, "alice", {}));
    CHECK(allow_list_admits({"group:"}, "alice", {""}));  // an empty group name matches only an empty group
    CHECK(!allow_list_admits({""}, "", {}));              // an empty identity is nobody
}

TEST_SUITE_END();
