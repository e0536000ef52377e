#include "harness/postgres_peer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "harness/net.hpp"

namespace gg::harness {
namespace {

std::string conninfo_value(std::string_view value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    out += '\'';
    return out;
}

TempDir make_dir(const PostgresOptions& options) {
    return options.dir.empty() ? TempDir("gg-pg") : TempDir::keep_at(options.dir);
}

/// `text` between `quote` characters, each one inside doubled: SQL's quoting of identifiers and literals.
std::string quoted(std::string_view text, char quote) {
    std::string out(1, quote);
    for (char c : text) {
        out += c;
        if (c == quote) {
            out += quote;
        }
    }
    out += quote;
    return out;
}

}  // namespace

std::string sql_identifier(std::string_view name) { return quoted(name, '"'); }

std::string sql_literal(std::string_view text) { return quoted(text, '\''); }

PostgresPeer::PostgresPeer(PostgresOptions options) : options_(std::move(options)), dir_(make_dir(options_)) {
    password_ = random_hex(24);
    const auto pwfile = dir_ / "pwfile";
    write_file(pwfile, password_ + "\n", 0600);
    cert_ = make_self_signed_cert(dir_.path(), "server", "localhost");
    prepare_dir();

    const auto initdb = run({(bindir_ / "initdb").string(), "-D", data_dir().string(), "-U", options_.superuser,
                             "--pwfile=" + pwfile.string(), "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
                             "--no-sync", "--no-instructions"},
                            RunOptions{.timeout = std::chrono::seconds(120), .cwd = dir_.path(), .run_as = run_as_});
    std::filesystem::remove(pwfile);
    write_file(dir_ / "initdb.log", initdb.describe(), 0644);
    if (initdb.exit_code != 0) {
        throw PeerError("postgres: initdb failed in " + dir_.path().string() + "\n" + initdb.describe());
    }
    // initdb's pg_hba.conf already accepts replication connections from 127.0.0.1 (scram-sha-256).
    if (options_.hostssl_only) {
        const auto hba = data_dir() / "pg_hba.conf";
        write_file(hba,
                   "# glassgate test peer: TLS only on 127.0.0.1\n"
                   "local all all scram-sha-256\n"
                   "hostssl all all 127.0.0.1/32 scram-sha-256\n"
                   "hostssl replication all 127.0.0.1/32 scram-sha-256\n",
                   0600);
        if (!run_as_.empty()) {
            chown_recursive(hba, run_as_);
        }
    }
    start_first();
}

std::unique_ptr<PostgresPeer> PostgresPeer::standby_of(const PostgresPeer& primary, std::filesystem::path dir) {
    auto options = primary.options_;
    options.dir = std::move(dir);
    return std::unique_ptr<PostgresPeer>(new PostgresPeer(StandbyOf{&primary}, std::move(options)));
}

PostgresPeer::PostgresPeer(StandbyOf standby, PostgresOptions options)
    : options_(std::move(options)), dir_(make_dir(options_)) {
    const PostgresPeer& primary = *standby.primary;
    password_ = primary.password_;
    // The primary's certificate and key: a client verifying one server verifies both.
    cert_ = CertFiles{dir_ / "server.crt", dir_ / "server.key"};
    std::filesystem::copy_file(primary.cert_.cert, cert_.cert, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(primary.cert_.key, cert_.key, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(cert_.key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    prepare_dir();

    // -R writes standby.signal and primary_conninfo (with the password libpq used) into the copy;
    // -X stream copies the WAL written meanwhile; -c fast does not wait for the next checkpoint.
    auto env = primary.client_env("postgres", options_.superuser, password_);
    const auto backup = run({(bindir_ / "pg_basebackup").string(), "-h", "127.0.0.1", "-p",
                             std::to_string(primary.port()), "-U", options_.superuser, "-D", data_dir().string(),
                             "-R", "-X", "stream", "-c", "fast", "--no-sync", "-w"},
                            RunOptions{.env = std::move(env),
                                       .timeout = std::chrono::seconds(120),
                                       .cwd = dir_.path(),
                                       .run_as = run_as_});
    write_file(dir_ / "basebackup.log", backup.describe(), 0644);
    if (backup.exit_code != 0) {
        throw PeerError("postgres: pg_basebackup of 127.0.0.1:" + std::to_string(primary.port()) + " into " +
                        data_dir().string() + " failed\n" + backup.describe() + "\nprimary log:\n" +
                        tail_file(primary.log_file()));
    }
    start_first();
}

void PostgresPeer::prepare_dir() {
    bindir_ = postgres_bindir();
    // initdb and postgres refuse to run as root: as root, they run as the `postgres` user in a directory
    // that user owns (mkdtemp made it 0700 root).
    run_as_ = geteuid() == 0 ? "postgres" : "";
    if (!run_as_.empty()) {
        chmod(dir_.path().c_str(), 0700);
        chown_recursive(dir_.path(), run_as_);
        if (run({"test", "-w", dir_.path().string()}, RunOptions{.timeout = std::chrono::seconds(10),
                                                                 .run_as = run_as_})
                .exit_code != 0) {
            throw PeerError("postgres: " + dir_.path().string() + " is not reachable by the " + run_as_ +
                            " user (every parent directory needs o+x; /root is 0700): use a directory "
                            "under /tmp");
        }
    }
}

void PostgresPeer::start_first() {
    spec_ = ServerSpec{.name = "postgres",
                    .log_file = log_file(),
                    .stop_signal = SIGINT,  // fast shutdown: roll back open transactions, close sessions, checkpoint
                    .grace = std::chrono::seconds(30),
                    .timeout = options_.start_timeout};
    spec_.make = [this](std::uint16_t port) {
        std::vector<std::string> argv = {
            (bindir_ / "postgres").string(),
            "-D", data_dir().string(),
            "-p", std::to_string(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=" + dir_.path().string(),
            "-c", "ssl=on",
            "-c", "ssl_cert_file=" + cert_.cert.string(),
            "-c", "ssl_key_file=" + cert_.key.string(),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "log_connections=on",
            "-c", "log_line_prefix=%m [%p] %q%u@%d ",
        };
        for (const auto& setting : options_.settings) {
            argv.push_back("-c");
            argv.push_back(setting);
        }
        return SpawnOptions{.argv = std::move(argv), .cwd = dir_.path(), .run_as = run_as_};
    };
    spec_.ready = [this](std::uint16_t port) {
        return run({(bindir_ / "pg_isready").string(), "-q", "-h", "127.0.0.1", "-p", std::to_string(port),
                    "-t", "2"},
                   RunOptions{.timeout = std::chrono::seconds(5)})
                   .exit_code == 0;
    };
    auto started = start_server(spec_);
    server_ = std::move(started.process);
    port_ = started.port;
}

PostgresPeer::~PostgresPeer() { stop(); }

void PostgresPeer::stop() { server_.stop(); }

void PostgresPeer::start_again() {
    server_.stop();
    auto spec = spec_;
    spec.fixed_port = port_;
    server_ = start_server(spec).process;
}

bool PostgresPeer::in_recovery() const {
    const auto r = psql("select pg_is_in_recovery()");
    if (r.exit_code != 0) {
        throw PeerError("postgres: select pg_is_in_recovery() failed:\n" + r.describe());
    }
    return r.out == "t\n";
}

std::string PostgresPeer::wal_lsn() const {
    const auto r = psql("select case when pg_is_in_recovery() then pg_last_wal_replay_lsn() "
                        "else pg_current_wal_lsn() end");
    if (r.exit_code != 0 || r.out.size() < 2) {
        throw PeerError("postgres: cannot read the WAL position:\n" + r.describe());
    }
    return r.out.substr(0, r.out.find('\n'));
}

std::string PostgresPeer::checkpoint_lsn() const {
    const auto r = run({(bindir_ / "pg_controldata").string(), "-D", data_dir().string()},
                       RunOptions{.env = {.set = {{"LC_ALL", "C"}}}, .timeout = std::chrono::seconds(30),
                                  .cwd = dir_.path(), .run_as = run_as_});
    constexpr std::string_view label = "Latest checkpoint location:";
    const auto at = r.out.find(label);
    if (r.exit_code != 0 || at == std::string::npos) {
        throw PeerError("postgres: pg_controldata gave no checkpoint location:\n" + r.describe());
    }
    const auto begin = r.out.find_first_not_of(" \t", at + label.size());
    const auto end = r.out.find('\n', begin);
    return r.out.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

bool PostgresPeer::wait_replayed(const PostgresPeer& primary, std::chrono::milliseconds timeout) const {
    const auto target = primary.pid() != 0 ? primary.wal_lsn() : primary.checkpoint_lsn();
    return wait_until(
        [&] {
            return psql("select pg_last_wal_replay_lsn() >= " + sql_literal(target) + "::pg_lsn").out == "t\n";
        },
        timeout, std::chrono::milliseconds(100));
}

void PostgresPeer::promote(std::chrono::milliseconds timeout) {
    const auto seconds = std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
    const auto r = run({(bindir_ / "pg_ctl").string(), "promote", "-D", data_dir().string(), "-w", "-t",
                        std::to_string(seconds)},
                       RunOptions{.timeout = timeout + std::chrono::seconds(10), .cwd = dir_.path(), .run_as = run_as_});
    if (r.exit_code != 0) {
        throw PeerError("postgres: pg_ctl promote failed:\n" + r.describe() + "\n" + tail_file(log_file()));
    }
    if (!wait_until([&] { return psql("select pg_is_in_recovery()").out == "f\n"; }, timeout,
                    std::chrono::milliseconds(100))) {
        throw PeerError("postgres: still in recovery after pg_ctl promote\n" + tail_file(log_file()));
    }
}

std::string PostgresPeer::conninfo(std::string_view db, std::string_view user, std::string_view password,
                                   std::string_view sslmode) const {
    std::string out = "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + conninfo_value(db) +
                      " user=" + conninfo_value(user);
    if (!password.empty()) {
        out += " password=" + conninfo_value(password);
    }
    out += " sslmode=" + std::string(sslmode);
    return out;
}

EnvChanges PostgresPeer::client_env(std::string_view db, std::string_view user, std::string_view password,
                                    std::string_view sslmode) const {
    return EnvChanges{.set = {{"PGHOST", "127.0.0.1"},
                              {"PGPORT", std::to_string(port_)},
                              {"PGDATABASE", std::string(db)},
                              {"PGUSER", std::string(user)},
                              {"PGPASSWORD", std::string(password)},
                              {"PGSSLMODE", std::string(sslmode)},
                              {"PGCONNECT_TIMEOUT", "10"}},
                      .unset = {"PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGOPTIONS"}};
}

RunResult PostgresPeer::psql(std::string_view sql, std::string_view db) const {
    return psql_as(options_.superuser, password_, db, sql);
}

RunResult PostgresPeer::psql_as(std::string_view user, std::string_view password, std::string_view db,
                                std::string_view sql, std::string_view sslmode) const {
    return run({(bindir_ / "psql").string(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                conninfo(db, user, "", sslmode), "-c", std::string(sql)},
               RunOptions{.env = client_env(db, user, password, sslmode), .timeout = std::chrono::seconds(60)});
}

void PostgresPeer::create_role(std::string_view name, std::string_view password, bool login) {
    const auto result = psql("CREATE ROLE " + sql_identifier(name) + (login ? " LOGIN" : " NOLOGIN") +
                             " PASSWORD " + sql_literal(password));
    if (result.exit_code != 0) {
        throw PeerError("postgres: CREATE ROLE " + std::string(name) + " failed:\n" + result.describe());
    }
}

void PostgresPeer::create_database(std::string_view name, std::string_view owner) {
    const auto result =
        psql("CREATE DATABASE " + sql_identifier(name) + " OWNER " + sql_identifier(owner));
    if (result.exit_code != 0) {
        throw PeerError("postgres: CREATE DATABASE " + std::string(name) + " failed:\n" + result.describe());
    }
}

}  // namespace gg::harness
