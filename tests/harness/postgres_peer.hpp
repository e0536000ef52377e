// A real PostgreSQL server for integration tests: initdb + postgres in the foreground on 127.0.0.1.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "harness/files.hpp"
#include "harness/process.hpp"

namespace gg::harness {

struct PostgresOptions {
    std::filesystem::path dir{};      ///< empty: a TempDir removed afterwards; else used (created) and kept
    std::string superuser = "postgres";
    bool hostssl_only = false;        ///< pg_hba accepts only TLS on 127.0.0.1 (default: TLS and plain)
    std::vector<std::string> settings{};  ///< extra "name=value" server settings (each passed as -c)
    std::chrono::milliseconds start_timeout{std::chrono::seconds(60)};
};

/// initdb (scram-sha-256, UTF8, superuser password from a pwfile) in a directory owned by the `postgres`
/// user when running as root, a self-signed certificate (CN=localhost, SAN IP:127.0.0.1), then
/// `postgres -D ... -p PORT -c listen_addresses=127.0.0.1 -c ssl=on ...` as a child on a free port.
/// Ready when pg_isready says so. The destructor sends SIGINT (fast shutdown), waits, reaps.
/// Throws PeerError (with the tail of the server log) when it cannot start.
class PostgresPeer : public LoopbackPeer {
 public:
    explicit PostgresPeer(PostgresOptions options = {});
    ~PostgresPeer();

    [[nodiscard]] const std::string& superuser() const noexcept { return options_.superuser; }
    [[nodiscard]] const std::string& superuser_password() const noexcept { return password_; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "data"; }
    [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "postgres.log"; }
    /// The server certificate; self-signed, so it is also the CA for sslmode=verify-full.
    [[nodiscard]] const std::filesystem::path& tls_cert() const noexcept { return cert_.cert; }
    /// Directory of the server's programs (postgres, psql, pgbench, ...), same major version.
    [[nodiscard]] const std::filesystem::path& bindir() const noexcept { return bindir_; }
    /// Pid (= process group) of the postmaster; 0 after stop().
    [[nodiscard]] pid_t pid() const noexcept { return server_.pid(); }

    /// libpq key=value connection string to this server (values quoted).
    [[nodiscard]] std::string conninfo(std::string_view db, std::string_view user, std::string_view password,
                                       std::string_view sslmode = "require") const;
    /// Environment for libpq clients: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE.
    [[nodiscard]] EnvChanges client_env(std::string_view db, std::string_view user, std::string_view password,
                                        std::string_view sslmode = "require") const;

    /// Runs the real psql as the superuser (PGPASSWORD, sslmode=require, -X -q -A -t, ON_ERROR_STOP):
    /// exit code and unaligned tuples-only stdout.
    [[nodiscard]] RunResult psql(std::string_view sql, std::string_view db = "postgres") const;
    /// The same as another role.
    [[nodiscard]] RunResult psql_as(std::string_view user, std::string_view password, std::string_view db,
                                    std::string_view sql, std::string_view sslmode = "require") const;

    /// CREATE ROLE name [LOGIN] PASSWORD '...' (SCRAM verifier). Throws PeerError with psql's output.
    void create_role(std::string_view name, std::string_view password, bool login = true);
    /// CREATE DATABASE name OWNER owner. Throws PeerError with psql's output.
    void create_database(std::string_view name, std::string_view owner);

    /// Fast shutdown now (the destructor does the same).
    void stop();
    /// Starts the server again on the same port and data directory (after stop(): a backend that was down
    /// and comes back). Throws PeerError when it cannot start.
    void start_again();

 private:
    PostgresOptions options_;
    TempDir dir_;
    std::filesystem::path bindir_;
    std::string run_as_;
    std::string password_;
    CertFiles cert_;
    ServerSpec spec_;
    Process server_;
};

/// "name" with embedded quotes doubled (SQL identifier).
[[nodiscard]] std::string sql_identifier(std::string_view name);
/// 'text' with embedded quotes doubled (SQL literal; standard_conforming_strings is on).
[[nodiscard]] std::string sql_literal(std::string_view text);

}  // namespace gg::harness
