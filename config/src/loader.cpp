// Loads glassgate.toml in three passes, collecting every problem:
//   1. toml++ parses the text (a syntax error is the only issue that stops the load early);
//   2. each section is read through TableReader: unknown keys, types, ranges, required keys and the
//      rules that concern one table only (protocol-specific keys of a target);
//   3. apply_derived_defaults() then validate(): the rules that relate several keys or tables.
// The only I/O is reading the file in load_config_file().

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <memory>
#include <regex>
#include <system_error>
#include <unordered_map>

#include "glassgate/config/loader.hpp"

#include "glassgate/protocols/text.hpp"
#include "toml_reader.hpp"

namespace gg::config {

std::string Issue::to_string() const {
    std::string out = file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
    if (!key_path.empty()) {
        out += key_path;
        out += ": ";
    }
    out += message;
    return out;
}

namespace {

namespace fs = std::filesystem;
using detail::child_path;
using detail::Diagnostics;
using detail::index_path;
using detail::Pos;
using detail::TableReader;
using detail::ZeroDuration;

using namespace std::chrono_literals;

// The schema: every key the loader accepts, per table. Anything else is an error.
constexpr std::string_view root_keys[] = {"server", "store", "listen", "tls", "idp", "admin", "ssh", "log", "target", "fallback"};
constexpr std::string_view ssh_keys[] = {"host_key", "login_grace", "sso_cache", "env_allow", "max_auth_failures"};
constexpr std::string_view server_keys[] = {"state_dir", "admin_socket", "shutdown_grace", "recording_buffer_bytes",
                                            "min_free_bytes", "instance", "master_key_file",
                                            "instance_timeout"};
constexpr std::string_view store_keys[] = {"postgres"};
constexpr std::string_view listen_keys[] = {"postgres", "ssh", "allow_plaintext", "postgres_auth_timeout"};
constexpr std::string_view tls_keys[] = {"cert_file", "key_file"};
constexpr std::string_view idp_keys[] = {"issuer",        "client_id",     "audience",          "username_claim",
                                         "groups_claim",  "probe_interval", "probe_timeout",    "unreachable_after",
                                         "healthy_after", "clock_skew",    "ca_file"};
constexpr std::string_view admin_keys[] = {"listen"};
constexpr std::string_view log_keys[] = {"level", "format"};
constexpr std::string_view target_keys[] = {"name",        "protocol",    "address",      "backend_user", "allow",
                                            "max_session", "warn_before", "idle_timeout", "database",     "databases",
                                            "tls",         "ca_file",     "record_rows",  "host_key",     "allow_port_forwarding",
                                            "record_sftp_contents", "authorized_keys", "redact_params", "redact_params_for",
                                            "pool_size",   "pool_idle",   "record_value_bytes", "record_copy"};
constexpr std::string_view postgres_only_keys[] = {"database", "databases", "tls",          "ca_file",
                                                   "record_rows", "redact_params", "redact_params_for",
                                                   "pool_size",   "pool_idle",   "record_value_bytes", "record_copy"};
constexpr std::string_view fallback_keys[] = {"name",        "trigger",        "accounts",        "targets", "max_session",
                                              "warn_before", "require_reason", "rotate_on_close", "notify"};

// Value lists, in enumerator order.
constexpr std::string_view protocol_names[] = {"postgres", "ssh"};
constexpr std::string_view backend_tls_names[] = {"require", "prefer", "disable"};
constexpr std::string_view record_copy_names[] = {"capped", "full"};
constexpr std::string_view trigger_names[] = {"idp_unreachable", "declared"};
constexpr std::string_view log_levels[] = {"trace", "debug", "info", "warn", "error"};
constexpr std::string_view log_formats[] = {"text", "json"};

constexpr std::size_t max_file_bytes = 16u << 20;

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

bool is_alnum(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_name_char(char c) noexcept { return is_alnum(c) || c == '.' || c == '_' || c == '-'; }
bool is_glob(std::string_view s) noexcept { return s.find_first_of("*?") != std::string_view::npos; }

/// Target and fallback names appear in dbname=target/db, ssh user@target, file names and the CLI:
/// [A-Za-z0-9._-]+, and not "." or "..". Empty when fine, otherwise the reason.
std::string name_problem(std::string_view name) {
    for (const char c : name) {
        if (!is_name_char(c)) {
            return "invalid character '" + std::string(1, c) + "' in name (allowed: A-Z a-z 0-9 . _ -)";
        }
    }
    if (name == "." || name == "..") {
        return "name must not be '.' or '..'";
    }
    return {};
}

/// A target pattern is a name that may contain the wildcards '*' and '?'.
std::string pattern_problem(std::string_view pattern) {
    for (const char c : pattern) {
        if (!is_name_char(c) && c != '*' && c != '?') {
            return "invalid character '" + std::string(1, c) + "' in target name or pattern";
        }
    }
    return {};
}

/// "http://..." or "https://..." with something after the scheme and no whitespace.
std::string url_problem(std::string_view url) {
    std::string_view rest;
    if (url.starts_with("https://")) {
        rest = url.substr(8);
    } else if (url.starts_with("http://")) {
        rest = url.substr(7);
    } else {
        return "must start with http:// or https://";
    }
    if (rest.empty() || rest.front() == '/') {
        return "missing host after the scheme";
    }
    if (url.find_first_of(" \t\r\n") != std::string_view::npos) {
        return "must not contain whitespace";
    }
    return {};
}

std::optional<std::string> decode_base64(std::string_view in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (in.empty() || in.size() % 4 != 0) {
        return std::nullopt;
    }
    std::size_t padding = 0;
    while (padding < 2 && in.size() > padding && in[in.size() - 1 - padding] == '=') {
        ++padding;
    }
    std::string out;
    unsigned bits = 0;
    int nbits = 0;
    for (std::size_t i = 0; i < in.size() - padding; ++i) {
        const int v = value(in[i]);
        if (v < 0) {
            return std::nullopt;
        }
        bits = (bits << 6) | static_cast<unsigned>(v);
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out += static_cast<char>((bits >> nbits) & 0xFFu);
        }
    }
    return out;
}

/// A pinned SSH host key: "<type> <base64 blob>", as in the second and third fields of a
/// known_hosts line. The blob (RFC 4253 section 6.6) starts with the key type again, which
/// catches a truncated paste or a type copied from another line.
std::string host_key_problem(std::string_view key) {
    static const std::string expected = "expected \"<type> <base64>\", e.g. \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5...\"";
    const auto space = key.find(' ');
    if (space == std::string_view::npos || space == 0) {
        return expected;
    }
    const std::string_view type = key.substr(0, space);
    const std::string_view blob = key.substr(space + 1);
    for (const char c : type) {
        if (!is_alnum(c) && c != '-' && c != '@' && c != '.') {
            return expected;
        }
    }
    if (blob.empty() || blob.find_first_of(" \t") != std::string_view::npos) {
        return expected + " (exactly two fields, no comment)";
    }
    const auto decoded = decode_base64(blob);
    if (!decoded) {
        return "key data is not valid base64";
    }
    if (decoded->size() < 4) {
        return "key data is too short to be an SSH public key";
    }
    const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>((*decoded)[i])); };
    const std::size_t type_length = (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
    if (type_length > decoded->size() - 4) {
        return "key data is not an SSH public key";
    }
    const std::string_view blob_type = std::string_view(*decoded).substr(4, type_length);
    if (blob_type != type) {
        return "key data is a " + in_quotes(blob_type) + " key, not " + in_quotes(type);
    }
    return {};
}

bool valid_instance_name(std::string_view v) {
    if (v.empty() || v.size() > 64) return false;
    return std::all_of(v.begin(), v.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_';
    });
}

/// The host name, cut to a valid instance name ("glassgate" if there is none).
std::string default_instance_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "glassgate";
    std::string name;
    for (const char* p = buf; *p && name.size() < 64; ++p) {
        const char c = *p;
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '-' || c == '_';
        name += ok ? c : '_';
    }
    return name.empty() ? "glassgate" : name;
}

/// Why a [store] postgres connection string is refused ("" if it is acceptable): a password written
/// into the configuration (key=value `password=...` or a URI's user:password@ or ?password=).
std::string conninfo_problem(std::string_view c) {
    const auto lower = [](std::string_view s) {
        std::string out(s);
        for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return out;
    };
    const std::string l = lower(c);
    const std::string_view secret_hint =
        "a password must not be written in the configuration: use passfile= (or ~/.pgpass), a client certificate "
        "(sslcert=/sslkey=) or PGPASSFILE";
    if (l.starts_with("postgresql://") || l.starts_with("postgres://")) {
        const auto rest = std::string_view(l).substr(l.find("://") + 3);
        const auto authority = rest.substr(0, rest.find_first_of("/?"));
        if (const auto at = authority.rfind('@'); at != std::string_view::npos &&
                                                 authority.substr(0, at).find(':') != std::string_view::npos) {
            return std::string(secret_hint) + " (the URI has user:password@)";
        }
        if (const auto q = rest.find('?'); q != std::string_view::npos) {
            const auto query = rest.substr(q + 1);
            if (query.starts_with("password=") || query.find("&password=") != std::string_view::npos) {
                return std::string(secret_hint);
            }
        }
        return {};
    }
    // key = value pairs: a keyword "password" anywhere (values may be quoted; keywords are not).
    std::size_t i = 0;
    while (i < l.size()) {
        while (i < l.size() && std::isspace(static_cast<unsigned char>(l[i]))) ++i;
        const auto key_start = i;
        while (i < l.size() && l[i] != '=' && !std::isspace(static_cast<unsigned char>(l[i]))) ++i;
        const auto key = std::string_view(l).substr(key_start, i - key_start);
        while (i < l.size() && std::isspace(static_cast<unsigned char>(l[i]))) ++i;
        if (i >= l.size() || l[i] != '=') {
            if (key.empty()) break;
            return "expected keyword=value, found '" + std::string(c.substr(key_start, i - key_start)) + "'";
        }
        ++i;  // '='
        while (i < l.size() && std::isspace(static_cast<unsigned char>(l[i]))) ++i;
        if (i < l.size() && l[i] == '\'') {
            ++i;
            while (i < l.size() && l[i] != '\'') i += (l[i] == '\\') ? 2 : 1;
            if (i >= l.size()) return "unterminated quoted value";
            ++i;
        } else {
            while (i < l.size() && !std::isspace(static_cast<unsigned char>(l[i]))) i += (l[i] == '\\') ? 2 : 1;
        }
        if (key == "password") return std::string(secret_hint);
    }
    return {};
}

/// Default warning ahead of a session cap: 5m when the cap is at least 10m, otherwise half the cap.
Duration default_warn_before(Duration max_session) {
    return max_session >= Duration(10min) ? Duration(5min) : max_session / 2;
}

/// Reads the sections into a Config. Single use.
class Reader {
public:
    Reader(Diagnostics& diag, fs::path base) : diag_(diag), base_(std::move(base)) {}

    Config read(const toml::table& doc) {
        config_.server.state_dir = (base_ / config_.server.state_dir).lexically_normal();
        config_.server.admin_socket = (base_ / config_.server.admin_socket).lexically_normal();

        TableReader root(diag_, doc, "", root_keys);
        if (const auto* t = root.read_table("server")) {
            read_server(*t);
        }
        if (const auto* t = root.read_table("store")) {
            TableReader store(diag_, *t, "store", store_keys);
            if (auto conninfo = store.read_string("postgres")) {
                if (auto problem = conninfo_problem(*conninfo); !problem.empty()) {
                    store.error("postgres", std::move(problem));
                } else {
                    config_.store.postgres = std::move(*conninfo);
                }
            }
        }
        if (config_.server.instance.empty()) config_.server.instance = default_instance_name();
        if (const auto* t = root.read_table("listen")) {
            read_listen(*t);
        }
        if (const auto* t = root.read_table("tls")) {
            read_tls(*t);
        }
        if (const auto* t = root.read_table("idp")) {
            read_idp(*t);
        }
        if (const auto* t = root.read_table("admin")) {
            TableReader admin(diag_, *t, "admin", admin_keys);
            config_.admin.listen = admin.read_address("listen");
        }
        if (const auto* t = root.read_table("ssh")) {
            read_ssh(*t);
        }
        if (const auto* t = root.read_table("log")) {
            TableReader log(diag_, *t, "log", log_keys);
            if (auto v = log.read_choice("level", log_levels)) {
                config_.log.level = std::string(log_levels[*v]);
            }
            if (auto v = log.read_choice("format", log_formats)) {
                config_.log.format = std::string(log_formats[*v]);
            }
        }
        // Every element gets a slot, valid or not, so that target[i] in an issue is config_.targets[i].
        if (const auto* array = root.read_array_of_tables("target")) {
            for (std::size_t i = 0; i < array->size(); ++i) {
                const std::string path = index_path("target", i);
                const auto* t = detail::element_table(diag_, *array, i, path, "target");
                config_.targets.push_back(t != nullptr ? read_target(*t, path) : Target{});
            }
        }
        if (const auto* array = root.read_array_of_tables("fallback")) {
            for (std::size_t i = 0; i < array->size(); ++i) {
                const std::string path = index_path("fallback", i);
                const auto* t = detail::element_table(diag_, *array, i, path, "fallback");
                config_.fallbacks.push_back(t != nullptr ? read_fallback(*t, path) : FallbackRule{});
            }
        }
        return std::move(config_);
    }

private:
    template <typename T>
    static void assign(T& field, std::optional<T> value) {
        if (value) {
            field = std::move(*value);
        }
    }

    // Reads a required key with `read`, reporting it when absent.
    template <typename Read>
    auto required(TableReader& t, std::string_view key, Read read) {
        auto value = read();
        if (!value && !t.has(key)) {
            t.missing(key);
        }
        return value;
    }

    void read_ssh(const toml::table& table) {
        TableReader t(diag_, table, "ssh", ssh_keys);
        config_.ssh.host_key = t.read_path("host_key", base_);
        assign(config_.ssh.login_grace, t.read_duration("login_grace", ZeroDuration::rejected));
        config_.ssh.sso_cache = t.read_duration("sso_cache", ZeroDuration::rejected);
        assign(config_.ssh.env_allow, t.read_strings("env_allow"));
        if (auto v = t.read_integer("max_auth_failures", 1, 1000)) {
            config_.ssh.max_auth_failures = static_cast<int>(*v);
        }
    }

    void read_server(const toml::table& table) {
        TableReader t(diag_, table, "server", server_keys);
        assign(config_.server.state_dir, t.read_path("state_dir", base_));
        assign(config_.server.admin_socket, t.read_path("admin_socket", base_));
        assign(config_.server.shutdown_grace, t.read_duration("shutdown_grace", ZeroDuration::allowed));
        if (auto v = t.read_integer("recording_buffer_bytes", 1, LLONG_MAX)) {
            config_.server.recording_buffer_bytes = static_cast<std::size_t>(*v);
        }
        if (auto v = t.read_integer("min_free_bytes", 0, LLONG_MAX)) {
            config_.server.min_free_bytes = static_cast<std::uint64_t>(*v);
        }
        if (auto v = t.read_string("instance")) {
            if (!valid_instance_name(*v)) {
                t.error("instance", "must be 1 to 64 characters of letters, digits, '.', '-' and '_'");
            } else {
                config_.server.instance = std::move(*v);
            }
        }
        config_.server.master_key_file = t.read_path("master_key_file", base_);
        if (auto d = t.read_duration("instance_timeout", ZeroDuration::rejected)) {
            if (*d < Duration(std::chrono::seconds(2))) {
                t.error("instance_timeout", "must be at least 2s (heartbeats are sent every second)");
            } else {
                config_.server.instance_timeout = *d;
            }
        }
    }

    void read_listen(const toml::table& table) {
        TableReader t(diag_, table, "listen", listen_keys);
        config_.listen.postgres = t.read_address("postgres");
        config_.listen.ssh = t.read_address("ssh");
        assign(config_.listen.allow_plaintext, t.read_bool("allow_plaintext"));
        assign(config_.listen.postgres_auth_timeout, t.read_duration("postgres_auth_timeout", ZeroDuration::rejected));
    }

    void read_tls(const toml::table& table) {
        TableReader t(diag_, table, "tls", tls_keys);
        TlsConfig tls;
        assign(tls.cert_file, required(t, "cert_file", [&] { return t.read_path("cert_file", base_); }));
        assign(tls.key_file, required(t, "key_file", [&] { return t.read_path("key_file", base_); }));
        config_.tls = std::move(tls);
    }

    void read_idp(const toml::table& table) {
        TableReader t(diag_, table, "idp", idp_keys);
        IdpConfig idp;
        if (auto issuer = required(t, "issuer", [&] { return t.read_string("issuer"); })) {
            if (auto problem = url_problem(*issuer); !problem.empty()) {
                t.error("issuer", std::move(problem));
            } else if (issuer->ends_with('/')) {
                // The issuer is compared byte for byte with the token's `iss`; providers write it
                // without the trailing slash, and discovery appends "/.well-known/...".
                t.error("issuer", "must not end with '/'");
            } else {
                idp.issuer = std::move(*issuer);
            }
        }
        assign(idp.client_id, required(t, "client_id", [&] { return t.read_string("client_id"); }));
        if (auto audience = t.read_strings("audience", /*single=*/true)) {
            if (audience->empty()) {
                t.error("audience", "must not be empty (omit the key to accept only client_id)");
            }
            idp.audience = std::move(*audience);
        } else if (!t.has("audience") && !idp.client_id.empty()) {
            idp.audience = {idp.client_id};
        }
        assign(idp.username_claim, t.read_string("username_claim"));
        assign(idp.groups_claim, t.read_string("groups_claim"));
        assign(idp.probe_interval, t.read_duration("probe_interval", ZeroDuration::rejected));
        assign(idp.probe_timeout, t.read_duration("probe_timeout", ZeroDuration::rejected));
        if (auto v = t.read_integer("unreachable_after", 1, INT_MAX)) {
            idp.unreachable_after = static_cast<int>(*v);
        }
        if (auto v = t.read_integer("healthy_after", 1, INT_MAX)) {
            idp.healthy_after = static_cast<int>(*v);
        }
        assign(idp.clock_skew, t.read_duration("clock_skew", ZeroDuration::allowed));
        idp.ca_file = t.read_path("ca_file", base_);
        config_.idp = std::move(idp);
    }

    Target read_target(const toml::table& table, const std::string& path) {
        TableReader t(diag_, table, path, target_keys);
        Target target;
        if (auto name = required(t, "name", [&] { return t.read_string("name"); })) {
            if (auto problem = name_problem(*name); !problem.empty()) {
                t.error("name", std::move(problem));
            }
            target.name = std::move(*name);  // kept even when invalid, so fallbacks still resolve
        }
        std::optional<Protocol> protocol;
        if (auto v = required(t, "protocol", [&] { return t.read_choice("protocol", protocol_names); })) {
            protocol = static_cast<Protocol>(*v);
            target.protocol = *protocol;
        }
        assign(target.address, required(t, "address", [&] { return t.read_address("address"); }));
        assign(target.backend_user, required(t, "backend_user", [&] { return t.read_string("backend_user"); }));
        assign(target.allow, t.read_strings("allow"));
        target.max_session = t.read_duration("max_session", ZeroDuration::rejected);
        target.warn_before = t.read_duration("warn_before", ZeroDuration::allowed);
        target.idle_timeout = t.read_duration("idle_timeout", ZeroDuration::rejected);

        // Protocol-specific keys. With an unknown protocol (missing or invalid, already reported)
        // every key is type-checked but none is required or refused.
        if (protocol == Protocol::ssh) {
            for (const auto key : postgres_only_keys) {
                if (t.has(key)) {
                    t.error(key, "key " + in_quotes(key) + " is not allowed for ssh targets (postgres only)");
                }
            }
        } else {
            if (protocol == Protocol::postgres) {
                assign(target.database, required(t, "database", [&] { return t.read_string("database"); }));
            } else {
                assign(target.database, t.read_string("database"));
            }
            assign(target.databases, t.read_strings("databases"));
            if (auto v = t.read_choice("tls", backend_tls_names)) {
                target.tls = static_cast<BackendTls>(*v);
            }
            target.ca_file = t.read_path("ca_file", base_);
            if (auto v = t.read_integer("record_rows", -1, INT_MAX)) {
                target.record_rows = static_cast<int>(*v);
            }
            if (auto v = t.read_integer("record_value_bytes", -1, INT_MAX)) {
                if (*v >= 0 && *v < 1024) {
                    t.error("record_value_bytes", "must be -1 (no cap) or at least 1024, got " + std::to_string(*v));
                } else {
                    target.record_value_bytes = static_cast<int>(*v);
                }
            }
            if (auto v = t.read_choice("record_copy", record_copy_names)) {
                target.record_copy = static_cast<RecordCopy>(*v);
            }
            assign(target.redact_params, t.read_bool("redact_params"));
            assign(target.redact_params_for, t.read_strings("redact_params_for"));
            if (auto v = t.read_integer("pool_size", 0, 1000)) {
                target.pool_size = static_cast<int>(*v);
            }
            assign(target.pool_idle, t.read_duration("pool_idle", ZeroDuration::rejected));
            for (const auto& pattern : target.redact_params_for) {
                try {
                    std::regex check(pattern, std::regex::ECMAScript | std::regex::icase);
                } catch (const std::regex_error& e) {
                    t.error("redact_params_for", "invalid regular expression " + in_quotes(pattern) + ": " + e.what());
                }
            }
        }
        if (protocol == Protocol::postgres) {
            for (const auto key : {std::string_view("host_key"), std::string_view("allow_port_forwarding"),
                                   std::string_view("record_sftp_contents"), std::string_view("authorized_keys")}) {
                if (t.has(key)) {
                    t.error(key, "key " + in_quotes(key) + " is not allowed for postgres targets (ssh only)");
                }
            }
        } else {
            auto key = protocol == Protocol::ssh ? required(t, "host_key", [&] { return t.read_string("host_key"); })
                                                 : t.read_string("host_key");
            if (key) {
                if (auto problem = host_key_problem(*key); !problem.empty()) {
                    t.error("host_key", std::move(problem));
                }
                target.host_key = std::move(*key);
            }
            assign(target.allow_port_forwarding, t.read_bool("allow_port_forwarding"));
            assign(target.record_sftp_contents, t.read_bool("record_sftp_contents"));
            if (auto v = t.read_string("authorized_keys")) {
                if (v->empty() || v->find_first_of(std::string_view("\n\r\0", 3)) != std::string::npos) {
                    t.error("authorized_keys", "must be a non-empty path on one line");
                } else {
                    target.authorized_keys = std::move(*v);
                }
            }
        }
        return target;
    }

    FallbackRule read_fallback(const toml::table& table, const std::string& path) {
        TableReader t(diag_, table, path, fallback_keys);
        FallbackRule rule;
        if (auto name = required(t, "name", [&] { return t.read_string("name"); })) {
            if (auto problem = name_problem(*name); !problem.empty()) {
                t.error("name", std::move(problem));
            }
            rule.name = std::move(*name);
        }
        if (auto v = t.read_choice("trigger", trigger_names)) {
            rule.trigger = static_cast<FallbackTrigger>(*v);
        }
        if (auto accounts = required(t, "accounts", [&] { return t.read_strings("accounts"); })) {
            if (accounts->empty()) {
                t.error("accounts", "must not be empty");
            }
            rule.accounts = std::move(*accounts);
        }
        if (auto targets = required(t, "targets", [&] { return t.read_strings("targets"); })) {
            if (targets->empty()) {
                t.error("targets", "must not be empty");
            }
            for (std::size_t i = 0; i < targets->size(); ++i) {
                if (auto problem = pattern_problem((*targets)[i]); !problem.empty()) {
                    const std::string element = index_path(t.key_path("targets"), i);
                    diag_.error(diag_.where(element), element, std::move(problem));
                }
            }
            rule.targets = std::move(*targets);
        }
        assign(rule.max_session, t.read_duration("max_session", ZeroDuration::rejected));
        assign(rule.warn_before, t.read_duration("warn_before", ZeroDuration::allowed));
        assign(rule.require_reason, t.read_bool("require_reason"));
        assign(rule.rotate_on_close, t.read_bool("rotate_on_close"));
        if (auto notify = t.read_strings("notify")) {
            for (std::size_t i = 0; i < notify->size(); ++i) {
                if (auto problem = url_problem((*notify)[i]); !problem.empty()) {
                    const std::string element = index_path(t.key_path("notify"), i);
                    diag_.error(diag_.where(element), element, std::move(problem));
                }
            }
            rule.notify = std::move(*notify);
        }
        return rule;
    }

    Diagnostics& diag_;
    fs::path base_;
    Config config_;
};

/// Defaults that depend on other keys. Runs before validate(), which checks the results.
void apply_derived_defaults(Config& config, const Diagnostics& diag) {
    for (std::size_t i = 0; i < config.targets.size(); ++i) {
        Target& target = config.targets[i];
        if (target.max_session && !diag.present(child_path(index_path("target", i), "warn_before"))) {
            target.warn_before = default_warn_before(*target.max_session);
        }
    }
    for (std::size_t i = 0; i < config.fallbacks.size(); ++i) {
        FallbackRule& rule = config.fallbacks[i];
        if (!diag.present(child_path(index_path("fallback", i), "warn_before"))) {
            rule.warn_before = default_warn_before(rule.max_session);
        }
    }
}

/// The rules that relate several keys or tables. Keys that were invalid (already reported) are not
/// compared again, so one mistake yields one issue.
void validate(const Config& config, Diagnostics& diag) {
    const auto usable = [&](const std::string& path) { return !diag.has_issue(path); };
    const auto report = [&](const std::string& path, std::string message) {
        diag.error(diag.where(path), path, std::move(message));
    };

    // Without TLS and without allow_plaintext the PostgreSQL listener would refuse every client.
    if (config.listen.postgres && !config.tls && !config.listen.allow_plaintext) {
        report("listen.postgres",
               "a PostgreSQL listener needs [tls] (cert_file, key_file), or allow_plaintext = true "
               "for loopback demos; otherwise no client could connect");
    }

    if (config.idp && usable("idp.probe_timeout") && usable("idp.probe_interval") &&
        config.idp->probe_timeout >= config.idp->probe_interval) {
        report(diag.present("idp.probe_timeout") ? "idp.probe_timeout" : "idp.probe_interval",
               "probe_timeout (" + format_duration(config.idp->probe_timeout) + ") must be less than probe_interval (" +
                   format_duration(config.idp->probe_interval) + ")");
    }

    std::unordered_map<std::string, std::size_t> target_by_name;
    for (std::size_t i = 0; i < config.targets.size(); ++i) {
        const Target& target = config.targets[i];
        const std::string path = index_path("target", i);
        const std::string warn = child_path(path, "warn_before");
        const std::string max = child_path(path, "max_session");
        if (diag.present(warn) && !diag.present(max)) {
            report(warn, "warn_before needs max_session (there is no cap to warn about)");
        } else if (target.warn_before && target.max_session && usable(warn) && usable(max) &&
                   *target.warn_before >= *target.max_session) {
            report(warn, "warn_before (" + format_duration(*target.warn_before) + ") must be less than max_session (" +
                             format_duration(*target.max_session) + ")");
        }
        if (!target.name.empty()) {
            const auto [it, inserted] = target_by_name.emplace(target.name, i);
            if (!inserted) {
                const Pos first = diag.where(child_path(index_path("target", it->second), "name"));
                report(child_path(path, "name"), "duplicate target name " + in_quotes(target.name) +
                                                     " (first defined at line " + std::to_string(first.line) + ")");
            }
        }
    }

    std::vector<std::string> target_names;
    for (const auto& target : config.targets) {
        target_names.push_back(target.name);
    }
    std::unordered_map<std::string, std::size_t> rule_by_name;
    for (std::size_t i = 0; i < config.fallbacks.size(); ++i) {
        const FallbackRule& rule = config.fallbacks[i];
        const std::string path = index_path("fallback", i);
        const std::string warn = child_path(path, "warn_before");
        const std::string max = child_path(path, "max_session");
        if (usable(warn) && usable(max) && rule.warn_before >= rule.max_session) {
            report(diag.present(warn) ? warn : max, "warn_before (" + format_duration(rule.warn_before) +
                                                        ") must be less than max_session (" +
                                                        format_duration(rule.max_session) + ")");
        }
        if (!rule.name.empty()) {
            const auto [it, inserted] = rule_by_name.emplace(rule.name, i);
            if (!inserted) {
                const Pos first = diag.where(child_path(index_path("fallback", it->second), "name"));
                report(child_path(path, "name"), "duplicate fallback name " + in_quotes(rule.name) +
                                                     " (first defined at line " + std::to_string(first.line) + ")");
            }
        }
        // A rule that matches nothing is a typo: break-glass would silently not cover what the
        // operator meant to cover.
        for (std::size_t j = 0; j < rule.targets.size(); ++j) {
            const std::string& pattern = rule.targets[j];
            const std::string element = index_path(child_path(path, "targets"), j);
            if (!usable(element)) {
                continue;
            }
            if (is_glob(pattern)) {
                bool matched = false;
                for (const auto& name : target_names) {
                    matched = matched || glob_match(pattern, name);
                }
                if (!matched) {
                    report(element, "pattern " + in_quotes(pattern) + " matches no target");
                }
            } else if (config.find_target(pattern) == nullptr) {
                std::string message = "no target named " + in_quotes(pattern);
                if (const auto hint = detail::closest(pattern, target_names); !hint.empty()) {
                    message += "; did you mean " + in_quotes(hint) + "?";
                }
                report(element, std::move(message));
            }
        }
    }
}

fs::path absolute_normal(const fs::path& p) {
    std::error_code ec;
    fs::path absolute = fs::absolute(p, ec);
    if (ec) {
        absolute = p;
    }
    return absolute.lexically_normal();
}

LoadResult load(std::string_view text, std::string file_label, fs::path source, fs::path base_dir) {
    Diagnostics diag(std::move(file_label));
    try {
        toml::table doc;
        try {
            doc = toml::parse(text, std::string_view{});
        } catch (const toml::parse_error& e) {
            diag.error(detail::position_of(e.source()), "", std::string(e.description()));
            return {std::nullopt, diag.take_sorted()};
        }
        Config config = Reader(diag, std::move(base_dir)).read(doc);
        config.source = std::move(source);
        apply_derived_defaults(config, diag);
        validate(config, diag);
        if (diag.empty()) {
            return {std::move(config), {}};
        }
    } catch (const std::exception& e) {
        // Not expected for any input; a loader must still never throw at its caller.
        diag.error({}, "", std::string("internal error while loading: ") + e.what());
    }
    return {std::nullopt, diag.take_sorted()};
}

}  // namespace

LoadResult load_config_file(const fs::path& path) {
    const std::string label = path.string();
    const auto cannot_read = [&](int error) {
        LoadResult result;
        result.issues.push_back(Issue{label, 0, 0, "",
                                      "cannot read \"" + label + "\": " + std::generic_category().message(error)});
        return result;
    };
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) {
        return cannot_read(errno);
    }
    std::string text;
    errno = 0;
    char buffer[1 << 16];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
        text.append(buffer, n);
        if (text.size() > max_file_bytes) {
            return cannot_read(EFBIG);
        }
    }
    if (std::ferror(file.get()) != 0) {
        return cannot_read(errno != 0 ? errno : EIO);
    }
    const fs::path source = absolute_normal(path);
    return load(text, label, source, source.parent_path());
}

LoadResult load_config_string(std::string_view text, const fs::path& source_name, const fs::path& base_dir) {
    const fs::path base = absolute_normal(base_dir);
    return load(text, source_name.string(), (base / source_name).lexically_normal(), base);
}

}  // namespace gg::config
