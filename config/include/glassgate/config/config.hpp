#pragma once
// The typed configuration model. Plain structs with defaults: the struct is the documentation,
// config/glassgate.example.toml explains every key. Loaded and validated once by the loader
// (loader.hpp), then shared read-only. toml++ never appears in this header.
//
// Keys marked [restart] cannot change while `glassgate serve` runs.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gg::config {

using Duration = std::chrono::milliseconds;

/// A TCP socket address: IPv4/IPv6 literal or host name, and a port. IPv6 is written "[::1]:6432".
struct SocketAddress {
    std::string host;
    std::uint16_t port = 0;
    /// "host:port", with brackets around IPv6 literals.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

struct ServerConfig {
    std::filesystem::path state_dir = "var";           ///< [restart] sessions index, recordings, audit, secrets
    std::filesystem::path admin_socket = "var/admin.sock";  ///< [restart] local control socket for the CLI
    Duration shutdown_grace = std::chrono::seconds(10);  ///< how long sessions get to finish on SIGTERM
    std::size_t recording_buffer_bytes = 4u << 20;     ///< per-session bound of unflushed recording data
    /// New sessions are refused while the file system of the recordings directory or of the state
    /// store has less than this available (0: only a write failure refuses them).
    std::uint64_t min_free_bytes = 8u << 20;
    /// [restart] This instance's name in a deployment of several on a shared store: shown by `status`
    /// and `sessions list`, and used to tell its sessions from the others'. Default: the host name.
    std::string instance;
    /// [restart] The master key every other key derives from; absent: <state_dir>/master.key. The
    /// instances of one deployment share it (docs/ha.md, "Keys").
    std::optional<std::filesystem::path> master_key_file;
    /// With a shared store: an instance whose heartbeat (every second) has not changed for this long is
    /// taken for dead and its sessions are closed by another instance (docs/ha.md). [restart]
    Duration instance_timeout = std::chrono::seconds(10);
    /// The master key file in effect.
    [[nodiscard]] std::filesystem::path master_key_path() const {
        return master_key_file ? *master_key_file : state_dir / "master.key";
    }
};

/// Where the state lives: the embedded SQLite file in the state directory (default) or a PostgreSQL
/// database shared by several instances.
struct StoreConfig {
    /// [restart] libpq connection string of the shared store (key=value or postgresql:// URI); absent:
    /// SQLite in the state directory. Never holds a password (use passfile= or ~/.pgpass).
    std::optional<std::string> postgres;
};

struct ListenConfig {
    std::optional<SocketAddress> postgres;  ///< [restart] absent: no PostgreSQL listener
    std::optional<SocketAddress> ssh;       ///< [restart] absent: no SSH listener
    bool allow_plaintext = false;           ///< PostgreSQL clients without TLS (loopback demos only)
    Duration postgres_auth_timeout = std::chrono::seconds(10);  ///< startup packet and password must arrive within it
};

struct TlsConfig {
    std::filesystem::path cert_file;  ///< PEM certificate chain presented to PostgreSQL clients
    std::filesystem::path key_file;   ///< PEM private key
};

struct IdpConfig {
    std::string issuer;                       ///< exact issuer; discovery at <issuer>/.well-known/openid-configuration
    std::string client_id;
    std::vector<std::string> audience;        ///< accepted `aud` values; defaults to [client_id]
    std::string username_claim = "sub";
    std::string groups_claim = "groups";
    Duration probe_interval = std::chrono::seconds(5);
    Duration probe_timeout = std::chrono::seconds(2);
    int unreachable_after = 3;                ///< consecutive failed probes before `unreachable`
    int healthy_after = 2;                    ///< consecutive good probes before `healthy` again
    Duration clock_skew = std::chrono::seconds(60);
    std::optional<std::filesystem::path> ca_file;  ///< extra CA bundle for the IdP's TLS certificate
};

/// The SSH listener's own settings (the listener address is [listen] ssh).
struct SshConfig {
    std::optional<std::filesystem::path> host_key;  ///< [restart] Ed25519 host key; absent: <state_dir>/ssh_host_ed25519_key,
                                                    ///< generated (0600) on first start
    Duration login_grace = std::chrono::seconds(30); ///< time to start signing in after connecting
    std::optional<Duration> sso_cache;               ///< re-admit identity + client key without a new approval; absent: off
    std::vector<std::string> env_allow = {"LANG", "LC_*"};  ///< client `env` requests forwarded (globs); others refused
    int max_auth_failures = 5;                       ///< failed sign-ins per source address before backoff
};

struct AdminConfig {
    std::optional<SocketAddress> listen;  ///< [restart] HTTP listener for /metrics and /healthz; absent: off
};

enum class Protocol { postgres, ssh };

enum class BackendTls { require, prefer, disable };
/// How much COPY data a PostgreSQL recording keeps: `capped` (up to record_rows CopyData messages per
/// COPY, each within record_value_bytes) or `full`. Every COPY's size and SHA-256 are recorded either way.
enum class RecordCopy { capped, full };

struct Target {
    std::string name;
    Protocol protocol = Protocol::postgres;
    SocketAddress address;
    std::string backend_user;
    std::vector<std::string> allow;          ///< identities, or "group:NAME"
    std::optional<Duration> max_session;     ///< hard cap per session; absent: no cap
    std::optional<Duration> warn_before;     ///< warning ahead of the cap; set by the loader whenever max_session
                                             ///< is: default 5m if max_session >= 10m, else max_session / 2
    std::optional<Duration> idle_timeout;    ///< absent: off
    // PostgreSQL targets
    std::string database;                    ///< database on the backend (required for postgres)
    std::vector<std::string> databases;      ///< other databases a client may pick with dbname=target/db
    BackendTls tls = BackendTls::prefer;
    std::optional<std::filesystem::path> ca_file;
    int record_rows = 100;                   ///< rows recorded per statement: 0 none, -1 all
    int record_value_bytes = 64 * 1024;      ///< a message larger than this is recorded as its first bytes up to it,
                                             ///< its size and SHA-256; -1: every message whole
    RecordCopy record_copy = RecordCopy::capped;  ///< COPY data: up to record_rows messages per COPY, or all of it
    bool redact_params = false;              ///< record every Bind value as "<redacted: N bytes>"
    std::vector<std::string> redact_params_for;  ///< regular expressions (ECMAScript, case-insensitive) searched in
                                             ///< statement text: Bind values for matching statements are redacted
    int pool_size = 0;                       ///< idle backend connections kept for reuse by later SSO sessions
                                             ///< (reset with DISCARD ALL in between); 0: every session connects
    Duration pool_idle = std::chrono::seconds(60);  ///< how long an idle pooled connection is kept
    // SSH targets
    std::string host_key;                    ///< pinned backend host key, "ssh-ed25519 AAAA..." (required for ssh)
    bool allow_port_forwarding = false;      ///< client `direct-tcpip` channels (ssh -L) relayed through the backend
    bool record_sftp_contents = false;       ///< record SFTP file contents, not just operations, sizes and hashes
    std::string authorized_keys = "~/.ssh/authorized_keys";  ///< backend_user's authorized_keys file on the backend,
                                             ///< rewritten by key rotation ("~/" = the user's home)
};

enum class FallbackTrigger { idp_unreachable, declared };

struct FallbackRule {
    std::string name;
    FallbackTrigger trigger = FallbackTrigger::idp_unreachable;
    std::vector<std::string> accounts;
    std::vector<std::string> targets;        ///< target names or globs ("web*")
    Duration max_session = std::chrono::minutes(30);
    Duration warn_before = std::chrono::minutes(5);  ///< default as for Target::warn_before
    bool require_reason = true;
    bool rotate_on_close = true;
    std::vector<std::string> notify;         ///< webhook URLs
};

struct LogConfig {
    std::string level = "info";              ///< trace, debug, info, warn, error
    std::string format = "text";             ///< text | json (the --log-format flag overrides)
};

struct Config {
    std::filesystem::path source;            ///< absolute path of the file this was loaded from
    ServerConfig server;
    StoreConfig store;
    ListenConfig listen;
    std::optional<TlsConfig> tls;
    std::optional<IdpConfig> idp;
    AdminConfig admin;
    SshConfig ssh;
    LogConfig log;
    std::vector<Target> targets;
    std::vector<FallbackRule> fallbacks;

    /// The target called `name`, or nullptr.
    [[nodiscard]] const Target* find_target(std::string_view name) const noexcept;
};

std::string_view to_string(Protocol p) noexcept;
std::string_view to_string(BackendTls t) noexcept;
std::string_view to_string(FallbackTrigger t) noexcept;

}  // namespace gg::config
