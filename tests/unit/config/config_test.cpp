#include <doctest/doctest.h>

#include "glassgate/config/config.hpp"

using namespace gg::config;

TEST_SUITE_BEGIN("config");

TEST_CASE("enum names match the configuration spelling") {
    CHECK(to_string(Protocol::postgres) == "postgres");
    CHECK(to_string(Protocol::ssh) == "ssh");
    CHECK(to_string(BackendTls::require) == "require");
    CHECK(to_string(BackendTls::prefer) == "prefer");
    CHECK(to_string(BackendTls::disable) == "disable");
    CHECK(to_string(FallbackTrigger::idp_unreachable) == "idp_unreachable");
    CHECK(to_string(FallbackTrigger::declared) == "declared");
}

TEST_CASE("Config::find_target finds by exact name") {
    Config config;
    config.targets.resize(2);
    config.targets[0].name = "a";
    config.targets[1].name = "b";
    config.targets[1].protocol = Protocol::ssh;
    const Target* b = config.find_target("b");
    REQUIRE(b != nullptr);
    CHECK(b->protocol == Protocol::ssh);
    CHECK(config.find_target("B") == nullptr);
    CHECK(config.find_target("") == nullptr);
    CHECK(Config{}.find_target("a") == nullptr);
}

TEST_SUITE_END();
