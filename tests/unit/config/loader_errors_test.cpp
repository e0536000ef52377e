// Invalid configurations: each kind of problem, with its exact position and message, and a file
// with several problems reported all at once in file order.

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>

#include "glassgate/config/loader.hpp"
#include "load_test_util.hpp"

using namespace gg::config;
using namespace gg::config::test;

namespace {

/// The issues of `text`, which must not load.
std::string errors(std::string_view text) {
    const auto r = load(text);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.config.has_value());
    return issues_text(r);
}

/// A complete PostgreSQL [[target]] table of six lines ("[[target]]" on the first, the name on the
/// second), to which a case appends its own keys: they start on the table's line 7.
std::string pg_target(const std::string& name) {
    return "[[target]]\nname = \"" + name +
           "\"\nprotocol = \"postgres\"\naddress = \"h:5432\"\nbackend_user = \"u\"\ndatabase = \"d\"\n";
}

}  // namespace

TEST_SUITE_BEGIN("config");

TEST_CASE("a syntax error is one issue at the parser's position") {
    const auto r = load(R"(
[server]
state_dir =
)");
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].file == "test.toml");
    CHECK(r.issues[0].line == 2);
    CHECK(r.issues[0].column == 12);
    CHECK(r.issues[0].key_path.empty());
    CHECK_FALSE(r.issues[0].message.empty());
    CHECK(r.issues[0].to_string().starts_with("test.toml:2:12: "));
}

TEST_CASE("a duplicate key is a syntax error") {
    const auto r = load("a = 1\na = 2\n");
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].line == 2);
}

TEST_CASE("unknown keys are errors, with a hint when close to a known key") {
    CHECK(errors(R"(
[servr]
state_dir = "x"
)") == "test.toml:1:2: servr: unknown key 'servr'; did you mean 'server'?\n");

    CHECK(errors(R"(
[[target]]
name = "a"
protocol = "ssh"
address = "h:22"
backend_user = "u"
host_key = ")" + host_key + R"("
max_sesion = "1h"
)") == "test.toml:7:1: target[0].max_sesion: unknown key 'max_sesion'; did you mean 'max_session'?\n");

    CHECK(errors(R"(
[log]
colour = true
)") == "test.toml:2:1: log.colour: unknown key 'colour'\n");

    CHECK(errors(R"(
[server.extra]
x = 1
)") == "test.toml:1:9: server.extra: unknown key 'extra'\n");
}

TEST_CASE("wrong types are errors") {
    CHECK(errors(R"(
[server]
state_dir = 5
shutdown_grace = 10
recording_buffer_bytes = "4MiB"
)") == "test.toml:2:13: server.state_dir: expected a string, got integer\n"
       "test.toml:3:18: server.shutdown_grace: expected a duration string such as \"30m\", got integer\n"
       "test.toml:4:26: server.recording_buffer_bytes: expected an integer, got string\n");

    CHECK(errors(R"(
[listen]
allow_plaintext = "yes"
)") == "test.toml:2:19: listen.allow_plaintext: expected a boolean, got string\n");

    CHECK(errors(R"(
server = 1
)") == "test.toml:1:10: server: expected a table ([server]), got integer\n");

    CHECK(errors(R"(
[target]
name = "a"
)") == "test.toml:1:1: target: expected an array of tables ([[target]]), got table\n");

    CHECK(errors(R"(
[[fallback]]
name = "f"
accounts = ["a", 2]
targets = "x"
)") == "test.toml:3:18: fallback[0].accounts[1]: expected a string, got integer\n"
       "test.toml:4:11: fallback[0].targets: expected an array of strings, got string\n");
}

TEST_CASE("missing required keys point at the enclosing table") {
    CHECK(errors(R"(
# comment

[idp]
client_id = "x"
)") == "test.toml:3:1: idp.issuer: missing required key 'issuer'\n");

    CHECK(errors(R"(
[tls]
)") == "test.toml:1:1: tls.cert_file: missing required key 'cert_file'\n"
       "test.toml:1:1: tls.key_file: missing required key 'key_file'\n");

    CHECK(errors(R"(
[[target]]
name = "a"

[[target]]
protocol = "postgres"
)") == "test.toml:1:1: target[0].protocol: missing required key 'protocol'\n"
       "test.toml:1:1: target[0].address: missing required key 'address'\n"
       "test.toml:1:1: target[0].backend_user: missing required key 'backend_user'\n"
       "test.toml:4:1: target[1].name: missing required key 'name'\n"
       "test.toml:4:1: target[1].address: missing required key 'address'\n"
       "test.toml:4:1: target[1].backend_user: missing required key 'backend_user'\n"
       "test.toml:4:1: target[1].database: missing required key 'database'\n");
}

TEST_CASE("target names are unique and restricted") {
    CHECK(errors(pg_target("db") + "\n" + pg_target("db")) == "test.toml:9:8: target[1].name: duplicate target name 'db' (first defined at line 2)\n");

    CHECK(errors(pg_target("a/b")) == "test.toml:2:8: target[0].name: invalid character '/' in name (allowed: A-Z a-z 0-9 . _ -)\n");
}

TEST_CASE("bad durations, zero caps and bad addresses") {
    CHECK(errors(R"(
[server]
shutdown_grace = "5x"
)") == "test.toml:2:18: server.shutdown_grace: invalid duration \"5x\": unknown unit \"x\" (use ms, s, m, h or d)\n");

    CHECK(errors(R"(
[idp]
issuer = "https://sso"
client_id = "c"
probe_interval = "0s"
)") == "test.toml:4:18: idp.probe_interval: must be greater than zero\n");

    CHECK(errors(R"(
[listen]
ssh = "::1:22"
postgres = "db:0"
[admin]
listen = "localhost:65536"
)") == "test.toml:2:7: listen.ssh: invalid address \"::1:22\": IPv6 addresses must be in brackets, e.g. \"[::1]:5432\"\n"
       "test.toml:3:12: listen.postgres: invalid address \"db:0\": port 0 is out of range (1-65535)\n"
       "test.toml:5:10: admin.listen: invalid address \"localhost:65536\": port 65536 is out of range (1-65535)\n");
}

TEST_CASE("integer ranges and enumerations") {
    CHECK(errors(R"(
[server]
recording_buffer_bytes = 0
[log]
level = "verbose"
format = "jsn"
)") == "test.toml:2:26: server.recording_buffer_bytes: must be at least 1, got 0\n"
       "test.toml:4:9: log.level: invalid value \"verbose\", expected one of: trace, debug, info, warn, error\n"
       "test.toml:5:10: log.format: invalid value \"jsn\", expected one of: text, json; did you mean 'json'?\n");
}

TEST_CASE("redact_params_for: an invalid regular expression is an error naming the pattern") {
    const auto text = errors(pg_target("pg") + "redact_params_for = [\"password\", \"(unclosed\"]\n");
    CHECK_MESSAGE(text.rfind("test.toml:7:21: target[0].redact_params_for: invalid regular expression '(unclosed': ", 0) == 0, text);
    CHECK(text.find("password") == std::string::npos);
}

TEST_CASE("fallback targets must match something") {
    CHECK(errors(pg_target("orders") + R"(
[[fallback]]
name = "f"
accounts = ["bg"]
targets = ["orders", "order", "web-*", "ord?rs"]
)") == "test.toml:11:22: fallback[0].targets[1]: no target named 'order'; did you mean 'orders'?\n"
       "test.toml:11:31: fallback[0].targets[2]: pattern 'web-*' matches no target\n");

    CHECK(errors(R"(
[[fallback]]
name = "f"
accounts = []
targets = []
notify = ["ftp://x"]
)") == "test.toml:3:12: fallback[0].accounts: must not be empty\n"
       "test.toml:4:11: fallback[0].targets: must not be empty\n"
       "test.toml:5:11: fallback[0].notify[0]: must start with http:// or https://\n");
}

TEST_CASE("warn_before must be less than max_session") {
    CHECK(errors(pg_target("a") + R"(max_session = "10m"
warn_before = "10m"

)" + pg_target("b") + R"(warn_before = "1m"

[[fallback]]
name = "f"
accounts = ["bg"]
targets = ["a"]
max_session = "5m"
warn_before = "6m"
)") == "test.toml:8:15: target[0].warn_before: warn_before (10m) must be less than max_session (10m)\n"
       "test.toml:16:15: target[1].warn_before: warn_before needs max_session (there is no cap to warn about)\n"
       "test.toml:23:15: fallback[0].warn_before: warn_before (6m) must be less than max_session (5m)\n");
}

TEST_CASE("pool_size and pool_idle: ranges") {
    CHECK(errors(pg_target("pg") + "pool_size = -1\npool_idle = \"0s\"\n") == "test.toml:7:13: target[0].pool_size: must be at least 0, got -1\n"
       "test.toml:8:13: target[0].pool_idle: must be greater than zero\n");
    CHECK(errors(pg_target("pg") + "pool_size = 1001\n") == "test.toml:7:13: target[0].pool_size: must be at most 1000, got 1001\n");
}

TEST_CASE("protocol-specific keys on the wrong protocol") {
    CHECK(errors(pg_target("pg") + R"(host_key = ")" + host_key + R"("

[[target]]
name = "box"
protocol = "ssh"
address = "h:22"
backend_user = "u"
database = "d"
tls = "require"
record_rows = 5
)") == "test.toml:7:12: target[0].host_key: key 'host_key' is not allowed for postgres targets (ssh only)\n"
       "test.toml:9:1: target[1].host_key: missing required key 'host_key'\n"
       "test.toml:14:12: target[1].database: key 'database' is not allowed for ssh targets (postgres only)\n"
       "test.toml:15:7: target[1].tls: key 'tls' is not allowed for ssh targets (postgres only)\n"
       "test.toml:16:15: target[1].record_rows: key 'record_rows' is not allowed for ssh targets (postgres only)\n");
}

TEST_CASE("record_value_bytes is -1 or at least 1024; record_copy is capped or full") {
    const auto target = [](const std::string& lines) {
        const auto text = "[server]\nstate_dir = \"/var/lib/glassgate\"\n\n" + pg_target("db") + lines;
        const auto r = load(text);
        return issues_text(r);
    };
    CHECK(target("record_value_bytes = -1\nrecord_copy = \"capped\"\n").empty());
    CHECK(target("record_value_bytes = 1024\n").empty());
    CHECK(target("record_value_bytes = 100\n") ==
          "test.toml:10:22: target[0].record_value_bytes: must be -1 (no cap) or at least 1024, got 100\n");
    CHECK(target("record_value_bytes = -2\n").find("record_value_bytes") != std::string::npos);
    CHECK(target("record_copy = \"some\"\n").find("record_copy") != std::string::npos);
}

TEST_CASE("host keys must look like '<type> <base64>'") {
    const auto target = [](const std::string& key) {
        return errors("[[target]]\nname = \"s\"\nprotocol = \"ssh\"\naddress = \"h:22\"\nbackend_user = \"u\"\n"
                      "host_key = \"" + key + "\"\n");
    };
    const std::string prefix = "test.toml:6:12: target[0].host_key: ";
    CHECK(target("AAAAC3NzaC1lZDI1NTE5") ==
          prefix + "expected \"<type> <base64>\", e.g. \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5...\"\n");
    CHECK(target("ssh-ed25519 not*base64") == prefix + "key data is not valid base64\n");
    CHECK(target("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIEpjwoLWzUQ3aZIuvbIHTqN25OeSrb0Z7PPAgsAOYjVj") ==
          prefix + "key data is a 'ssh-ed25519' key, not 'ssh-rsa'\n");
    CHECK(target(host_key + " root@host").find("exactly two fields") != std::string::npos);
}

TEST_CASE("idp rules") {
    CHECK(errors(R"(
[idp]
issuer = "https://sso.example.com/"
client_id = "c"
probe_interval = "2s"
probe_timeout = "2s"
audience = []
)") == "test.toml:2:10: idp.issuer: must not end with '/'\n"
       "test.toml:5:17: idp.probe_timeout: probe_timeout (2s) must be less than probe_interval (2s)\n"
       "test.toml:6:12: idp.audience: must not be empty (omit the key to accept only client_id)\n");

    CHECK(errors(R"(
[idp]
issuer = "sso.example.com"
client_id = "c"
probe_interval = "1s"
)") == "test.toml:2:10: idp.issuer: must start with http:// or https://\n"
       "test.toml:4:18: idp.probe_interval: probe_timeout (2s) must be less than probe_interval (1s)\n");

    CHECK(errors(R"(
[idp]
issuer = "https://sso"
client_id = "c"
unreachable_after = 0
healthy_after = 1.5
)") == "test.toml:4:21: idp.unreachable_after: must be at least 1, got 0\n"
       "test.toml:5:17: idp.healthy_after: expected an integer, got float\n");
}

TEST_CASE("a PostgreSQL listener needs TLS or allow_plaintext") {
    CHECK(errors(R"(
[listen]
postgres = "127.0.0.1:6432"
)") == "test.toml:2:12: listen.postgres: a PostgreSQL listener needs [tls] (cert_file, key_file), or "
       "allow_plaintext = true for loopback demos; otherwise no client could connect\n");
    CHECK(load("[listen]\npostgres = \"127.0.0.1:6432\"\nallow_plaintext = true\n").ok());
    CHECK(load("[listen]\nssh = \"127.0.0.1:2222\"\n").ok());
}

TEST_CASE("a file with several errors reports all of them, in file order") {
    const auto r = load(R"(
[server]
state_dir = 1
shutdown_grace = "-5m"

[listen]
postgres = "[::1]:99999"

[[target]]
name = "a"
protocol = "postgress"
address = "h:5432"
backend_user = "u"
max_sesion = "1h"

[[target]]
name = "a"
protocol = "ssh"
address = "h"
backend_user = "u"
host_key = "x"

[[fallback]]
name = "f"
trigger = "sometimes"
accounts = ["bg"]
targets = ["b*"]
)");
    CHECK(issues_text(r) ==
          "test.toml:2:13: server.state_dir: expected a string, got integer\n"
          "test.toml:3:18: server.shutdown_grace: invalid duration \"-5m\": a duration has no sign\n"
          "test.toml:6:12: listen.postgres: invalid address \"[::1]:99999\": port 99999 is out of range (1-65535)\n"
          "test.toml:10:12: target[0].protocol: invalid value \"postgress\", expected one of: postgres, ssh; "
          "did you mean 'postgres'?\n"
          "test.toml:13:1: target[0].max_sesion: unknown key 'max_sesion'; did you mean 'max_session'?\n"
          "test.toml:16:8: target[1].name: duplicate target name 'a' (first defined at line 9)\n"
          "test.toml:18:11: target[1].address: invalid address \"h\": missing port (expected host:port)\n"
          "test.toml:20:12: target[1].host_key: expected \"<type> <base64>\", e.g. \"ssh-ed25519 "
          "AAAAC3NzaC1lZDI1NTE5...\"\n"
          "test.toml:24:11: fallback[0].trigger: invalid value \"sometimes\", expected one of: idp_unreachable, "
          "declared\n"
          "test.toml:26:12: fallback[0].targets[0]: pattern 'b*' matches no target\n");
    CHECK_FALSE(r.config.has_value());
}

TEST_CASE("seeded random edits of the example never throw and always explain a rejection") {
    std::ifstream in(std::filesystem::path(GG_SOURCE_DIR) / "config" / "glassgate.example.toml");
    REQUIRE(in.good());
    const std::string example((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    constexpr std::string_view alphabet = "=[]{}\"'#\n\t .,:/*?-+_0123456789abcdmsxz\\";
    std::mt19937 rng(20240611);
    int thrown = 0;
    int inconsistent = 0;
    int misplaced = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string text = example;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits && !text.empty(); ++e) {
            const std::size_t at = rng() % text.size();
            switch (rng() % 4) {
                case 0: text.erase(at, 1 + rng() % 8); break;
                case 1: text.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
                case 2: text[at] = alphabet[rng() % alphabet.size()]; break;
                default: text.insert(at, text.substr(rng() % text.size(), rng() % 40)); break;
            }
        }
        const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
        try {
            const auto r = load_config_string(text, "fuzz.toml", "/etc/glassgate");
            if (r.ok() != r.issues.empty() || r.config.has_value() != r.issues.empty()) {
                ++inconsistent;
            }
            for (const auto& issue : r.issues) {
                if (issue.line < 0 || issue.line > lines || issue.message.empty()) {
                    ++misplaced;
                }
            }
        } catch (...) {
            ++thrown;
        }
    }
    CHECK(thrown == 0);
    CHECK(inconsistent == 0);
    CHECK(misplaced == 0);
}

TEST_SUITE_END();
