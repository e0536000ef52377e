// The ssh-target key `authorized_keys` (the file key rotation rewrites on the backend).

#include <doctest/doctest.h>

#include <string>

#include "glassgate/config/loader.hpp"

using namespace gg::config;

namespace {
const std::string host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEpjwoLWzUQ3aZIuvbIHTqN25OeSrb0Z7PPAgsAOYjVj";

LoadResult load_target(const std::string& protocol, const std::string& extra) {
    std::string text = "[[target]]\nname = \"a\"\nprotocol = \"" + protocol + "\"\naddress = \"h:22\"\nbackend_user = \"u\"\n";
    text += protocol == "ssh" ? "host_key = \"" + host_key + "\"\n" : "database = \"d\"\n";
    text += extra;
    return load_config_string(text, "test.toml", "/etc/glassgate");
}
}  // namespace

TEST_SUITE_BEGIN("config authorized_keys");

TEST_CASE("ssh targets default to ~/.ssh/authorized_keys and keep a configured path as written") {
    auto d = load_target("ssh", "");
    REQUIRE(d.ok());
    CHECK(d.config->targets[0].authorized_keys == "~/.ssh/authorized_keys");
    // A path on the backend: not resolved against the config file's directory.
    auto r = load_target("ssh", "authorized_keys = \"etc/keys/%u\"\n");
    REQUIRE(r.ok());
    CHECK(r.config->targets[0].authorized_keys == "etc/keys/%u");
}

TEST_CASE("authorized_keys must be one non-empty line and is an error on postgres targets") {
    auto empty = load_target("ssh", "authorized_keys = \"\"\n");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.issues.at(0).to_string() == "test.toml:7:19: target[0].authorized_keys: must not be empty");
    auto two = load_target("ssh", "authorized_keys = \"a\\nb\"\n");
    CHECK_FALSE(two.ok());
    auto pg = load_target("postgres", "authorized_keys = \"x\"\n");
    REQUIRE_FALSE(pg.ok());
    CHECK(pg.issues.at(0).to_string().find("key 'authorized_keys' is not allowed for postgres targets") != std::string::npos);
}

TEST_SUITE_END();
