// A real OpenSSH server for integration tests: /usr/sbin/sshd -D -e on 127.0.0.1 with its own keys.
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

struct SshdOptions {
    std::filesystem::path dir{};             ///< empty: a TempDir removed afterwards; else used and kept
    std::vector<std::string> extra_config{}; ///< more sshd_config lines, appended
    std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
};

/// An Ed25519 host key, a client key pair whose public half is in authorized_keys, an sshd_config
/// (ListenAddress 127.0.0.1, UsePAM no, StrictModes no, public keys only, sftp subsystem, LogLevel VERBOSE)
/// and `/usr/sbin/sshd -D -e -f CONFIG` as a child on a free port; logins as the current user (root in CI).
/// Ready when sshd logs that it listens. Throws PeerError (with the tail of its log) when it cannot start.
class SshdPeer : public LoopbackPeer {
 public:
    explicit SshdPeer(SshdOptions options = {});
    ~SshdPeer();

    /// The login user: the current user.
    [[nodiscard]] const std::string& user() const noexcept { return user_; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::filesystem::path client_key() const { return dir_ / "client_key"; }
    /// "ssh-ed25519 AAAA..." of the client key (already in authorized_keys).
    [[nodiscard]] const std::string& client_public_key() const noexcept { return client_public_key_; }
    /// "ssh-ed25519 AAAA..." of the host key (type and base64, no comment): what a client pins.
    [[nodiscard]] const std::string& host_public_key() const noexcept { return host_public_key_; }
    [[nodiscard]] std::filesystem::path host_key() const { return dir_ / "host_ed25519_key"; }
    /// known_hosts with "[127.0.0.1]:PORT <host key>".
    [[nodiscard]] std::filesystem::path known_hosts() const { return dir_ / "known_hosts"; }
    [[nodiscard]] std::filesystem::path authorized_keys() const { return dir_ / "authorized_keys"; }
    [[nodiscard]] std::filesystem::path config_file() const { return dir_ / "sshd_config"; }
    [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "sshd.log"; }
    /// Pid (= process group) of the listening sshd; 0 after stop().
    [[nodiscard]] pid_t pid() const noexcept { return server_.pid(); }

    /// Adds a public key line to authorized_keys (e.g. the key a proxy uses upstream).
    void authorize_key(std::string_view public_key_line);

    /// Options for ssh/scp/sftp reaching this server, without port and destination:
    /// -F /dev/null -i KEY -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
    /// -o UserKnownHostsFile=KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR
    [[nodiscard]] std::vector<std::string> client_options() const;
    /// Full argv of `ssh ... -p PORT user@127.0.0.1 -- command`.
    [[nodiscard]] std::vector<std::string> ssh_argv(std::string_view command) const;
    /// Runs the real ssh client: exit status of the remote command (255 for ssh's own errors) and stdout.
    [[nodiscard]] RunResult ssh(std::string_view command, std::chrono::milliseconds timeout =
                                                              std::chrono::seconds(30)) const;

    /// SIGTERM to sshd's group now (the destructor does the same).
    void stop();
    /// Starts sshd again on the same port with the same keys (after stop(): a backend that was down and
    /// comes back). Throws PeerError when it cannot start.
    void start_again();

 private:
    SshdOptions options_;
    TempDir dir_;
    std::string user_;
    std::string client_public_key_;
    std::string host_public_key_;
    ServerSpec spec_;
    std::uintmax_t ready_from_ = 0;  ///< where in the log the next start's "Server listening" is looked for
    Process server_;
};

/// The first two fields ("type base64") of an OpenSSH public key line; empty if it has fewer.
[[nodiscard]] std::string ssh_key_without_comment(std::string_view line);

}  // namespace gg::harness
