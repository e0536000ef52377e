#include "harness/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <thread>

#include "harness/files.hpp"
#include "harness/net.hpp"

extern char** environ;

namespace gg::harness {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::system_error sys_error(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

std::string join(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& arg : argv) {
        if (!out.empty()) {
            out += ' ';
        }
        out += arg;
    }
    return out;
}

int decode_status(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

struct Identity {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::string home;
    std::string name;
};

std::optional<Identity> lookup_user(const std::string& name) {
    std::array<char, 16384> buffer{};
    passwd pw{};
    passwd* found = nullptr;
    if (getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return std::nullopt;
    }
    Identity id{.uid = pw.pw_uid, .gid = pw.pw_gid, .groups = {}, .home = pw.pw_dir, .name = pw.pw_name};
    int count = 64;
    id.groups.resize(static_cast<std::size_t>(count));
    if (getgrouplist(pw.pw_name, pw.pw_gid, id.groups.data(), &count) < 0) {
        id.groups.resize(static_cast<std::size_t>(count));
        getgrouplist(pw.pw_name, pw.pw_gid, id.groups.data(), &count);
    }
    id.groups.resize(static_cast<std::size_t>(std::max(count, 0)));
    return id;
}

/// Everything the child needs, prepared before fork(): after fork only async-signal-safe calls are allowed.
struct Prepared {
    std::string program;
    std::vector<std::string> argv;
    std::vector<std::string> envp;
    std::string cwd;
    std::optional<Identity> identity;
};

Prepared prepare(const SpawnOptions& options) {
    if (options.argv.empty()) {
        throw PeerError("spawn: empty argv");
    }
    Prepared p;
    p.argv = options.argv;
    p.cwd = options.cwd.string();

    std::map<std::string, std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string_view entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string_view::npos) {
            env.insert_or_assign(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
        }
    }
    if (!options.run_as.empty() && options.run_as != current_user()) {
        if (geteuid() != 0) {
            throw PeerError("spawn " + options.argv[0] + ": running as user " + options.run_as +
                            " needs root (current user: " + current_user() + ")");
        }
        p.identity = lookup_user(options.run_as);
        if (!p.identity) {
            throw PeerError("spawn " + options.argv[0] + ": no such user: " + options.run_as);
        }
        env["HOME"] = p.identity->home;
        env["USER"] = p.identity->name;
        env["LOGNAME"] = p.identity->name;
    }
    for (const auto& [key, value] : options.env.set) {
        env.insert_or_assign(key, value);
    }
    for (const auto& key : options.env.unset) {
        env.erase(key);
    }
    for (const auto& [key, value] : env) {
        p.envp.push_back(key + "=" + value);
    }

    auto found = find_program(options.argv[0]);
    if (found.empty()) {
        throw PeerError("spawn: program not found: " + options.argv[0]);
    }
    p.program = found.string();
    return p;
}

/// What the child reports through the exec-error pipe when it cannot exec.
struct ChildFailure {
    int stage;
    int error;
};
constexpr std::array<const char*, 6> stage_names = {"dup2", "chdir", "setgroups", "setgid", "setuid",
                                                    "execve"};

[[noreturn]] void child_fail(int pipe_fd, int stage) {
    ChildFailure failure{stage, errno};
    [[maybe_unused]] auto n = write(pipe_fd, &failure, sizeof failure);
    _exit(127);
}

/// Forks and execs. `fds` are the child's 0, 1, 2 (they are dup2'ed; -1 means /dev/null).
pid_t spawn_child(const Prepared& p, std::array<int, 3> fds) {
    std::vector<char*> argv;
    for (const auto& a : p.argv) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : p.envp) {
        envp.push_back(const_cast<char*>(e.c_str()));
    }
    envp.push_back(nullptr);

    std::array<int, 2> err_pipe{};
    if (pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
        throw sys_error("pipe2");
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(err_pipe[0]);
        close(err_pipe[1]);
        errno = saved;
        throw sys_error("fork");
    }
    if (pid == 0) {
        // Child: async-signal-safe calls only.
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; ++sig) {
            if (sig != SIGKILL && sig != SIGSTOP) {
                sigaction(sig, &dfl, nullptr);
            }
        }
        for (int target = 0; target < 3; ++target) {
            int fd = fds[static_cast<std::size_t>(target)];
            if (fd < 0) {
                fd = open("/dev/null", target == 0 ? O_RDONLY : O_WRONLY);
                if (fd < 0) {
                    child_fail(err_pipe[1], 0);
                }
            }
            if (fd == target) {
                // dup2 would be a no-op and keep FD_CLOEXEC; clear it instead.
                fcntl(fd, F_SETFD, 0);
            } else if (dup2(fd, target) < 0) {
                child_fail(err_pipe[1], 0);
            }
        }
        // No descriptor of the parent (listening sockets of a proxy under test, other peers' pipes) may leak.
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            for (int fd = 3; fd < 65536; ++fd) {
                fcntl(fd, F_SETFD, FD_CLOEXEC);
            }
        }
        if (!p.cwd.empty() && chdir(p.cwd.c_str()) != 0) {
            child_fail(err_pipe[1], 1);
        }
        if (p.identity) {
            if (setgroups(p.identity->groups.size(), p.identity->groups.data()) != 0) {
                child_fail(err_pipe[1], 2);
            }
            if (setgid(p.identity->gid) != 0) {
                child_fail(err_pipe[1], 3);
            }
            if (setuid(p.identity->uid) != 0) {
                child_fail(err_pipe[1], 4);
            }
        }
        // After the user switch, which clears it. If the parent is already gone, do not start at all.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        execve(p.program.c_str(), argv.data(), envp.data());
        child_fail(err_pipe[1], 5);
    }
    setpgid(pid, pid);  // also in the parent, so the group exists whichever runs first
    close(err_pipe[1]);
    ChildFailure failure{};
    ssize_t n = 0;
    do {
        n = read(err_pipe[0], &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    close(err_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof failure)) {
        int status = 0;
        waitpid(pid, &status, 0);
        const auto stage = static_cast<std::size_t>(failure.stage);
        throw PeerError("cannot start " + p.program + ": " +
                        (stage < stage_names.size() ? stage_names[stage] : "?") + ": " +
                        std::strerror(failure.error));
    }
    return pid;
}

/// A process identity that survives pid reuse.
struct ProcId {
    pid_t pid;
    unsigned long long start_time;
    bool operator==(const ProcId&) const = default;
};
std::vector<ProcId> descendant_ids(pid_t root);
bool any_alive(const std::vector<ProcId>& ids);

bool log_says_port_taken(const std::string& text) {
    for (const char* needle : {"in use", "could not bind", "Cannot bind", "Bind to port"}) {
        if (text.find(needle) != std::string::npos) {
            return true;
        }
    }
    return false;
}

void ignore_sigpipe_once() {
    static const bool done = [] {
        std::signal(SIGPIPE, SIG_IGN);
        return true;
    }();
    (void)done;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- Process

Process Process::start(const SpawnOptions& options, const std::filesystem::path& log_file, int stop_signal,
                       std::chrono::milliseconds grace) {
    const Prepared prepared = prepare(options);
    const int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        throw sys_error("open log " + log_file.string());
    }
    pid_t pid = 0;
    try {
        pid = spawn_child(prepared, {-1, log_fd, log_fd});
    } catch (...) {
        close(log_fd);
        throw;
    }
    close(log_fd);
    Process process;
    process.pid_ = pid;
    process.stop_signal_ = stop_signal;
    process.grace_ = grace;
    process.log_file_ = log_file;
    return process;
}

Process::~Process() { stop(); }

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)),
      reaped_(other.reaped_),
      exit_code_(other.exit_code_),
      stop_signal_(other.stop_signal_),
      grace_(other.grace_),
      log_file_(std::move(other.log_file_)) {}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        stop();
        pid_ = std::exchange(other.pid_, 0);
        reaped_ = other.reaped_;
        exit_code_ = other.exit_code_;
        stop_signal_ = other.stop_signal_;
        grace_ = other.grace_;
        log_file_ = std::move(other.log_file_);
    }
    return *this;
}

bool Process::running() {
    if (pid_ == 0 || reaped_) {
        return false;
    }
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        reaped_ = true;
        exit_code_ = decode_status(status);
        return false;
    }
    if (r < 0 && errno == ECHILD) {
        reaped_ = true;
        return false;
    }
    return true;
}

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (running()) {
        if (Clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(milliseconds(10));
    }
    return exit_code_;
}

void Process::signal_group(int sig) const noexcept {
    if (pid_ > 0) {
        kill(-pid_, sig);
    }
}

int Process::stop() noexcept {
    if (pid_ == 0) {
        return -1;
    }
    try {
        const std::vector<ProcId> tree = descendant_ids(pid_);
        auto gone = [&] { return !running() && !process_group_alive(pid_) && !any_alive(tree); };
        if (!gone()) {
            signal_group(stop_signal_);
            const auto deadline = Clock::now() + grace_;
            while (!gone() && Clock::now() < deadline) {
                std::this_thread::sleep_for(milliseconds(10));
            }
            if (!gone()) {
                signal_group(SIGKILL);
                for (const auto& id : tree) {
                    if (any_alive(std::vector<ProcId>{id})) {
                        kill(id.pid, SIGKILL);
                    }
                }
                const auto kill_deadline = Clock::now() + std::chrono::seconds(5);
                while (!gone() && Clock::now() < kill_deadline) {
                    std::this_thread::sleep_for(milliseconds(10));
                }
            }
        }
    } catch (...) {
        // /proc unreadable or out of memory: still kill and reap the child below.
        signal_group(SIGKILL);
    }
    if (!reaped_) {
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        reaped_ = true;
        exit_code_ = decode_status(status);
    }
    pid_ = 0;
    return exit_code_.value_or(-1);
}

// ---------------------------------------------------------------------------------------------- run()

std::string RunResult::describe() const {
    auto shorten = [](const std::string& s) {
        constexpr std::size_t max = 4000;
        return s.size() <= max ? s : "..." + s.substr(s.size() - max);
    };
    std::ostringstream text;
    text << "command: " << command << "\n";
    if (timed_out) {
        text << "TIMED OUT after " << elapsed.count() << " ms\n";
    } else {
        text << "exit code: " << exit_code << " (" << elapsed.count() << " ms)\n";
    }
    text << "stdout:\n" << shorten(out) << (out.empty() || out.back() == '\n' ? "" : "\n");
    text << "stderr:\n" << shorten(err) << (err.empty() || err.back() == '\n' ? "" : "\n");
    return text.str();
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
    ignore_sigpipe_once();
    const Prepared prepared =
        prepare(SpawnOptions{.argv = argv, .env = options.env, .cwd = options.cwd, .run_as = options.run_as});

    std::array<int, 2> in{-1, -1};
    std::array<int, 2> out{-1, -1};
    std::array<int, 2> err{-1, -1};
    auto close_all = [&] {
        for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) {
            if (fd >= 0) {
                close(fd);
            }
        }
    };
    if (pipe2(in.data(), O_CLOEXEC) != 0 || pipe2(out.data(), O_CLOEXEC) != 0 ||
        pipe2(err.data(), O_CLOEXEC) != 0) {
        auto e = sys_error("pipe2");
        close_all();
        throw e;
    }
    RunResult result;
    result.command = join(argv);
    const auto started = Clock::now();
    pid_t pid = 0;
    try {
        pid = spawn_child(prepared, {in[0], out[1], err[1]});
    } catch (...) {
        close_all();
        throw;
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in[0] = out[1] = err[1] = -1;
    for (int fd : {in[1], out[0], err[0]}) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    std::size_t written = 0;
    if (options.stdin_data.empty()) {
        close(in[1]);
        in[1] = -1;
    }

    const auto deadline = started + options.timeout;
    std::array<char, 65536> buffer{};
    auto drain = [&](int& fd, std::string& into) {
        for (;;) {
            const ssize_t n = read(fd, buffer.data(), buffer.size());
            if (n > 0) {
                into.append(buffer.data(), static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) {
                close(fd);
                fd = -1;
            }
            return;  // EOF, EAGAIN or error
        }
    };

    bool exited = false;
    int status = 0;
    while (true) {
        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
        }
        if (exited) {
            // Whatever the child wrote is in the pipes now; descendants that still hold them are not waited for.
            if (out[0] >= 0) {
                drain(out[0], result.out);
            }
            if (err[0] >= 0) {
                drain(err[0], result.err);
            }
            break;
        }
        const auto now = Clock::now();
        if (now >= deadline) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            result.timed_out = true;
            break;
        }
        std::vector<pollfd> fds;
        if (out[0] >= 0) {
            fds.push_back({out[0], POLLIN, 0});
        }
        if (err[0] >= 0) {
            fds.push_back({err[0], POLLIN, 0});
        }
        if (in[1] >= 0) {
            fds.push_back({in[1], POLLOUT, 0});
        }
        const auto left = std::chrono::duration_cast<milliseconds>(deadline - now).count();
        // Short waits: the child's exit is noticed by waitpid, not by poll (descendants may hold the pipes).
        poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left, 20)));
        for (const auto& p : fds) {
            if (p.revents == 0) {
                continue;
            }
            if (p.fd == out[0]) {
                drain(out[0], result.out);
            } else if (p.fd == err[0]) {
                drain(err[0], result.err);
            } else if (p.fd == in[1]) {
                const ssize_t n = write(in[1], options.stdin_data.data() + written,
                                        options.stdin_data.size() - written);
                if (n > 0) {
                    written += static_cast<std::size_t>(n);
                }
                if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == options.stdin_data.size() ||
                    (p.revents & (POLLERR | POLLHUP)) != 0) {
                    close(in[1]);
                    in[1] = -1;
                }
            }
        }
    }
    close_all();
    result.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    result.exit_code = result.timed_out ? -1 : decode_status(status);
    if (!result.timed_out) {
        // Leftover descendants in the child's group (e.g. a backgrounded process) are killed too.
        if (process_group_alive(pid)) {
            kill(-pid, SIGKILL);
        }
    }
    return result;
}

// ---------------------------------------------------------------------------------------------- misc

bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (ready()) {
            return true;
        }
        if (Clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(interval);
    }
}

namespace {

struct ProcStat {
    pid_t pid = 0;
    char state = '?';
    pid_t ppid = 0;
    pid_t pgrp = 0;
    unsigned long long start_time = 0;  ///< clock ticks since boot: tells a reused pid apart
};

template <class F>
void for_each_process(F&& f) {
    DIR* dir = opendir("/proc");
    if (dir == nullptr) {
        return;
    }
    while (const dirent* entry = readdir(dir)) {
        const char* name = entry->d_name;
        if (*name < '0' || *name > '9') {
            continue;
        }
        std::ifstream in(std::string("/proc/") + name + "/stat");
        std::string line;
        if (!std::getline(in, line)) {
            continue;  // exited meanwhile
        }
        // "pid (comm) state ppid pgrp ..." where comm may contain spaces and parentheses.
        const auto close_paren = line.rfind(')');
        if (close_paren == std::string::npos) {
            continue;
        }
        std::istringstream rest(line.substr(close_paren + 1));
        ProcStat st;
        st.pid = static_cast<pid_t>(std::atoi(name));
        rest >> st.state >> st.ppid >> st.pgrp;
        std::string skip;
        for (int field = 6; field < 22; ++field) {  // session .. itrealvalue
            rest >> skip;
        }
        rest >> st.start_time;
        if (rest) {
            f(st);
        }
    }
    closedir(dir);
}

/// True when a live process (neither a zombie nor dead) satisfies `match`.
template <typename Match>
bool any_live_process(Match&& match) {
    bool alive = false;
    for_each_process([&](const ProcStat& st) {
        if (st.state != 'Z' && st.state != 'X' && match(st)) {
            alive = true;
        }
    });
    return alive;
}

}  // namespace

bool process_group_alive(pid_t pgid) {
    return any_live_process([&](const ProcStat& st) { return st.pgrp == pgid; });
}

std::vector<pid_t> child_processes(pid_t parent) {
    std::vector<pid_t> pids;
    for_each_process([&](const ProcStat& st) {
        if (st.ppid == parent) {
            pids.push_back(st.pid);
        }
    });
    return pids;
}

namespace {

std::vector<ProcId> descendant_ids(pid_t root) {
    std::vector<ProcStat> live;
    for_each_process([&](const ProcStat& st) {
        if (st.state != 'Z' && st.state != 'X') {
            live.push_back(st);
        }
    });
    std::vector<ProcId> found;
    std::vector<pid_t> frontier = {root};
    while (!frontier.empty()) {
        const pid_t parent = frontier.back();
        frontier.pop_back();
        for (const auto& st : live) {
            const ProcId id{st.pid, st.start_time};
            if (st.ppid == parent && std::find(found.begin(), found.end(), id) == found.end()) {
                found.push_back(id);
                frontier.push_back(st.pid);
            }
        }
    }
    return found;
}

bool any_alive(const std::vector<ProcId>& ids) {
    return !ids.empty() && any_live_process([&](const ProcStat& st) {
        return std::find(ids.begin(), ids.end(), ProcId{st.pid, st.start_time}) != ids.end();
    });
}

}  // namespace

std::vector<pid_t> descendants(pid_t root) {
    std::vector<pid_t> pids;
    for (const auto& id : descendant_ids(root)) {
        pids.push_back(id.pid);
    }
    return pids;
}

bool any_alive(const std::vector<pid_t>& pids) {
    return !pids.empty() &&
           any_live_process([&](const ProcStat& st) { return std::find(pids.begin(), pids.end(), st.pid) != pids.end(); });
}

long proc_status_kb(pid_t pid, std::string_view field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    const std::string prefix = std::string(field) + ":";
    for (std::string line; std::getline(status, line);) {
        if (line.rfind(prefix, 0) == 0) {
            try {
                return std::stol(line.substr(prefix.size()));
            } catch (const std::exception&) {
                return -1;
            }
        }
    }
    return -1;
}

std::filesystem::path find_program(std::string_view program) {
    if (program.find('/') != std::string_view::npos) {
        return access(std::string(program).c_str(), X_OK) == 0 ? std::filesystem::path(program)
                                                                : std::filesystem::path();
    }
    const char* path_env = std::getenv("PATH");
    std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
    while (true) {
        const auto colon = path.find(':');
        const auto dir = path.substr(0, colon);
        const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
        if (access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate)) {
            return std::filesystem::absolute(candidate);
        }
        if (colon == std::string_view::npos) {
            return {};
        }
        path.remove_prefix(colon + 1);
    }
}

std::string current_user() {
    std::array<char, 16384> buffer{};
    passwd pw{};
    passwd* found = nullptr;
    if (getpwuid_r(geteuid(), &pw, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
        return pw.pw_name;
    }
    return std::to_string(geteuid());
}

StartedServer start_server(const ServerSpec& spec) {
    const int attempts = spec.fixed_port ? 1 : std::max(spec.attempts, 1);
    std::string last_failure;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        const std::uint16_t port = spec.fixed_port ? *spec.fixed_port : free_port();
        std::error_code ec;
        const auto log_offset = std::filesystem::exists(spec.log_file, ec)
                                    ? std::filesystem::file_size(spec.log_file, ec)
                                    : std::uintmax_t{0};
        Process process = Process::start(spec.make(port), spec.log_file, spec.stop_signal, spec.grace);
        bool died = false;
        const bool ready = wait_until(
            [&] {
                if (!process.running()) {
                    died = true;
                    return true;
                }
                return spec.ready(port);
            },
            spec.timeout);
        if (ready && !died) {
            return StartedServer{std::move(process), port};
        }
        const std::string new_log = read_file_from(spec.log_file, log_offset);
        if (died) {
            process.stop();  // reap leftovers of the group, if any
            last_failure = spec.name + " exited with code " + std::to_string(process.exit_code().value_or(-1)) +
                           " before it was ready on port " + std::to_string(port);
            if (log_says_port_taken(new_log) && attempt < attempts) {
                continue;  // lost the race for the port: try another one
            }
        } else {
            process.stop();
            last_failure = spec.name + " was not ready on port " + std::to_string(port) + " within " +
                           std::to_string(spec.timeout.count()) + " ms";
        }
        break;
    }
    throw PeerError(last_failure + "\n--- tail of " + spec.log_file.string() + " ---\n" +
                    tail_file(spec.log_file, 30));
}

}  // namespace gg::harness
