// Rotation of an SSH target's backend key against the real test sshd: through the real rotation
// worker and state store, and through the rotator directly for the resume and failure cases. The
// keys are checked with the real OpenSSH client (old key refused: ssh exits 255; new key admitted).

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "glassgate/config/config.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/rotation/rotation.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/proxy/ssh/ssh_rotator.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "harness/files.hpp"
#include "harness/process.hpp"
#include "harness/sshd_peer.hpp"

using namespace std::chrono_literals;
using gg::Secret;
using gg::harness::read_file;
using gg::harness::run;
using gg::harness::RunResult;
using gg::harness::SshdPeer;
using gg::harness::TempDir;
using gg::harness::wait_until;
using gg::harness::write_file;
namespace rotation = gg::proxy::rotation;

namespace {

gg::config::Target ssh_target(const SshdPeer& sshd) {
    gg::config::Target t;
    t.name = "web01";
    t.protocol = gg::config::Protocol::ssh;
    t.address = {sshd.host(), sshd.port()};
    t.backend_user = sshd.user();
    t.host_key = sshd.host_public_key();
    t.authorized_keys = sshd.authorized_keys().string();
    return t;
}

/// `ssh -i KEY user@sshd true` with the real client: 0 admitted, 255 refused.
int ssh_with(const SshdPeer& sshd, const TempDir& dir, const Secret& key, const std::string& name) {
    const auto file = dir / name;
    write_file(file, key.reveal(), 0600);
    auto argv = sshd.ssh_argv("true");
    for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] == "-i") argv[i + 1] = file.string();
    }
    return run(argv, {.timeout = 30s}).exit_code;
}

Secret key_of(const SshdPeer& sshd) { return Secret(read_file(sshd.client_key())); }

/// A second key listed by ops, plus a comment and a blank line: all must survive rotations.
std::string add_ops_lines(SshdPeer& sshd, const TempDir& dir) {
    const auto ops = dir / "ops_key";
    auto r = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@laptop", "-f", ops.string()});
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    std::string line = read_file(ops.string() + ".pub");
    while (!line.empty() && line.back() == '\n') line.pop_back();
    const std::string extra = "# listed by ops\n\nno-pty " + line;
    sshd.authorize_key(extra);
    return extra;
}

struct Stack {
    TempDir dir{"gg-sshrot"};
    gg::config::Config cfg;
    std::unique_ptr<gg::proxy::StateDir> sd;
    std::unique_ptr<gg::proxy::StateStore> store;
    gg::proxy::Metrics metrics;
    boost::asio::io_context io;
    std::shared_ptr<boost::asio::thread_pool> pool = std::make_shared<boost::asio::thread_pool>(2);
    std::shared_ptr<rotation::Worker> worker;
    std::thread io_thread;

    explicit Stack(gg::config::Target target) {
        cfg.targets.push_back(std::move(target));
        sd = std::make_unique<gg::proxy::StateDir>(dir / "state");
        store = gg::proxy::open_sqlite_store(sd->store_file(), sd->audit_key());
        rotation::declare_metrics(metrics);
    }
    ~Stack() {
        if (worker) worker->stop();
        io.stop();
        if (io_thread.joinable()) io_thread.join();
        pool->join();
    }
    gg::proxy::SecretStore secrets() { return gg::proxy::SecretStore(*store, sd->secrets_key()); }
    void start() {
        worker = std::make_shared<rotation::Worker>(io.get_executor(), pool, cfg, *store, sd->secrets_key(), metrics,
                                                    nullptr);
        worker->set_rotator(gg::config::Protocol::ssh, gg::proxy::ssh::backend_key_rotator());
        rotation::queue_rotation(*store, "web01", "01TESTSESSION", "bg-oncall-1",
                                 std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()));
        worker->start(100ms);
        io_thread = std::thread([this] {
            auto guard = boost::asio::make_work_guard(io);
            io.run();
        });
    }
    std::vector<rotation::Job> jobs() { return rotation::pending_jobs(*store); }
    bool audited(const std::string& type) {
        for (const auto& line : store->audit_lines(0, 100000)) {
            if (line.find("\"event\":\"" + type + "\"") != std::string::npos) return true;
        }
        return false;
    }
};

}  // namespace

TEST_SUITE_BEGIN("ssh rotation");

TEST_CASE("the worker rotates an ssh target's key: new key admitted, old key refused, other lines kept") {
    SshdPeer sshd;
    Stack s(ssh_target(sshd));
    const auto extra = add_ops_lines(sshd, s.dir);
    const Secret old_key = key_of(sshd);
    s.secrets().set("web01", old_key);
    REQUIRE(ssh_with(sshd, s.dir, old_key, "old_key") == 0);

    s.start();
    REQUIRE_MESSAGE(wait_until([&] { return s.jobs().empty(); }, 60s, 100ms),
                    (s.jobs().empty() ? std::string() : s.jobs()[0].last_error));
    auto stored = s.secrets().get("web01");
    REQUIRE(stored.has_value());
    CHECK(stored->reveal() != old_key.reveal());
    CHECK(stored->reveal().find("-----BEGIN OPENSSH PRIVATE KEY-----") == 0);

    CHECK(ssh_with(sshd, s.dir, *stored, "new_key") == 0);
    CHECK(ssh_with(sshd, s.dir, old_key, "old_key") == 255);

    const auto text = read_file(sshd.authorized_keys());
    CHECK(text.find(extra + "\n") != std::string::npos);
    CHECK(text.find(sshd.client_public_key()) == std::string::npos);
    CHECK(text.find(" glassgate-rotated-") != std::string::npos);
    struct stat st {};
    REQUIRE(::stat(sshd.authorized_keys().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    for (const auto& e : std::filesystem::directory_iterator(sshd.dir())) {
        CHECK_MESSAGE(e.path().filename().string().find(".glassgate-authorized_keys.") == std::string::npos,
                      "temp file left behind: " << e.path());
    }
    CHECK(s.audited("rotation.done"));
    CHECK(s.metrics.get("glassgate_rotations_total", {{"target", "web01"}, {"outcome", "done"}}) == 1.0);

    // Idempotent: re-running the same step finds the new key in place and the old one gone.
    auto again = gg::proxy::ssh::rotate_backend_key(s.cfg.targets[0], old_key, *stored, {});
    CHECK_MESSAGE(again.ok, again.error);
    CHECK(again.used_pending);
    CHECK(read_file(sshd.authorized_keys()) == text);

    // And the next rotation starts from the new key.
    const Secret newer = gg::proxy::ssh::generate_backend_key();
    auto next = gg::proxy::ssh::rotate_backend_key(s.cfg.targets[0], *stored, newer, {});
    CHECK_MESSAGE(next.ok, next.error);
    CHECK_FALSE(next.used_pending);
    CHECK(ssh_with(sshd, s.dir, newer, "newer_key") == 0);
    CHECK(ssh_with(sshd, s.dir, *stored, "new_key") == 255);
    CHECK(read_file(sshd.authorized_keys()).find(extra + "\n") != std::string::npos);
}

TEST_CASE("an attempt that stopped after adding the new key is finished by the next one") {
    SshdPeer sshd;
    TempDir dir("gg-sshrot");
    const auto target = ssh_target(sshd);
    const Secret old_key = key_of(sshd);
    const Secret next = gg::proxy::ssh::generate_backend_key();
    // Both keys listed: what a crash between the add and the removal leaves.
    write_file(dir / "next", next.reveal(), 0600);
    auto pub = run({"ssh-keygen", "-y", "-f", (dir / "next").string()});
    REQUIRE_MESSAGE(pub.exit_code == 0, pub.describe());
    sshd.authorize_key(gg::harness::ssh_key_without_comment(pub.out));

    auto r = gg::proxy::ssh::rotate_backend_key(target, old_key, next, {});
    CHECK_MESSAGE(r.ok, r.error);
    CHECK_FALSE(r.used_pending);
    const auto after = read_file(sshd.authorized_keys());
    CHECK(after.find(gg::harness::ssh_key_without_comment(pub.out)) != std::string::npos);
    CHECK(after.find(sshd.client_public_key()) == std::string::npos);
    CHECK(after.find("glassgate-rotated-") == std::string::npos);  // not added twice
    CHECK(ssh_with(sshd, dir, old_key, "old") == 255);
    CHECK(ssh_with(sshd, dir, next, "next2") == 0);
}

TEST_CASE("a backend host key that differs from the pinned one fails the rotation and changes nothing") {
    SshdPeer sshd;
    SshdPeer other;
    auto target = ssh_target(sshd);
    target.host_key = other.host_public_key();
    const auto before = read_file(sshd.authorized_keys());
    auto r = gg::proxy::ssh::rotate_backend_key(target, key_of(sshd), gg::proxy::ssh::generate_backend_key(), {});
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.error.find("host key mismatch") != std::string::npos, r.error);
    CHECK(read_file(sshd.authorized_keys()) == before);
}

TEST_CASE("an authorized_keys path that is not the one sshd reads fails before anything is written") {
    SshdPeer sshd;
    auto target = ssh_target(sshd);
    target.authorized_keys = (sshd.dir() / "elsewhere" / "authorized_keys").string();
    const auto before = read_file(sshd.authorized_keys());
    auto r = gg::proxy::ssh::rotate_backend_key(target, key_of(sshd), gg::proxy::ssh::generate_backend_key(), {});
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.error.find("AuthorizedKeysFile") != std::string::npos, r.error);
    CHECK_FALSE(std::filesystem::exists(sshd.dir() / "elsewhere"));
    CHECK(read_file(sshd.authorized_keys()) == before);
}

TEST_CASE("a password credential is not rotated, with a clear error") {
    SshdPeer sshd;
    auto r = gg::proxy::ssh::rotate_backend_key(ssh_target(sshd), Secret("hunter2"), gg::proxy::ssh::generate_backend_key(), {});
    CHECK_FALSE(r.ok);
    CHECK_MESSAGE(r.error.find("not a private key") != std::string::npos, r.error);
}

TEST_CASE("backend down: the rotation fails cleanly and stays pending with its pending key; the secret is kept") {
    SshdPeer sshd;
    Stack s(ssh_target(sshd));
    const Secret old_key = key_of(sshd);
    s.secrets().set("web01", old_key);
    sshd.stop();
    s.start();
    REQUIRE(wait_until([&] {
        auto j = s.jobs();
        return !j.empty() && j[0].attempts >= 1;
    }, 30s, 100ms));
    auto jobs = s.jobs();
    REQUIRE(jobs.size() == 1);
    CHECK_FALSE(jobs[0].pending.empty());
    CHECK_MESSAGE(jobs[0].last_error.find("cannot connect") != std::string::npos, jobs[0].last_error);
    CHECK(jobs[0].next_attempt.has_value());
    CHECK(s.secrets().get("web01")->reveal() == old_key.reveal());
    CHECK(s.audited("rotation.failed"));
    CHECK(s.metrics.get("glassgate_rotations_total", {{"target", "web01"}, {"outcome", "failed"}}) >= 1.0);
}

TEST_SUITE_END();
