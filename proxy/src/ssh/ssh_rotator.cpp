#include "glassgate/proxy/ssh/ssh_rotator.hpp"

#include <libssh/libssh.h>

#include <algorithm>
#include <ctime>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "glassgate/protocols/ssh/authorized_keys.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"

namespace gg::proxy::ssh {
namespace {

using rotation::Outcome;

struct KeyHandle {
    ssh_key k = nullptr;
    KeyHandle() = default;
    KeyHandle(const KeyHandle&) = delete;
    KeyHandle& operator=(const KeyHandle&) = delete;
    ~KeyHandle() {
        if (k) ssh_key_free(k);
    }
};

struct SessionHandle {
    ssh_session s = nullptr;
    SessionHandle() = default;
    SessionHandle(SessionHandle&& o) noexcept : s(o.s) { o.s = nullptr; }
    SessionHandle& operator=(SessionHandle&& o) noexcept {
        std::swap(s, o.s);
        return *this;
    }
    SessionHandle(const SessionHandle&) = delete;
    SessionHandle& operator=(const SessionHandle&) = delete;
    ~SessionHandle() {
        if (!s) return;
        ssh_disconnect(s);
        ssh_free(s);
    }
};

std::string public_line(ssh_key key) {
    char* b64 = nullptr;
    if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK || !b64) return {};
    std::string out = std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " + b64;
    ssh_string_free_char(b64);
    return out;
}

/// The private key in `secret` and its public key line; false if it is not an OpenSSH/PEM private key.
bool import_key(const Secret& secret, KeyHandle& key, gg::ssh::PublicKeyLine& pub) {
    if (secret.reveal().find("PRIVATE KEY-----") == std::string_view::npos) return false;
    std::string pem(secret.reveal());
    const int rc = ssh_pki_import_privkey_base64(pem.c_str(), nullptr, nullptr, nullptr, &key.k);
    crypto::cleanse(pem.data(), pem.size());
    if (rc != SSH_OK || !key.k) return false;
    KeyHandle public_key;
    if (ssh_pki_export_privkey_to_pubkey(key.k, &public_key.k) != SSH_OK) return false;
    auto line = gg::ssh::parse_public_key_line(public_line(public_key.k));
    if (!line) return false;
    pub = std::move(*line);
    return true;
}

enum class Auth { ok, denied, failed };
struct Login {
    Auth result = Auth::failed;
    std::string error;
    SessionHandle session;
};

/// Connects to the target (pinned host key checked) and authenticates as backend_user with `key`.
Login login(const config::Target& t, ssh_key key) {
    Login out;
    out.session.s = ssh_new();
    ssh_session s = out.session.s;
    if (!s) {
        out.error = "cannot create an SSH session";
        return out;
    }
    const auto pinned = gg::ssh::parse_public_key_line(t.host_key);
    if (!pinned) {
        out.error = "the pinned host key of " + t.name + " is unreadable";
        return out;
    }
    const auto algos = gg::ssh::hostkey_algorithms_for(pinned->type);
    bool process_config = false;
    int verbosity = SSH_LOG_NOLOG;
    long timeout = 15;
    const unsigned int port = t.address.port;
    ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &process_config);
    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    ssh_options_set(s, SSH_OPTIONS_HOST, t.address.host.c_str());
    ssh_options_set(s, SSH_OPTIONS_PORT, &port);
    ssh_options_set(s, SSH_OPTIONS_USER, t.backend_user.c_str());
    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout);
    ssh_options_set(s, SSH_OPTIONS_HOSTKEYS, algos.c_str());
    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    if (ssh_connect(s) != SSH_OK) {
        out.error = "cannot connect to " + t.address.to_string() + ": " + ssh_get_error(s);
        return out;
    }
    std::string presented;
    {
        KeyHandle hk;
        if (ssh_get_server_publickey(s, &hk.k) == SSH_OK) presented = public_line(hk.k);
    }
    const auto got = gg::ssh::parse_public_key_line(presented);
    if (!got || !(*got == *pinned)) {
        out.error = "backend host key mismatch: " + t.address.to_string() + " presented " +
                    (presented.empty() ? std::string("no usable key") : presented) + ", the pinned key is " + t.host_key;
        return out;
    }
    const int rc = ssh_userauth_publickey(s, nullptr, key);
    if (rc == SSH_AUTH_SUCCESS) {
        out.result = Auth::ok;
    } else if (rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL) {
        out.result = Auth::denied;
        out.error = "key refused";
    } else {
        out.error = std::string("authentication failed: ") + ssh_get_error(s);
    }
    return out;
}

struct ExecResult {
    int status = -1;
    std::string out;
    std::string err;
    std::string problem;  ///< non-empty: the channel itself failed
};

/// Runs `command` in an exec channel with `input` on its stdin (then EOF); collects stdout, stderr
/// and the exit status. Blocking.
ExecResult exec(ssh_session s, const std::string& command, std::string_view input) {
    ExecResult r;
    ssh_channel ch = ssh_channel_new(s);
    if (!ch) {
        r.problem = std::string("cannot create a channel: ") + ssh_get_error(s);
        return r;
    }
    auto done = [&](std::string problem) {
        if (!problem.empty()) r.problem = std::move(problem) + ": " + ssh_get_error(s);
        ssh_channel_close(ch);
        ssh_channel_free(ch);
        return r;
    };
    if (ssh_channel_open_session(ch) != SSH_OK) return done("cannot open a session channel");
    if (ssh_channel_request_exec(ch, command.c_str()) != SSH_OK) return done("the exec request was refused");
    std::size_t sent = 0;
    while (sent < input.size()) {
        const auto chunk = static_cast<uint32_t>(std::min<std::size_t>(input.size() - sent, 32768));
        const int n = ssh_channel_write(ch, input.data() + sent, chunk);
        if (n < 0) return done("writing to the remote command failed");
        sent += static_cast<std::size_t>(n);
    }
    if (ssh_channel_send_eof(ch) != SSH_OK) return done("sending EOF to the remote command failed");
    char buf[8192];
    for (int stream = 0; stream < 2; ++stream) {
        auto& sink = stream == 0 ? r.out : r.err;
        for (;;) {
            const int n = ssh_channel_read_timeout(ch, buf, sizeof buf, stream, 15000);
            if (n == SSH_ERROR) return done("reading from the remote command failed");
            if (n > 0) {
                sink.append(buf, static_cast<std::size_t>(n));
                if (sink.size() > (16u << 20)) return done("the remote command's output is too large");
                continue;
            }
            if (ssh_channel_is_eof(ch) || ssh_channel_is_closed(ch)) break;
            return done("the remote command did not finish in time");
        }
    }
    r.status = ssh_channel_get_exit_status(ch);
    return done({});
}

// The remote scripts are constants: the path and the file's contents reach them on stdin, so no key
// material (and no configured path) is ever interpolated into a command line. POSIX sh; no single
// quotes inside (they are wrapped in '...').
//
// read: stdin "PATH\n"; prints the file, exit 3 if it does not exist, 4 if it is a symbolic link.
constexpr std::string_view read_script =
    "IFS= read -r p || exit 64\n"
    "case \"$p\" in \"~/\"*) p=\"$HOME/${p#\"~/\"}\";; esac\n"
    "if [ -L \"$p\" ]; then exit 4; fi\n"
    "if [ ! -e \"$p\" ]; then exit 3; fi\n"
    "exec cat -- \"$p\"\n";
// write: stdin "PATH\nOLD_SIZE\nNEW_SIZE\n" OLD NEW. Writes NEW to a temp file in the same directory
// (0600), checks both sizes, refuses (exit 70) if the file no longer holds OLD (edited meanwhile:
// the next attempt re-reads it), then renames the temp file over PATH (atomic on one file system).
constexpr std::string_view write_script =
    "IFS= read -r p || exit 64\n"
    "IFS= read -r o || exit 64\n"
    "IFS= read -r n || exit 64\n"
    "case \"$p\" in \"~/\"*) p=\"$HOME/${p#\"~/\"}\";; esac\n"
    "if [ -L \"$p\" ]; then exit 4; fi\n"
    "if [ ! -f \"$p\" ]; then exit 70; fi\n"
    "umask 077\n"
    "d=$(dirname -- \"$p\") || exit 65\n"
    "t=$(mktemp \"$d/.glassgate-authorized_keys.XXXXXX\") || exit 66\n"
    "e=$(mktemp \"$d/.glassgate-authorized_keys.XXXXXX\") || { rm -f -- \"$t\"; exit 66; }\n"
    "c() { rm -f -- \"$t\" \"$e\"; }\n"
    "if ! dd bs=1 count=$((o)) of=\"$e\" 2>/dev/null; then c; exit 67; fi\n"
    "if ! cat > \"$t\"; then c; exit 67; fi\n"
    "s=$(wc -c < \"$e\"); if [ $((s)) -ne $((o)) ]; then c; exit 68; fi\n"
    "s=$(wc -c < \"$t\"); if [ $((s)) -ne $((n)) ]; then c; exit 68; fi\n"
    "if ! cmp -s -- \"$e\" \"$p\"; then c; exit 70; fi\n"
    "if ! mv -f -- \"$t\" \"$p\"; then c; exit 69; fi\n"
    "rm -f -- \"$e\"\n";

std::string sh_command(std::string_view script) { return "sh -c '" + std::string(script) + "'"; }

struct FileText {
    std::optional<std::string> text;  ///< absent: the file does not exist
    std::string error;
};

FileText read_authorized_keys(ssh_session s, const config::Target& t) {
    FileText f;
    auto r = exec(s, sh_command(read_script), t.authorized_keys + "\n");
    if (!r.problem.empty()) {
        f.error = "reading " + t.authorized_keys + " on the backend: " + r.problem;
    } else if (r.status == 0) {
        f.text = std::move(r.out);
    } else if (r.status == 3) {
        // absent
    } else if (r.status == 4) {
        f.error = t.authorized_keys + " on the backend is a symbolic link; set the target's authorized_keys to the real file";
    } else {
        f.error = "reading " + t.authorized_keys + " on the backend failed (exit " + std::to_string(r.status) +
                  "): " + r.err;
    }
    return f;
}

/// Replaces the file's contents `old_text` (as read) by `text`; refused if the file changed meanwhile.
std::string write_authorized_keys(ssh_session s, const config::Target& t, const std::string& old_text,
                                  const std::string& text) {
    const std::string input = t.authorized_keys + "\n" + std::to_string(old_text.size()) + "\n" +
                              std::to_string(text.size()) + "\n" + old_text + text;
    auto r = exec(s, sh_command(write_script), input);
    if (!r.problem.empty()) return "writing " + t.authorized_keys + " on the backend: " + r.problem;
    if (r.status == 0) return {};
    if (r.status == 4) {
        return t.authorized_keys + " on the backend is a symbolic link; set the target's authorized_keys to the real file";
    }
    if (r.status == 70) {
        return t.authorized_keys + " on the backend changed (or disappeared) while glassgate rewrote it; nothing was "
               "written, the next attempt reads it again";
    }
    while (!r.err.empty() && (r.err.back() == '\n' || r.err.back() == '\r')) r.err.pop_back();
    return "writing " + t.authorized_keys + " on the backend failed (exit " + std::to_string(r.status) + ")" +
           (r.err.empty() ? std::string() : ": " + r.err);
}

std::string rotated_comment() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return std::string("glassgate-rotated-") + buf;
}

}  // namespace

Secret generate_backend_key() {
    KeyHandle key;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key.k) != SSH_OK || !key.k) {
        throw std::runtime_error("cannot generate an Ed25519 key");
    }
    char* b64 = nullptr;
    if (ssh_pki_export_privkey_base64(key.k, nullptr, nullptr, nullptr, &b64) != SSH_OK || !b64) {
        throw std::runtime_error("cannot export the generated Ed25519 key");
    }
    Secret out{std::string(b64)};
    crypto::cleanse(b64, std::char_traits<char>::length(b64));
    ssh_string_free_char(b64);
    return out;
}

Outcome rotate_backend_key(const config::Target& t, const Secret& current, const Secret& next,
                           const std::set<int>& /*keep_pids*/) {
    Outcome out;
    KeyHandle cur_key, next_key;
    gg::ssh::PublicKeyLine cur_pub, next_pub;
    if (!import_key(current, cur_key, cur_pub)) {
        out.error = "the current credential of " + t.name +
                    " is not a private key; only key credentials of ssh targets are rotated (change the password on "
                    "the backend and run glassgate secret set " + t.name + ")";
        return out;
    }
    if (!import_key(next, next_key, next_pub)) {
        out.error = "the pending credential of " + t.name + " is not a usable private key";
        return out;
    }
    const auto where = t.authorized_keys + " of " + t.backend_user + "@" + t.address.to_string();

    auto first = login(t, cur_key.k);
    if (first.result == Auth::failed) {
        out.error = first.error;
        return out;
    }
    SessionHandle conn;
    if (first.result == Auth::ok) {
        conn = std::move(first.session);
    } else {
        // An earlier attempt may have installed the pending key and removed the old one.
        auto again = login(t, next_key.k);
        if (again.result != Auth::ok) {
            out.error = "cannot log in to " + t.address.to_string() + " as " + t.backend_user +
                        " with the current key (" + first.error + ") nor the pending one (" + again.error + ")";
            return out;
        }
        out.used_pending = true;
        conn = std::move(again.session);
    }

    if (!out.used_pending) {
        auto file = read_authorized_keys(conn.s, t);
        if (!file.error.empty()) {
            out.error = file.error;
            return out;
        }
        if (!file.text || !gg::ssh::authorized_keys_has(*file.text, cur_pub)) {
            out.error = where + (file.text ? " does not list the current key" : " does not exist") +
                        " although the current key logs in: set the target's authorized_keys to the file sshd uses "
                        "(AuthorizedKeysFile)";
            return out;
        }
        const auto with_new = gg::ssh::authorized_keys_with(*file.text, next_pub, rotated_comment());
        if (with_new != *file.text) {
            if (auto err = write_authorized_keys(conn.s, t, *file.text, with_new); !err.empty()) {
                out.error = err;
                return out;
            }
        }
        // The old key goes only once a separate login with the new key has worked.
        auto check = login(t, next_key.k);
        if (check.result != Auth::ok) {
            out.error = "the new key does not log in after adding it to " + where + ": " + check.error;
            return out;
        }
    }

    auto file = read_authorized_keys(conn.s, t);
    if (!file.error.empty()) {
        out.error = file.error;
        return out;
    }
    const std::string text = file.text.value_or(std::string());
    if (!gg::ssh::authorized_keys_has(text, next_pub)) {
        out.error = where + " no longer lists the new key (changed by someone else?)";
        return out;
    }
    const auto without_old = gg::ssh::authorized_keys_without(text, cur_pub);
    if (without_old != text) {
        if (auto err = write_authorized_keys(conn.s, t, text, without_old); !err.empty()) {
            out.error = err;
            return out;
        }
    }
    // The old key must now be refused, and the new one still admitted.
    auto old_again = login(t, cur_key.k);
    if (old_again.result == Auth::ok) {
        out.error = "the old key still logs in to " + t.address.to_string() + " after its removal from " + where +
                    " (is it listed in another authorized_keys file?)";
        return out;
    }
    if (old_again.result == Auth::failed) {
        out.error = "cannot check that the old key is refused: " + old_again.error;
        return out;
    }
    auto fresh = login(t, next_key.k);
    if (fresh.result != Auth::ok) {
        out.error = "the new key does not log in after removing the old one from " + where + ": " + fresh.error;
        return out;
    }
    spdlog::info("rotation of {}: new key {} installed in {}, old key removed", t.name, next_pub.type, where);
    out.ok = true;
    return out;
}

rotation::Rotator backend_key_rotator() { return rotation::Rotator{generate_backend_key, rotate_backend_key}; }

}  // namespace gg::proxy::ssh
