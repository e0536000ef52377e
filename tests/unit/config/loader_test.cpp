// Valid configurations: every field read back, defaults, derived defaults, path resolution and the
// example file shipped in config/.

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "glassgate/config/loader.hpp"
#include "load_test_util.hpp"

using namespace gg::config;
using namespace gg::config::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// A fresh empty directory under the system temp directory, removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("gg_config_test_" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

}  // namespace

TEST_SUITE_BEGIN("config");

TEST_CASE("a full configuration round-trips every field") {
    const std::string text = std::string(R"(
[server]
state_dir = "/srv/gg/state"
admin_socket = "run/admin.sock"
shutdown_grace = "45s"
recording_buffer_bytes = 1048576

[listen]
postgres = "127.0.0.1:6432"
ssh = "[::1]:2222"
allow_plaintext = true
postgres_auth_timeout = "30s"

[tls]
cert_file = "tls/cert.pem"
key_file = "../keys/./key.pem"

[idp]
issuer = "http://127.0.0.1:9000/realms/test"
client_id = "gg"
audience = "api"
username_claim = "email"
groups_claim = "roles"
probe_interval = "10s"
probe_timeout = "1500ms"
unreachable_after = 5
healthy_after = 4
clock_skew = "0s"
ca_file = "idp.pem"

[admin]
listen = "localhost:9100"

[log]
level = "debug"
format = "json"

[[target]]
name = "pg.main"
protocol = "postgres"
address = "db.internal:5433"
backend_user = "gg_main"
allow = ["alice", "group:dba"]
max_session = "1h"
warn_before = "2m"
idle_timeout = "10m"
database = "app"
databases = ["app_archive", "app_reporting"]
tls = "disable"
ca_file = "/etc/ssl/db.pem"
record_rows = -1
record_value_bytes = 1048576
record_copy = "full"
redact_params = true
redact_params_for = ["password", "^insert into secrets"]
pool_size = 4
pool_idle = "90s"

[[target]]
name = "web_1"
protocol = "ssh"
address = "10.0.0.5:22"
backend_user = "deploy"
allow = []
host_key = ")") + std::string(host_key) + R"("

[[fallback]]
name = "declared-outage"
trigger = "declared"
accounts = ["bg1", "bg2"]
targets = ["pg.*", "web_1"]
max_session = "20m"
warn_before = "1m"
require_reason = false
rotate_on_close = false
notify = ["http://hooks.local/a", "https://hooks.example.com/b"]
)";
    const auto r = load(text);
    INFO(issues_text(r));
    REQUIRE(r.ok());
    const Config& c = *r.config;

    CHECK(c.source == fs::path("/etc/glassgate/test.toml"));

    CHECK(c.server.state_dir == fs::path("/srv/gg/state"));
    CHECK(c.server.admin_socket == fs::path("/etc/glassgate/run/admin.sock"));
    CHECK(c.server.shutdown_grace == 45s);
    CHECK(c.server.recording_buffer_bytes == 1048576u);

    REQUIRE(c.listen.postgres.has_value());
    CHECK(*c.listen.postgres == SocketAddress{"127.0.0.1", 6432});
    REQUIRE(c.listen.ssh.has_value());
    CHECK(*c.listen.ssh == SocketAddress{"::1", 2222});
    CHECK(c.listen.allow_plaintext);
    CHECK(c.listen.postgres_auth_timeout == Duration(30s));

    REQUIRE(c.tls.has_value());
    CHECK(c.tls->cert_file == fs::path("/etc/glassgate/tls/cert.pem"));
    CHECK(c.tls->key_file == fs::path("/etc/keys/key.pem"));

    REQUIRE(c.idp.has_value());
    CHECK(c.idp->issuer == "http://127.0.0.1:9000/realms/test");
    CHECK(c.idp->client_id == "gg");
    CHECK(c.idp->audience == std::vector<std::string>{"api"});
    CHECK(c.idp->username_claim == "email");
    CHECK(c.idp->groups_claim == "roles");
    CHECK(c.idp->probe_interval == 10s);
    CHECK(c.idp->probe_timeout == 1500ms);
    CHECK(c.idp->unreachable_after == 5);
    CHECK(c.idp->healthy_after == 4);
    CHECK(c.idp->clock_skew == 0s);
    REQUIRE(c.idp->ca_file.has_value());
    CHECK(*c.idp->ca_file == fs::path("/etc/glassgate/idp.pem"));

    REQUIRE(c.admin.listen.has_value());
    CHECK(*c.admin.listen == SocketAddress{"localhost", 9100});

    CHECK(c.log.level == "debug");
    CHECK(c.log.format == "json");

    REQUIRE(c.targets.size() == 2);
    const Target& pg = c.targets[0];
    CHECK(pg.name == "pg.main");
    CHECK(pg.protocol == Protocol::postgres);
    CHECK(pg.address == SocketAddress{"db.internal", 5433});
    CHECK(pg.backend_user == "gg_main");
    CHECK(pg.allow == std::vector<std::string>{"alice", "group:dba"});
    CHECK(pg.max_session == std::optional<Duration>(1h));
    CHECK(pg.warn_before == std::optional<Duration>(2min));
    CHECK(pg.idle_timeout == std::optional<Duration>(10min));
    CHECK(pg.database == "app");
    CHECK(pg.databases == std::vector<std::string>{"app_archive", "app_reporting"});
    CHECK(pg.tls == BackendTls::disable);
    CHECK(pg.ca_file == std::optional<fs::path>("/etc/ssl/db.pem"));
    CHECK(pg.record_rows == -1);
    CHECK(pg.record_value_bytes == 1048576);
    CHECK(pg.record_copy == RecordCopy::full);
    CHECK(pg.redact_params);
    CHECK(pg.redact_params_for == std::vector<std::string>{"password", "^insert into secrets"});
    CHECK(pg.pool_size == 4);
    CHECK(pg.pool_idle == Duration(90s));
    CHECK(pg.host_key.empty());

    const Target& web = c.targets[1];
    CHECK(web.name == "web_1");
    CHECK(web.protocol == Protocol::ssh);
    CHECK(web.address == SocketAddress{"10.0.0.5", 22});
    CHECK(web.backend_user == "deploy");
    CHECK(web.allow.empty());
    CHECK_FALSE(web.max_session.has_value());
    CHECK_FALSE(web.warn_before.has_value());
    CHECK_FALSE(web.idle_timeout.has_value());
    CHECK(web.host_key == host_key);
    CHECK(web.database.empty());

    REQUIRE(c.fallbacks.size() == 1);
    const FallbackRule& fb = c.fallbacks[0];
    CHECK(fb.name == "declared-outage");
    CHECK(fb.trigger == FallbackTrigger::declared);
    CHECK(fb.accounts == std::vector<std::string>{"bg1", "bg2"});
    CHECK(fb.targets == std::vector<std::string>{"pg.*", "web_1"});
    CHECK(fb.max_session == 20min);
    CHECK(fb.warn_before == 1min);
    CHECK_FALSE(fb.require_reason);
    CHECK_FALSE(fb.rotate_on_close);
    CHECK(fb.notify == std::vector<std::string>{"http://hooks.local/a", "https://hooks.example.com/b"});

    CHECK(c.find_target("web_1") == &c.targets[1]);
}

TEST_CASE("an empty file is a valid configuration with every default") {
    const auto r = load("");
    INFO(issues_text(r));
    REQUIRE(r.ok());
    const Config& c = *r.config;
    const ServerConfig defaults;
    CHECK(c.server.state_dir == fs::path("/etc/glassgate/var"));
    CHECK(c.server.admin_socket == fs::path("/etc/glassgate/var/admin.sock"));
    CHECK(c.server.shutdown_grace == defaults.shutdown_grace);
    CHECK(c.server.recording_buffer_bytes == defaults.recording_buffer_bytes);
    CHECK_FALSE(c.listen.postgres.has_value());
    CHECK_FALSE(c.listen.ssh.has_value());
    CHECK_FALSE(c.listen.allow_plaintext);
    CHECK(c.listen.postgres_auth_timeout == Duration(10s));
    CHECK_FALSE(c.tls.has_value());
    CHECK_FALSE(c.idp.has_value());
    CHECK_FALSE(c.admin.listen.has_value());
    CHECK(c.log.level == "info");
    CHECK(c.log.format == "text");
    CHECK(c.targets.empty());
    CHECK(c.fallbacks.empty());
    CHECK_FALSE(c.store.postgres.has_value());
    CHECK_FALSE(c.server.instance.empty());  // the host name
    CHECK(c.server.master_key_path() == fs::path("/etc/glassgate/var/master.key"));
}

TEST_CASE("[store] postgres, [server] instance and master_key_file") {
    const auto r = load("[server]\ninstance = \"proxy-2.eu_west\"\nmaster_key_file = \"keys/master.key\"\n"
                        "[store]\npostgres = \"host=db1,db2 port=5432 dbname=glassgate user=glassgate "
                        "passfile=/etc/glassgate/pgpass target_session_attrs=read-write\"\n");
    INFO(issues_text(r));
    REQUIRE(r.ok());
    CHECK(r.config->server.instance == "proxy-2.eu_west");
    CHECK(r.config->server.master_key_path() == fs::path("/etc/glassgate/keys/master.key"));
    CHECK(r.config->store.postgres.value().starts_with("host=db1,db2 "));
    const auto uri = load("[store]\npostgres = \"postgresql://glassgate@db1:5432,db2/glassgate?sslmode=verify-full\"\n");
    INFO(issues_text(uri));
    CHECK(uri.ok());
}

TEST_CASE("a password in [store] postgres and a bad instance name are refused") {
    for (const char* conninfo : {"host=db1 user=gg password=s3cret dbname=glassgate", "host=db1 PASSWORD = 's3 cret'",
                                 "postgresql://gg:s3cret@db1/glassgate", "postgres://db1/glassgate?sslmode=require&password=x",
                                 "postgresql://db1/glassgate?password=x"}) {
        CAPTURE(conninfo);
        const auto r = load(std::string("[store]\npostgres = \"") + conninfo + "\"\n");
        REQUIRE_FALSE(r.ok());
        CHECK(issues_text(r).find("store.postgres: a password must not be written in the configuration") != std::string::npos);
        CHECK(issues_text(r).find("s3cret") == std::string::npos);
    }
    const auto unterminated = load("[store]\npostgres = \"host=db1 application_name='x\"\n");
    CHECK(issues_text(unterminated).find("unterminated quoted value") != std::string::npos);
    const auto short_timeout = load("[server]\ninstance_timeout = \"1s\"\n");
    CHECK(issues_text(short_timeout).find("server.instance_timeout: must be at least 2s") != std::string::npos);
    const auto bad = load("[server]\ninstance = \"a b\"\n");
    CHECK(issues_text(bad).find("server.instance: must be 1 to 64 characters") != std::string::npos);
}

TEST_CASE("idp defaults: audience is [client_id]") {
    const auto r = load(R"(
[idp]
issuer = "https://sso.example.com"
client_id = "glassgate"
)");
    INFO(issues_text(r));
    REQUIRE(r.ok());
    const IdpConfig& idp = *r.config->idp;
    CHECK(idp.audience == std::vector<std::string>{"glassgate"});
    CHECK(idp.username_claim == "sub");
    CHECK(idp.groups_claim == "groups");
    CHECK(idp.probe_interval == 5s);
    CHECK(idp.probe_timeout == 2s);
    CHECK(idp.unreachable_after == 3);
    CHECK(idp.healthy_after == 2);
    CHECK(idp.clock_skew == 60s);
    CHECK_FALSE(idp.ca_file.has_value());
}

TEST_CASE("target defaults and the warn_before rule") {
    const auto r = load(std::string(R"(
[[target]]
name = "long"
protocol = "postgres"
address = "db:5432"
backend_user = "u"
database = "d"
max_session = "10m"

[[target]]
name = "short"
protocol = "postgres"
address = "db:5432"
backend_user = "u"
database = "d"
max_session = "9m"

[[target]]
name = "uncapped"
protocol = "ssh"
address = "host:22"
backend_user = "u"
host_key = ")") + std::string(host_key) + R"("

[[fallback]]
name = "default"
accounts = ["bg"]
targets = ["*"]

[[fallback]]
name = "short"
accounts = ["bg"]
targets = ["long"]
max_session = "4m"
)");
    INFO(issues_text(r));
    REQUIRE(r.ok());
    const Config& c = *r.config;
    CHECK(c.targets[0].warn_before == std::optional<Duration>(5min));  // max_session >= 10m: 5m
    CHECK(c.targets[1].warn_before == std::optional<Duration>(270s));  // otherwise half
    CHECK_FALSE(c.targets[2].warn_before.has_value());                 // no cap, no warning
    CHECK(c.targets[0].tls == BackendTls::prefer);
    CHECK(c.targets[0].record_rows == 100);
    CHECK(c.targets[0].record_value_bytes == 65536);
    CHECK(c.targets[0].record_copy == RecordCopy::capped);
    CHECK_FALSE(c.targets[0].redact_params);
    CHECK(c.targets[0].redact_params_for.empty());
    CHECK(c.targets[0].pool_size == 0);
    CHECK(c.targets[0].pool_idle == Duration(60s));
    CHECK(c.targets[0].allow.empty());
    CHECK(c.targets[0].databases.empty());
    CHECK_FALSE(c.targets[0].ca_file.has_value());

    const FallbackRule& fb = c.fallbacks[0];
    CHECK(fb.trigger == FallbackTrigger::idp_unreachable);
    CHECK(fb.max_session == 30min);
    CHECK(fb.warn_before == 5min);
    CHECK(fb.require_reason);
    CHECK(fb.rotate_on_close);
    CHECK(fb.notify.empty());
    CHECK(c.fallbacks[1].warn_before == 2min);
}

TEST_CASE("relative paths resolve against the file's directory") {
    TempDir dir;
    fs::create_directories(dir.path / "etc");
    const fs::path file = dir.path / "etc" / "gg.toml";
    {
        std::ofstream out(file);
        out << "[server]\nstate_dir = \"../state/\"\nadmin_socket = \"/run/gg.sock\"\n"
               "[tls]\ncert_file = \"tls/c.pem\"\nkey_file = \"./tls/../tls/k.pem\"\n";
    }
    const auto r = load_config_file(file);
    INFO(issues_text(r));
    REQUIRE(r.ok());
    CHECK(r.config->source == file.lexically_normal());
    CHECK(r.config->source.is_absolute());
    CHECK(r.config->server.state_dir == (dir.path / "state/").lexically_normal());
    CHECK(r.config->server.admin_socket == fs::path("/run/gg.sock"));
    CHECK(r.config->tls->cert_file == dir.path / "etc/tls/c.pem");
    CHECK(r.config->tls->key_file == dir.path / "etc/tls/k.pem");
}

TEST_CASE("a relative base directory is made absolute") {
    const auto r = load_config_string("[server]\nstate_dir = \"s\"\n", "x.toml", "conf");
    INFO(issues_text(r));
    REQUIRE(r.ok());
    const fs::path expected_dir = (fs::current_path() / "conf").lexically_normal();
    CHECK(r.config->source == expected_dir / "x.toml");
    CHECK(r.config->server.state_dir == expected_dir / "s");
    CHECK(r.config->server.admin_socket == expected_dir / "var/admin.sock");
}

TEST_CASE("a missing file is one issue naming the path and the OS error") {
    const auto r = load_config_file("/nonexistent/glassgate.toml");
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.config.has_value());
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].line == 0);
    CHECK(r.issues[0].to_string() ==
          "/nonexistent/glassgate.toml:0:0: cannot read \"/nonexistent/glassgate.toml\": No such file or directory");
}

TEST_CASE("a directory is not a configuration file") {
    TempDir dir;
    const auto r = load_config_file(dir.path);
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].message.find("Is a directory") != std::string::npos);
}

TEST_CASE("the example configuration loads with zero issues") {
    const fs::path example = fs::path(GG_SOURCE_DIR) / "config" / "glassgate.example.toml";
    const auto r = load_config_file(example);
    INFO(issues_text(r));
    REQUIRE(r.ok());
    const Config& c = *r.config;
    CHECK(c.source == example.lexically_normal());
    CHECK(c.server.state_dir == example.parent_path() / "var");
    CHECK(c.listen.postgres.has_value());
    CHECK(c.listen.ssh.has_value());
    CHECK(c.tls.has_value());
    CHECK(c.idp.has_value());
    CHECK(c.admin.listen.has_value());
    REQUIRE(c.targets.size() == 2);
    CHECK(c.targets[0].protocol == Protocol::postgres);
    CHECK(c.targets[1].protocol == Protocol::ssh);
    REQUIRE(c.fallbacks.size() == 1);
}

TEST_CASE("the example configuration sets every key of the schema") {
    // Every key the loader accepts is set in the example ("key = ..."), so loading the example
    // exercises it. Keep this list in step with the loader's schema.
    const char* keys[] = {
        "state_dir",      "admin_socket",  "shutdown_grace",    "recording_buffer_bytes",
        "postgres",       "ssh",           "allow_plaintext",   "cert_file",
        "key_file",       "issuer",        "client_id",         "audience",
        "username_claim", "groups_claim",  "probe_interval",    "probe_timeout",
        "unreachable_after", "healthy_after", "clock_skew",     "ca_file",
        "listen",         "level",         "format",            "name",
        "protocol",       "address",       "backend_user",      "allow",
        "max_session",    "warn_before",   "idle_timeout",      "database",
        "databases",      "tls",           "record_rows",       "host_key",
        "pool_size",      "pool_idle",     "record_value_bytes", "record_copy",
        "trigger",        "accounts",      "targets",           "require_reason",
        "rotate_on_close", "notify",      "instance",          "master_key_file",
        "instance_timeout",
    };
    std::ifstream in(fs::path(GG_SOURCE_DIR) / "config" / "glassgate.example.toml");
    REQUIRE(in.good());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* key : keys) {
        CAPTURE(key);
        CHECK(text.find("\n" + std::string(key) + " = ") != std::string::npos);
    }
}

TEST_SUITE_END();
