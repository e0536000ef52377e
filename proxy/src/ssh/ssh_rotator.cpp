#include "glassgate/proxy/ssh/ssh_rotator.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "glassgate/protocols/oidc/text.hpp"
#include "glassgate/protocols/ssh/authorized_keys.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"
#include "glassgate/proxy/ssh/host_key.hpp"
#include "keys.hpp"

namespace gg::proxy::ssh {
namespace {

using rotation::Outcome;

/// The private key in `secret` and its public key line; false if it is not an OpenSSH/PEM private key.
bool import_key(const Secret& secret, KeyHandle& key, gg::ssh::PublicKeyLine& pub) {
    if (!is_private_key(secret.reveal())) return false;
    key = import_private_key(secret.reveal());
    if (!key) return false;
    KeyHandle public_key;
    if (ssh_pki_export_privkey_to_pubkey(key.get(), public_key.out()) != SSH_OK) return false;
    auto line = gg::ssh::parse_public_key_line(public_key_line(public_key.get()));
    if (!line) return false;
    pub = std::move(*line);
    return true;
}

enum class Auth { ok, denied, failed };
struct Login {
    Auth result = Auth::failed;
    std::string error;
    PeerSessionHandle session;  ///< says goodbye to the backend when it goes
};

/// Connects to the target (pinned host key checked) and authenticates as backend_user with `key`.
Login login(const config::Target& t, ssh_key key) {
    Login out;
    out.session = PeerSessionHandle(ssh_new());
    ssh_session s = out.session.get();
    if (!s) {
        out.error = "cannot create an SSH session";
        return out;
    }
    const auto pinned = gg::ssh::parse_public_key_line(t.host_key);
    if (!pinned) {
        out.error = "the pinned host key of " + t.name + " is unreadable";
        return out;
    }
    set_client_options(s, t.address,
                       {.user = t.backend_user.c_str(), .timeout_s = 15,
                        .hostkeys = gg::ssh::hostkey_algorithms_for(pinned->type)});
    if (ssh_connect(s) != SSH_OK) {
        out.error = "cannot connect to " + t.address.to_string() + ": " + ssh_get_error(s);
        return out;
    }
    const auto presented = presented_host_key(s);
    if (!host_key_matches(presented, t.host_key)) {
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
    ChannelHandle channel(ssh_channel_new(s));
    ssh_channel ch = channel.get();
    if (!ch) {
        r.problem = std::string("cannot create a channel: ") + ssh_get_error(s);
        return r;
    }
    auto done = [&](std::string problem) {
        if (!problem.empty()) r.problem = std::move(problem) + ": " + ssh_get_error(s);
        ssh_channel_close(ch);
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

/// "glassgate-rotated-20261201T195000Z": the comment of a key glassgate added, with the UTC time.
std::string rotated_comment() {
    std::string t = oidc::format_utc(std::chrono::system_clock::now());  // 2026-12-01T19:50:00Z
    std::erase_if(t, [](char c) { return c == '-' || c == ':'; });
    return "glassgate-rotated-" + t;
}

}  // namespace

Secret generate_backend_key() {
    KeyHandle key;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, key.out()) != SSH_OK || !key) {
        throw std::runtime_error("cannot generate an Ed25519 key");
    }
    CharHandle b64;
    if (ssh_pki_export_privkey_base64(key.get(), nullptr, nullptr, nullptr, b64.out()) != SSH_OK || !b64) {
        throw std::runtime_error("cannot export the generated Ed25519 key");
    }
    Secret out{std::string(b64.get())};
    crypto::cleanse(b64.get(), std::char_traits<char>::length(b64.get()));
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

    auto first = login(t, cur_key.get());
    if (first.result == Auth::failed) {
        out.error = first.error;
        return out;
    }
    PeerSessionHandle conn;
    if (first.result == Auth::ok) {
        conn = std::move(first.session);
    } else {
        // An earlier attempt may have installed the pending key and removed the old one.
        auto again = login(t, next_key.get());
        if (again.result != Auth::ok) {
            out.error = "cannot log in to " + t.address.to_string() + " as " + t.backend_user +
                        " with the current key (" + first.error + ") nor the pending one (" + again.error + ")";
            return out;
        }
        out.used_pending = true;
        conn = std::move(again.session);
    }

    if (!out.used_pending) {
        auto file = read_authorized_keys(conn.get(), t);
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
            if (auto err = write_authorized_keys(conn.get(), t, *file.text, with_new); !err.empty()) {
                out.error = err;
                return out;
            }
        }
        // The old key goes only once a separate login with the new key has worked.
        auto check = login(t, next_key.get());
        if (check.result != Auth::ok) {
            out.error = "the new key does not log in after adding it to " + where + ": " + check.error;
            return out;
        }
    }

    auto file = read_authorized_keys(conn.get(), t);
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
        if (auto err = write_authorized_keys(conn.get(), t, text, without_old); !err.empty()) {
            out.error = err;
            return out;
        }
    }
    // The old key must now be refused, and the new one still admitted.
    auto old_again = login(t, cur_key.get());
    if (old_again.result == Auth::ok) {
        out.error = "the old key still logs in to " + t.address.to_string() + " after its removal from " + where +
                    " (is it listed in another authorized_keys file?)";
        return out;
    }
    if (old_again.result == Auth::failed) {
        out.error = "cannot check that the old key is refused: " + old_again.error;
        return out;
    }
    auto fresh = login(t, next_key.get());
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
