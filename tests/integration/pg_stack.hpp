// PostgreSQL + the IdP + `glassgate serve` on 127.0.0.1 as the PostgreSQL suites start them
// (postgres_test.cpp, postgres_bulk_test.cpp, breakglass_test.cpp), and what they read back from glassgate.
// The including test target defines GG_BINARY (the glassgate program).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "harness/files.hpp"
#include "harness/glassgate_cli.hpp"
#include "harness/idp_peer.hpp"
#include "harness/net.hpp"
#include "harness/postgres_peer.hpp"
#include "harness/process.hpp"

namespace gg::harness {

struct PgStackOptions {
    PostgresOptions postgres{};
    std::string_view dir_prefix = "gg-test";
    std::vector<std::string> databases{};  ///< owned by app_owner besides "app"
    std::size_t log_lines = 0;             ///< what serve_log() returns: the last lines, 0: all
    /// How long newest_sealed_session() waits (sealing waits for fdatasync, slow while other tests write
    /// gigabytes).
    std::chrono::milliseconds seal_timeout = std::chrono::seconds(60);
};

/// The peers, the backend role app_owner (password app_password) with its databases, and glassgate's
/// directory. The suite writes the configuration (write_config), stores secrets and starts serve.
class PgStack {
 public:
    PostgresPeer pg;
    IdpPeer idp;
    TempDir dir;
    std::uint16_t port = 0;  ///< glassgate's PostgreSQL listener, chosen by write_config()
    std::string app_password = random_hex(24);
    std::uint16_t admin_port = free_port();
    Process serve;
    /// Put in front of `glassgate serve` by start_serve(), e.g. {"prlimit", "--nofile=1024:1024", "--"}.
    std::vector<std::string> serve_prefix{};

    explicit PgStack(const PgStackOptions& options = {})
        : pg(options.postgres),
          dir(options.dir_prefix),
          databases_(options.databases),
          log_lines_(options.log_lines),
          seal_timeout_(options.seal_timeout) {
        pg.create_role("app_owner", app_password);
        pg.create_database("app", "app_owner");
        for (const auto& db : databases_) pg.create_database(db, "app_owner");
    }

    struct ConfigParts {
        std::string server_extra{};  ///< more [server] keys
        std::string listen_extra{};  ///< more [listen] keys
        std::string idp_extra{};     ///< more [idp] keys
        std::string tables{};        ///< the [[target]] and [[fallback]] tables
    };
    /// glassgate.toml: state in ./state, the PostgreSQL listener on a free port, /metrics on admin_port,
    /// client TLS with a self-signed certificate, the IdP; then `parts.tables`.
    void write_config(const ConfigParts& parts) {
        auto cert = make_self_signed_cert(dir.path(), "proxy");
        port = free_port();
        std::ofstream(config()) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n" << parts.server_extra
                                << "[listen]\npostgres = \"127.0.0.1:" << port << "\"\n" << parts.listen_extra
                                << "[admin]\nlisten = \"127.0.0.1:" << admin_port << "\"\n"
                                << "[tls]\ncert_file = \"" << cert.cert.string() << "\"\nkey_file = \"" << cert.key.string() << "\"\n"
                                << "[idp]\nissuer = \"" << idp.issuer() << "\"\nclient_id = \"glassgate\"\n" << parts.idp_extra
                                << parts.tables;
    }
    /// Target "appdb": database app as app_owner over TLS; the databases "postgres" and those of the options
    /// allowed too; alice and group dba allowed.
    [[nodiscard]] std::string appdb_table() const {
        std::string databases = "[\"postgres\"";
        for (const auto& db : databases_) databases += ", \"" + db + "\"";
        return "[[target]]\nname = \"appdb\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:" + std::to_string(pg.port()) +
               "\"\ndatabase = \"app\"\ndatabases = " + databases + "]\nbackend_user = \"app_owner\"\ntls = \"require\"\n" +
               "allow = [\"alice\", \"group:dba\"]\n";
    }
    /// `glassgate secret set TARGET` with app_password.
    void set_secret(const std::string& target) const {
        auto set = run({GG_BINARY, "secret", "set", target, "--config", config()}, {.stdin_data = app_password + "\n"});
        REQUIRE_MESSAGE(set.exit_code == 0, set.describe());
    }
    /// Starts `glassgate serve` (log: serve.log) and waits until its PostgreSQL listener accepts.
    void start_serve() {
        std::vector<std::string> argv = serve_prefix;
        for (const auto* a : {GG_BINARY, "serve", "--config"}) argv.emplace_back(a);
        argv.push_back(config());
        serve = Process::start({.argv = std::move(argv)}, dir / "serve.log");
        REQUIRE_MESSAGE(wait_until([&] { return can_connect("127.0.0.1", port); }, std::chrono::seconds(20)),
                        read_file(dir / "serve.log"));
    }

    [[nodiscard]] std::string config() const { return (dir / "glassgate.toml").string(); }
    [[nodiscard]] std::string serve_log() const {
        return log_lines_ == 0 ? read_file(dir / "serve.log") : tail_file(dir / "serve.log", log_lines_);
    }
    [[nodiscard]] std::vector<std::string> session_ids() const { return gg::harness::session_ids(GG_BINARY, config()); }
    /// The value of one metric series (as printed on /metrics), or -1 when it is absent.
    [[nodiscard]] double metric(const std::string& series) const { return metric_value(admin_port, series); }
    /// The newest session's id once it is closed and its recording sealed (glassgate seals after the client
    /// has gone, so a test that just ran a client waits a moment).
    [[nodiscard]] std::string newest_sealed_session() const {
        std::string last_show;
        const auto id = wait_newest_sealed_session(GG_BINARY, config(), seal_timeout_, &last_show);
        REQUIRE_MESSAGE(id.has_value(), last_show << serve_log());
        return *id;
    }

 private:
    std::vector<std::string> databases_;
    std::size_t log_lines_;
    std::chrono::milliseconds seal_timeout_;
};

}  // namespace gg::harness
