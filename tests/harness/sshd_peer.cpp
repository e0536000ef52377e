#include "harness/sshd_peer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <sstream>
#include <utility>

namespace gg::harness {
namespace {

constexpr const char* sshd_program = "/usr/sbin/sshd";
constexpr const char* sftp_server = "/usr/lib/openssh/sftp-server";

TempDir make_dir(const SshdOptions& options) {
    return options.dir.empty() ? TempDir("gg-sshd") : TempDir::keep_at(options.dir);
}

void keygen(const std::filesystem::path& file, const std::string& comment) {
    std::filesystem::remove(file);
    std::filesystem::remove(file.string() + ".pub");
    const auto result = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file.string()},
                            RunOptions{.timeout = std::chrono::seconds(30)});
    if (result.exit_code != 0) {
        throw PeerError("sshd: ssh-keygen failed:\n" + result.describe());
    }
}

}  // namespace

std::string ssh_key_without_comment(std::string_view line) {
    std::istringstream in{std::string(line)};
    std::string type;
    std::string blob;
    if (!(in >> type >> blob)) {
        return {};
    }
    return type + " " + blob;
}

SshdPeer::SshdPeer(SshdOptions options) : options_(std::move(options)), dir_(make_dir(options_)) {
    if (access(sshd_program, X_OK) != 0) {
        throw PeerError(std::string("sshd: ") + sshd_program +
                        " not found (install openssh-server with scripts/install-deps.sh)");
    }
    user_ = current_user();
    // sshd's privilege separation directory; Debian creates it only when its service starts.
    std::error_code ec;
    std::filesystem::create_directories("/run/sshd", ec);
    if (!std::filesystem::is_directory("/run/sshd")) {
        throw PeerError("sshd: /run/sshd does not exist and cannot be created: " + ec.message());
    }
    chmod(dir_.path().c_str(), 0755);

    keygen(host_key(), "glassgate-test-host");
    keygen(client_key(), "glassgate-test-client");
    host_public_key_ = ssh_key_without_comment(read_file(host_key().string() + ".pub"));
    client_public_key_ = ssh_key_without_comment(read_file(client_key().string() + ".pub"));
    write_file(authorized_keys(), client_public_key_ + "\n", 0600);

    spec_ = ServerSpec{.name = "sshd",
                    .log_file = log_file(),
                    .stop_signal = SIGTERM,
                    .grace = std::chrono::seconds(10),
                    .timeout = options_.start_timeout};
    spec_.make = [this](std::uint16_t port) {
        std::string config =
            "# glassgate test peer (written by the test harness)\n"
            "ListenAddress 127.0.0.1\n"
            "Port " + std::to_string(port) + "\n"
            "HostKey " + host_key().string() + "\n"
            "PidFile " + (dir_ / "sshd.pid").string() + "\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "AuthorizedKeysFile " + authorized_keys().string() + "\n"
            "PermitRootLogin prohibit-password\n"
            "Subsystem sftp " + sftp_server + "\n"
            "LogLevel VERBOSE\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "MaxStartups 100\n"
            "MaxSessions 100\n";
        for (const auto& line : options_.extra_config) {
            config += line + "\n";
        }
        write_file(config_file(), config, 0644);
        write_file(known_hosts(), "[127.0.0.1]:" + std::to_string(port) + " " + host_public_key_ + "\n", 0644);
        return SpawnOptions{.argv = {sshd_program, "-D", "-e", "-f", config_file().string()}, .cwd = dir_.path()};
    };
    spec_.ready = [this](std::uint16_t port) {
        // "Server listening on 127.0.0.1 port P." — no probe connection cluttering the log.
        return read_file_from(log_file(), ready_from_).find("Server listening on 127.0.0.1 port " + std::to_string(port)) !=
               std::string::npos;
    };
    auto started = start_server(spec_);
    server_ = std::move(started.process);
    port_ = started.port;
}

SshdPeer::~SshdPeer() { stop(); }

void SshdPeer::stop() { server_.stop(); }

void SshdPeer::start_again() {
    server_.stop();
    std::error_code ec;
    ready_from_ = std::filesystem::exists(log_file(), ec) ? std::filesystem::file_size(log_file(), ec) : 0;
    auto spec = spec_;
    spec.fixed_port = port_;
    server_ = start_server(spec).process;
}

void SshdPeer::authorize_key(std::string_view public_key_line) {
    append_file(authorized_keys(), std::string(public_key_line) + "\n");
}

std::vector<std::string> SshdPeer::client_options() const {
    return {"-F", "/dev/null",
            "-i", client_key().string(),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + known_hosts().string(),
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR"};
}

std::vector<std::string> SshdPeer::ssh_argv(std::string_view command) const {
    std::vector<std::string> argv = {"ssh"};
    for (auto& option : client_options()) {
        argv.push_back(std::move(option));
    }
    argv.insert(argv.end(), {"-p", std::to_string(port_), user_ + "@127.0.0.1", "--", std::string(command)});
    return argv;
}

RunResult SshdPeer::ssh(std::string_view command, std::chrono::milliseconds timeout) const {
    return run(ssh_argv(command),
               RunOptions{.timeout = timeout});
}

}  // namespace gg::harness
