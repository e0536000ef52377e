// `glassgate serve` as a real process: start-up checks, the admin socket, orderly stop on SIGTERM.

#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "harness/net.hpp"
#include "temp_dir.hpp"

extern char** environ;

using namespace gg;
using gg::harness::free_port;
using gg::test::TempDir;

namespace {

struct Proc {
    pid_t pid = -1;
    std::filesystem::path log;
    ~Proc() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
    /// Waits up to `timeout` for exit; returns the exit code, or -1 on timeout.
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            int status = 0;
            if (::waitpid(pid, &status, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return -1;
    }
    std::string output() const {
        std::ifstream in(log);
        return {std::istreambuf_iterator<char>(in), {}};
    }
};

std::unique_ptr<Proc> spawn(const std::vector<std::string>& args, const std::filesystem::path& log) {
    auto p = std::make_unique<Proc>();
    p->log = log;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    std::vector<char*> argv;
    std::string bin = GG_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&p->pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    return p;
}

/// Sends one line to the admin socket and returns the reply line ("" if it cannot connect).
std::string admin(const std::filesystem::path& sock, const std::string& request) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return "";
    }
    std::string req = request + "\n";
    (void)!::write(fd, req.data(), req.size());
    std::string reply;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);
    ::close(fd);
    return reply;
}

std::string wait_admin(const std::filesystem::path& sock) {
    for (int i = 0; i < 200; ++i) {
        auto r = admin(sock, R"({"cmd":"ping"})");
        if (!r.empty()) return r;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return "";
}

}  // namespace

TEST_SUITE_BEGIN("serve");

TEST_CASE("serve starts, answers on the admin socket, refuses a second instance, stops on SIGTERM") {
    TempDir dir;
    auto cfg = dir / "glassgate.toml";
    const auto ssh_port = free_port();
    std::ofstream(cfg) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n"
                       << "[listen]\nssh = \"127.0.0.1:" << ssh_port << "\"\n";
    auto p = spawn({"serve", "--config", cfg.string()}, dir / "serve.log");
    auto pong = wait_admin(dir / "state/admin.sock");
    REQUIRE_MESSAGE(!pong.empty(), p->output());
    CHECK(pong.find("\"ok\":true") != std::string::npos);
    CHECK(admin(dir / "state/admin.sock", "garbage").find("\"ok\":false") != std::string::npos);

    // A second serve on the same state is refused with a clear line, exit 1.
    auto second = spawn({"serve", "--config", cfg.string()}, dir / "second.log");
    CHECK(second->wait() == 1);
    CHECK(second->output().find("another glassgate serve is running") != std::string::npos);

    ::kill(p->pid, SIGTERM);
    CHECK(p->wait() == 0);
    CHECK_FALSE(std::filesystem::exists(dir / "state/admin.sock"));

    proxy::StateDir sd(dir / "state");
    auto store = proxy::open_sqlite_store(sd.store_file(), sd.audit_key());
    auto lines = store->audit_lines(1, 0);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].find("proxy.start") != std::string::npos);
    CHECK(lines[1].find("proxy.stop") != std::string::npos);
}

TEST_CASE("serve with a port in use exits 1 naming the address") {
    TempDir dir;
    harness::LoopbackListener busy(1);
    const auto addr = "127.0.0.1:" + std::to_string(busy.port());
    auto cfg = dir / "glassgate.toml";
    std::ofstream(cfg) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n"
                       << "[listen]\nssh = \"" << addr << "\"\n";
    auto p = spawn({"serve", "--config", cfg.string()}, dir / "serve.log");
    CHECK(p->wait() == 1);
    auto out = p->output();
    CHECK(out.find("cannot listen on " + addr) != std::string::npos);
    CHECK(out.find("Address already in use") != std::string::npos);
}

TEST_CASE("serve with a missing TLS certificate exits 1 naming the file") {
    TempDir dir;
    auto cfg = dir / "glassgate.toml";
    std::ofstream(cfg) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n"
                       << "[listen]\npostgres = \"127.0.0.1:" << free_port() << "\"\n"
                       << "[tls]\ncert_file = \"nope.crt\"\nkey_file = \"nope.key\"\n";
    auto p = spawn({"serve", "--config", cfg.string()}, dir / "serve.log");
    CHECK(p->wait() == 1);
    CHECK(p->output().find((dir / "nope.crt").string()) != std::string::npos);
}

TEST_CASE("serve with an invalid config exits 2 and lists the problems") {
    TempDir dir;
    auto cfg = dir / "glassgate.toml";
    std::ofstream(cfg) << "[server]\nstate_dirr = \"state\"\n";
    auto p = spawn({"serve", "--config", cfg.string()}, dir / "serve.log");
    CHECK(p->wait() == 2);
    CHECK(p->output().find("glassgate.toml:2:") != std::string::npos);
}

TEST_CASE("--log-format json writes one JSON object per line") {
    TempDir dir;
    auto cfg = dir / "glassgate.toml";
    std::ofstream(cfg) << "[server]\nstate_dir = \"state\"\nadmin_socket = \"state/admin.sock\"\n";
    auto p = spawn({"serve", "--log-format", "json", "--config", cfg.string()}, dir / "serve.log");
    REQUIRE(!wait_admin(dir / "state/admin.sock").empty());
    ::kill(p->pid, SIGTERM);
    CHECK(p->wait() == 0);
    auto out = p->output();
    CHECK(out.rfind("{\"time\":", 0) == 0);
    CHECK(out.find("\"level\":\"info\"") != std::string::npos);
}

TEST_SUITE_END();
