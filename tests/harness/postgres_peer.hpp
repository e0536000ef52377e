// A real PostgreSQL server for integration tests: initdb + postgres in the foreground on 127.0.0.1.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
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
///
/// standby_of() makes a streaming standby of a running peer instead (pg_basebackup -R -X stream), for
/// failover tests: promote() it after stopping the primary. pg_hba.conf of every peer accepts replication
/// connections of the superuser from 127.0.0.1 (scram-sha-256).
class PostgresPeer : public LoopbackPeer {
 public:
    explicit PostgresPeer(PostgresOptions options = {});
    ~PostgresPeer();

    /// A hot standby of `primary` streaming from it: the server's own `pg_basebackup -R -X stream -c fast`
    /// (as the postgres user when running as root) into <dir>/data, then `postgres` on a free port with
    /// the primary's settings, certificate and key, superuser and password. Ready when it accepts
    /// (read-only) connections. `dir`: as PostgresOptions::dir. Throws PeerError when it cannot start.
    [[nodiscard]] static std::unique_ptr<PostgresPeer> standby_of(const PostgresPeer& primary,
                                                                  std::filesystem::path dir = {});

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

    /// True while the server is in recovery (a standby not yet promoted). Throws PeerError when psql fails.
    [[nodiscard]] bool in_recovery() const;
    /// The current WAL position: pg_current_wal_lsn() on a primary, pg_last_wal_replay_lsn() (what has been
    /// replayed) on a standby, as text ("0/3000148"). Throws PeerError when psql fails.
    [[nodiscard]] std::string wal_lsn() const;
    /// "Latest checkpoint location" of pg_controldata: after stop() (a clean shutdown), the shutdown
    /// checkpoint, which is the last WAL record the server wrote. Throws PeerError when it cannot be read.
    [[nodiscard]] std::string checkpoint_lsn() const;
    /// On a standby: waits until it has replayed everything `primary` had written when called: its
    /// pg_current_wal_lsn() while it runs, its shutdown checkpoint once stopped (so true after the stop
    /// means no commit of the primary is missing). False when `timeout` passes first.
    [[nodiscard]] bool wait_replayed(const PostgresPeer& primary,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
    /// Promotes a standby: `pg_ctl promote -w`, then waits until pg_is_in_recovery() is false.
    /// Throws PeerError (with the tail of the server log) when it does not complete within `timeout`.
    void promote(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
    struct StandbyOf {
        const PostgresPeer* primary;
    };
    PostgresPeer(StandbyOf standby, PostgresOptions options);
    /// The user to run the server's programs as, and the data directory's parent usable by that user.
    void prepare_dir();
    /// The server spec (postgres -D <data_dir> ... on a port) and its first start.
    void start_first();

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
