// Smoke tests of the test peers themselves: each starts, serves real clients, and is gone after its object
// is destroyed (port closed, no process left). If these fail, every other integration test would too.
#include <doctest/doctest.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/files.hpp"
#include "harness/idp_peer.hpp"
#include "harness/jwt.hpp"
#include "harness/net.hpp"
#include "harness/postgres_peer.hpp"
#include "harness/process.hpp"
#include "harness/sshd_peer.hpp"

using namespace gg::harness;
using namespace std::chrono_literals;

namespace {

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

bool dirs_are_kept() {
    const char* keep = std::getenv("GG_KEEP_TEST_DIRS");
    return keep != nullptr && std::string(keep) == "1";
}

/// What must be gone once a peer object is destroyed.
struct Footprint {
    std::uint16_t port = 0;
    pid_t pgid = 0;
    std::vector<pid_t> processes;  // the server and all its descendants while it ran
    std::filesystem::path dir;

    template <class Peer>
    static Footprint of(const Peer& peer) {
        Footprint f{peer.port(), peer.pid(), descendants(peer.pid()), peer.dir()};
        f.processes.push_back(peer.pid());
        return f;
    }

    void check_gone() const {
        INFO("port ", port, ", process group ", pgid);
        CHECK_FALSE(can_connect("127.0.0.1", port));
        CHECK_FALSE(process_group_alive(pgid));
        CHECK_FALSE(any_alive(processes));
        CHECK(child_processes(getpid()).empty());  // every child reaped, no orphan re-parented to us
        if (!dirs_are_kept()) {
            CHECK_FALSE(std::filesystem::exists(dir));
        }
    }
};

boost::json::object parse_object(const std::string& text) {
    boost::system::error_code ec;
    auto value = boost::json::parse(text, ec);
    INFO("JSON: ", text);
    REQUIRE_FALSE(ec);
    REQUIRE(value.is_object());
    return value.as_object();
}

std::string string_at(const boost::json::object& object, const char* key) {
    const auto* value = object.if_contains(key);
    return value != nullptr && value->is_string() ? std::string(value->as_string()) : std::string();
}

std::vector<std::string> strings_at(const boost::json::object& object, const char* key) {
    std::vector<std::string> out;
    if (const auto* value = object.if_contains(key); value != nullptr && value->is_array()) {
        for (const auto& item : value->as_array()) {
            if (item.is_string()) {
                out.emplace_back(item.as_string());
            }
        }
    }
    return out;
}

}  // namespace

TEST_SUITE_BEGIN("integration/peers");

TEST_CASE("harness: run() captures output, feeds stdin, reports exit codes and enforces its timeout") {
    auto echo = run({"sh", "-c", "cat; echo to-stderr >&2; exit 7"}, RunOptions{.stdin_data = "from stdin\n"});
    INFO(echo.describe());
    CHECK(echo.exit_code == 7);
    CHECK(echo.out == "from stdin\n");
    CHECK(echo.err == "to-stderr\n");

    auto env = run({"sh", "-c", "printf %s \"$GG_X\""},
                   RunOptions{.env = {.set = {{"GG_X", "value with 'quotes'"}}, .unset = {}}});
    CHECK(env.out == "value with 'quotes'");

    // The timeout kills the whole group, including a grandchild holding the pipes.
    auto slow = run({"sh", "-c", "sleep 30 & sleep 30"}, RunOptions{.timeout = 300ms});
    CHECK(slow.timed_out);
    CHECK(slow.exit_code == -1);
    CHECK(slow.elapsed < 5s);

    CHECK_THROWS_AS(run({"/nonexistent/program"}), PeerError);
    CHECK(child_processes(getpid()).empty());
}

TEST_CASE("harness: a Process is stopped and reaped when a test throws") {
    TempDir dir("gg-harness");
    pid_t pid = 0;
    try {
        auto sleeper = Process::start(SpawnOptions{.argv = {"sh", "-c", "sleep 60 & sleep 60"}}, dir / "log");
        pid = sleeper.pid();
        REQUIRE(pid > 0);
        REQUIRE(wait_until([&] { return descendants(pid).size() >= 2; }, 5s));
        throw std::runtime_error("test failure");
    } catch (const std::runtime_error&) {
    }
    CHECK_FALSE(process_group_alive(pid));
    CHECK(child_processes(getpid()).empty());
}

TEST_CASE("harness: start_server retries on another port when the first one was taken") {
    TempDir dir("gg-harness");
    int attempts = 0;
    ServerSpec spec;
    spec.name = "fake server";
    spec.log_file = dir / "fake.log";
    spec.timeout = 5s;
    spec.make = [&](std::uint16_t port) {
        ++attempts;
        if (attempts == 1) {  // as if someone had bound `port` between free_port() and our bind()
            (void)port;
            return SpawnOptions{.argv = {"sh", "-c", "echo 'bind: Address already in use' >&2; exit 1"}};
        }
        return SpawnOptions{.argv = {"sleep", "30"}};
    };
    spec.ready = [&](std::uint16_t) { return attempts == 2; };
    auto started = start_server(spec);
    CHECK(attempts == 2);
    CHECK(started.process.pid() > 0);
    CHECK(started.port != 0);

    // Any other early exit is reported with the log tail, without retrying.
    ServerSpec broken = spec;
    broken.make = [](std::uint16_t) {
        return SpawnOptions{.argv = {"sh", "-c", "echo 'config is broken' >&2; exit 4"}};
    };
    attempts = 0;
    try {
        (void)start_server(broken);
        FAIL("start_server should have thrown");
    } catch (const PeerError& e) {
        CHECK(contains(e.what(), "fake server exited with code 4"));
        CHECK(contains(e.what(), "config is broken"));
    }
}

TEST_CASE("postgres: psql over TLS, SCRAM login of a created role, clean teardown") {
    Footprint footprint;
    {
        PostgresPeer pg;
        REQUIRE(pg.port() > 0);
        REQUIRE(can_connect(pg.host(), pg.port()));

        auto one = pg.psql("select 1");
        INFO(one.describe());
        REQUIRE(one.exit_code == 0);
        CHECK(trim(one.out) == "1");

        auto ssl = pg.psql("show ssl");
        CHECK(trim(ssl.out) == "on");
        // This very connection is encrypted (sslmode=require).
        auto mine = pg.psql("select ssl from pg_stat_ssl where pid = pg_backend_pid()");
        CHECK(trim(mine.out) == "t");

        pg.create_role("app_user", "app 'secret'");
        pg.create_database("app_db", "app_user");
        auto verifier = pg.psql("select left(rolpassword, 14) from pg_authid where rolname = 'app_user'");
        CHECK(trim(verifier.out) == "SCRAM-SHA-256$");

        auto login = pg.psql_as("app_user", "app 'secret'", "app_db", "select current_user || '@' || current_database()");
        INFO(login.describe());
        CHECK(login.exit_code == 0);
        CHECK(trim(login.out) == "app_user@app_db");

        auto wrong = pg.psql_as("app_user", "wrong", "app_db", "select 1");
        CHECK(wrong.exit_code != 0);
        CHECK(contains(wrong.err, "password authentication failed"));

        CHECK(contains(pg.conninfo("app_db", "app_user", "p"), "port=" + std::to_string(pg.port())));
        footprint = Footprint::of(pg);
        CHECK(footprint.processes.size() > 1);  // postmaster and its auxiliary processes
    }
    footprint.check_gone();
}

TEST_CASE("sshd: a command runs through the real ssh client, host key pinned, clean teardown") {
    Footprint footprint;
    {
        SshdPeer sshd;
        auto hello = sshd.ssh("echo hello; exit 3");
        INFO(hello.describe());
        CHECK(hello.exit_code == 3);
        CHECK(hello.out == "hello\n");

        // "ssh-ed25519 <base64 of: len 11 'ssh-ed25519' len 32 key>" and nothing else.
        const auto& key = sshd.host_public_key();
        INFO("host key: ", key);
        REQUIRE(key.rfind("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 0) == 0);
        CHECK(std::count(key.begin(), key.end(), ' ') == 1);
        CHECK(key.size() == std::string("ssh-ed25519 ").size() + 68);
        CHECK(contains(read_file(sshd.host_key().string() + ".pub"), key));

        // sftp works (the Subsystem line is right).
        std::vector<std::string> sftp = {"sftp", "-b", "-", "-P", std::to_string(sshd.port())};
        for (const auto& option : sshd.client_options()) {
            sftp.push_back(option);
        }
        sftp.push_back(sshd.user() + "@127.0.0.1");
        auto listing = run(sftp, RunOptions{.stdin_data = "cd " + sshd.dir().string() + "\nls\n", .timeout = 30s});
        INFO(listing.describe());
        CHECK(listing.exit_code == 0);
        CHECK(contains(listing.out, "sshd_config"));

        // The known_hosts pin is enforced: another key for the same host is refused.
        write_file(sshd.dir() / "wrong_known_hosts",
                   "[127.0.0.1]:" + std::to_string(sshd.port()) + " " + sshd.client_public_key() + "\n");
        auto argv = sshd.ssh_argv("true");
        std::replace(argv.begin(), argv.end(), "UserKnownHostsFile=" + sshd.known_hosts().string(),
                     "UserKnownHostsFile=" + (sshd.dir() / "wrong_known_hosts").string());
        auto refused = run(argv, RunOptions{.timeout = 30s});
        CHECK(refused.exit_code == 255);
        CHECK(contains(refused.err, "Host key verification failed"));

        footprint = Footprint::of(sshd);
    }
    footprint.check_gone();
}

// One provider for the whole case (sections in sequence, not SUBCASEs, which would restart it each time).
TEST_CASE("idp: device-code login through the scripted approver yields an RS256 ID token with groups") {
    Footprint footprint;
    {
        IdpPeer idp(IdpOptions{.users = {{"alice", {"dba", "ops"}}, {"bob", {}}}});
        const auto discovery = http_get(idp.host(), idp.port(), "/.well-known/openid-configuration");
        REQUIRE(discovery.has_value());
        const auto config = parse_object(discovery->body);
        CHECK(string_at(config, "issuer") == idp.issuer());
        const auto grants = strings_at(config, "grant_types_supported");
        CHECK(std::find(grants.begin(), grants.end(), "urn:ietf:params:oauth:grant-type:device_code") !=
              grants.end());

        {  // device-login.mjs: alice gets sub and groups
            const auto token = idp.device_login_token("alice");
            const auto jwt = decode_jwt(token);
            REQUIRE(jwt.has_value());
            const auto header = parse_object(jwt->header);
            CHECK(string_at(header, "alg") == "RS256");
            CHECK_FALSE(string_at(header, "kid").empty());
            const auto claims = parse_object(jwt->payload);
            CHECK(string_at(claims, "sub") == "alice");
            CHECK(string_at(claims, "iss") == idp.issuer());
            CHECK(string_at(claims, "aud") == "glassgate");
            CHECK(strings_at(claims, "groups") == std::vector<std::string>{"dba", "ops"});
        }
        {  // approve(): the C++ side drives the device flow, approve.mjs plays the person
            const auto authorization = http_post_form(idp.host(), idp.port(), "/device/auth",
                                                      {{"client_id", "glassgate"}, {"scope", "openid groups"}});
            REQUIRE(authorization.has_value());
            REQUIRE(authorization->status == 200);
            const auto device = parse_object(authorization->body);
            const auto uri = string_at(device, "verification_uri_complete");
            REQUIRE(uri.rfind(idp.issuer(), 0) == 0);

            const auto approved = idp.approve(uri, "bob");
            INFO(approved.describe());
            REQUIRE(approved.exit_code == 0);

            const auto token = http_post_form(idp.host(), idp.port(), "/token",
                                              {{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
                                               {"device_code", string_at(device, "device_code")},
                                               {"client_id", "glassgate"}});
            REQUIRE(token.has_value());
            INFO("token response: ", token->body);
            REQUIRE(token->status == 200);
            const auto jwt = decode_jwt(string_at(parse_object(token->body), "id_token"));
            REQUIRE(jwt.has_value());
            const auto claims = parse_object(jwt->payload);
            CHECK(string_at(claims, "sub") == "bob");
            CHECK(strings_at(claims, "groups").empty());

            // A used code cannot be approved again.
            CHECK(idp.approve(uri, "alice").exit_code != 0);
        }
        {  // --deny: the client receives access_denied
            const auto denied = idp.device_login("alice", {"--deny"});
            INFO(denied.describe());
            CHECK(denied.exit_code == 3);
            CHECK(trim(denied.out) == "error: access_denied");
        }
        {  // restart with new keys keeps the issuer (same port); tokens carry the new kid
            const auto issuer = idp.issuer();
            IdpPeer::make_jwks(idp.dir() / "rotated.json", {"rotated-1"});
            idp.restart(idp.dir() / "rotated.json");
            CHECK(idp.issuer() == issuer);
            const auto jwt = decode_jwt(idp.device_login_token("alice"));
            REQUIRE(jwt.has_value());
            CHECK(string_at(parse_object(jwt->header), "kid") == "rotated-1");
            const auto jwks = http_get(idp.host(), idp.port(), "/jwks");
            REQUIRE(jwks.has_value());
            CHECK(contains(jwks->body, "\"kid\":\"rotated-1\""));
            CHECK_FALSE(contains(jwks->body, "\"d\":"));  // public keys only
        }
        footprint = Footprint::of(idp);
    }
    footprint.check_gone();
}

TEST_SUITE_END();
