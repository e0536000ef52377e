// Child processes for tests: long-running servers (Process) and one-shot clients (run).
//
// Every child runs in its own process group (so Ctrl-C in a terminal reaches only the test, and stopping a
// peer kills everything it forked), gets the parent-death signal SIGKILL (a crashed or killed test does not
// leave servers behind; Linux delivers it when the *thread* that spawned the child exits, so spawn peers from
// the thread that owns them), has its signal mask and dispositions reset, and inherits no descriptor but
// 0, 1 and 2. A child may run as another user (e.g. postgres, which refuses root): the harness switches
// user itself between fork and exec, which `runuser -u USER --` would do by hand.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gg::harness {

/// A peer could not be started or used; the message names the peer and usually ends with its log tail.
class PeerError : public std::runtime_error {
 public:
    using std::runtime_error::runtime_error;
};

/// What every peer (PostgreSQL, sshd, the IdP) is: a server on a loopback port, owned by one object.
class LoopbackPeer {
 public:
    LoopbackPeer(const LoopbackPeer&) = delete;
    LoopbackPeer& operator=(const LoopbackPeer&) = delete;
    [[nodiscard]] std::string host() const { return "127.0.0.1"; }
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 protected:
    LoopbackPeer() = default;
    ~LoopbackPeer() = default;
    std::uint16_t port_ = 0;  ///< set by the peer's constructor once it serves
};

/// Changes to the parent's environment for one child: variables set (added or replaced), then removed.
struct EnvChanges {
    std::vector<std::pair<std::string, std::string>> set{};
    std::vector<std::string> unset{};
};

struct SpawnOptions {
    std::vector<std::string> argv{};  ///< argv[0] without '/' is looked up in PATH (before the fork).
    EnvChanges env{};
    std::filesystem::path cwd{};    ///< empty: the parent's working directory.
    std::string run_as{};           ///< user name; empty or the current user: no switch. Else needs root.
};

/// A long-running child (a server). Move-only; the destructor stops it and reaps it.
class Process {
 public:
    Process() = default;
    /// Starts `options.argv` with stdin from /dev/null and stdout+stderr appended to `log_file`.
    /// `stop_signal` is what stop() sends first (SIGTERM; SIGINT is PostgreSQL's fast shutdown); after
    /// `grace` the whole group gets SIGKILL. Throws PeerError when the program cannot be executed.
    static Process start(const SpawnOptions& options, const std::filesystem::path& log_file,
                         int stop_signal = SIGTERM,
                         std::chrono::milliseconds grace = std::chrono::seconds(10));
    ~Process();
    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    /// The child's pid, which is also its process group id; 0 for an empty Process.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] const std::filesystem::path& log_file() const noexcept { return log_file_; }
    /// True while the direct child has not exited (reaps it when it has).
    [[nodiscard]] bool running();
    /// Exit status, or 128+signal when a signal ended it; empty while running or never started.
    [[nodiscard]] std::optional<int> exit_code() const noexcept { return exit_code_; }
    /// Waits up to `timeout` for the direct child to exit; returns its exit_code() if it did.
    std::optional<int> wait_for(std::chrono::milliseconds timeout);
    /// Sends `sig` to every process of the child's group.
    void signal_group(int sig) const noexcept;
    /// Sends the stop signal to the group, waits up to the grace period until the child, every process of
    /// its group and every descendant it had when stop() began are gone, then SIGKILLs the survivors.
    /// Reaps the child. Idempotent. Returns the exit code (-1 if there was no child).
    int stop() noexcept;

 private:
    pid_t pid_ = 0;
    bool reaped_ = false;
    std::optional<int> exit_code_;
    int stop_signal_ = SIGTERM;
    std::chrono::milliseconds grace_{10000};
    std::filesystem::path log_file_;
};

struct RunOptions {
    EnvChanges env{};
    std::string stdin_data{};                            ///< written to the child's stdin, then closed.
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
    std::filesystem::path cwd{};
    std::string run_as{};
};

struct RunResult {
    std::string command{};       ///< the argv joined with spaces, for messages
    int exit_code = -1;          ///< exit status; 128+signal if a signal ended it; -1 on timeout.
    std::string out{};           ///< everything the child wrote to stdout
    std::string err{};           ///< everything the child wrote to stderr
    bool timed_out = false;      ///< the child (and its group) was killed at the timeout
    std::chrono::milliseconds elapsed{0};
    /// One paragraph for failure messages: command, exit code, stdout and stderr (shortened).
    [[nodiscard]] std::string describe() const;
};

/// Runs a client to completion with captured output and a timeout (the child's whole process group is
/// killed at the timeout). Throws PeerError only when the program cannot be executed at all.
/// Ignores SIGPIPE in the calling process (a child that exits before reading its stdin must not kill us).
RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

/// Polls `ready` every `interval` until it returns true (-> true) or `timeout` passes (-> false).
bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(50));

/// True when some non-zombie process belongs to process group `pgid` (read from /proc).
[[nodiscard]] bool process_group_alive(pid_t pgid);
/// Pids of the processes whose parent is `parent`, zombies included (read from /proc).
[[nodiscard]] std::vector<pid_t> child_processes(pid_t parent);
/// Pids of all non-zombie descendants of `root` (children, their children, ...), read from /proc.
/// Needed because some servers move their children to other sessions and groups (PostgreSQL's
/// postmaster gives every child its own session), out of reach of a group signal.
[[nodiscard]] std::vector<pid_t> descendants(pid_t root);
/// True when any pid of `pids` is a live (non-zombie) process.
[[nodiscard]] bool any_alive(const std::vector<pid_t>& pids);

/// A "kB" field of /proc/<pid>/status (e.g. "VmRSS", "VmHWM") in kB; -1 when the process or the field is
/// absent. For memory bounds of a server under load (sample it from a thread while a client runs).
[[nodiscard]] long proc_status_kb(pid_t pid, std::string_view field);

/// Absolute path of `program` searched in PATH (or itself when it contains '/'); empty when not found.
[[nodiscard]] std::filesystem::path find_program(std::string_view program);

/// The name of the effective user.
[[nodiscard]] std::string current_user();

/// A server started on a free loopback port.
struct StartedServer {
    Process process{};
    std::uint16_t port = 0;
};

struct ServerSpec {
    std::string name{};                                         ///< for messages ("postgres", "sshd")
    std::function<SpawnOptions(std::uint16_t port)> make{};    ///< may write config files for the port
    std::function<bool(std::uint16_t port)> ready{};           ///< true once the server serves
    std::filesystem::path log_file{};
    int stop_signal = SIGTERM;
    std::chrono::milliseconds grace{std::chrono::seconds(10)};
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
    std::optional<std::uint16_t> fixed_port{};                 ///< no free_port(), no retry
    int attempts = 3;
};

/// Starts a server on free_port() and waits until `ready`. When the child exits before it is ready and the
/// new part of its log says the port was taken (the race between free_port() and the child's bind()), it
/// retries on another port. Throws PeerError naming the server, with the tail of its log.
StartedServer start_server(const ServerSpec& spec);

}  // namespace gg::harness
