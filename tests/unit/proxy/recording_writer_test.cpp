#include "glassgate/proxy/recording/recording_writer.hpp"

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <thread>
#include <vector>

using namespace gg;
using namespace gg::proxy;
using session::Direction;
using session::EventKind;
using namespace std::chrono_literals;
using gg::test::TempDir;

namespace {

const Bytes the_key = to_bytes("recording-test-key-0123456789abc");

session::RecordingHeader header(std::string id) {
    session::RecordingHeader h;
    h.session_id = std::move(id);
    h.protocol = "ssh";
    h.target = "web01";
    h.identity = "alice";
    h.started_unix_us = 1'700'000'000'000'000;
    return h;
}

Bytes slurp(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return to_bytes(s);
}

RecordingService::Options fast() {
    RecordingService::Options o;
    o.flush_interval = 10ms;
    return o;
}

/// The default options with a small buffer of `bytes`: a fast producer soon finds it full.
RecordingService::Options small_buffer(std::size_t bytes) {
    RecordingService::Options o;
    o.buffer_bytes = bytes;
    return o;
}

/// Polls until `pred` holds or 5 s pass.
template <typename Pred>
bool eventually(Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

}  // namespace

TEST_SUITE_BEGIN("recording_writer");

TEST_CASE("a closed recording is sealed, verifiable and matches its SealInfo") {
    TempDir tmp;
    RecordingService svc(tmp.path() / "recordings", the_key, fast());
    auto h = svc.open(header("sess-1"));
    CHECK(h->path() == tmp.path() / "recordings" / "sess-1.ggrec");
    CHECK(svc.path_for("sess-1") == h->path());
    struct stat st{};
    REQUIRE(::stat(h->path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((tmp.path() / "recordings").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);

    CHECK(h->append(EventKind::resize, Direction::client_to_server, session::encode_resize({120, 40}), 1));
    CHECK(h->append(EventKind::term_input, Direction::client_to_server, as_bytes("ls\r"), 10));
    CHECK(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("a  b  c\r\n"), 20));
    CHECK(h->append(EventKind::annotation, Direction::none, as_bytes("time-cap warning sent"), 30));
    CHECK(h->append(EventKind::exit_status, Direction::server_to_client, session::encode_exit_status(0), 40));
    CHECK(h->append(EventKind::term_output, Direction::server_to_client, {}, 41));
    CHECK_THROWS_AS(h->append(EventKind::seal, Direction::none, {}, 50), std::invalid_argument);
    CHECK_THROWS_AS(h->append(EventKind::annotation, static_cast<Direction>(7), {}, 50), std::invalid_argument);

    const auto info = h->close(100);
    CHECK(info.ok);
    CHECK(info.error.empty());
    CHECK(info.events == 6);
    CHECK_FALSE(h->failed());
    CHECK_FALSE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("late"), 101));
    const auto again = h->close(200);
    CHECK(again.ok);
    CHECK(again.chain_hash_hex == info.chain_hash_hex);

    const auto rec = session::read_recording(slurp(h->path()), the_key);
    INFO(rec.report.summary());
    CHECK(rec.report.intact);
    CHECK(rec.report.sealed);
    CHECK(session::matches_seal(rec.report, info.events, info.chain_hash_hex));
    CHECK(rec.header == header("sess-1"));
    REQUIRE(rec.events.size() == 6);
    CHECK(rec.events[1].payload == to_bytes("ls\r"));
    CHECK(rec.events[3].kind == EventKind::annotation);
    CHECK(svc.stats().events_written == 6);
}

TEST_CASE("open refuses existing files, planted symlinks and unsafe session ids") {
    TempDir tmp;
    RecordingService svc(tmp.path(), the_key, fast());
    auto h = svc.open(header("dup"));
    try {
        (void)svc.open(header("dup"));
        FAIL("opened an existing recording");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::file_exists);
        CHECK(std::string(e.what()).find((tmp.path() / "dup.ggrec").string()) != std::string::npos);
    }
    std::filesystem::create_symlink("/dev/null", tmp.path() / "planted.ggrec");
    CHECK_THROWS_AS((void)svc.open(header("planted")), std::system_error);
    for (const char* bad : {"", "../escape", "a/b", ".hidden", "sp ace", "nul\n"}) {
        INFO(bad);
        CHECK_THROWS_AS((void)svc.open(header(bad)), std::system_error);
    }
    CHECK(h->close(1).ok);
}

TEST_CASE("the service refuses a directory it cannot create, and bad options") {
    TempDir tmp;
    std::ofstream(tmp.path() / "file") << "x";
    CHECK_THROWS_AS(RecordingService(tmp.path() / "file" / "sub", the_key), std::system_error);
    RecordingService::Options o;
    o.flush_interval = 500ms;
    CHECK_THROWS_AS(RecordingService(tmp.path() / "r", the_key, o), std::invalid_argument);
    o = {};
    o.buffer_bytes = 100;
    CHECK_THROWS_AS(RecordingService(tmp.path() / "r", the_key, o), std::invalid_argument);
}

TEST_CASE("events from several threads land in order per session") {
    TempDir tmp;
    RecordingService svc(tmp.path(), the_key, fast());
    constexpr int sessions = 2;
    constexpr int threads = 4;
    constexpr int per_thread = 3000;
    std::vector<std::shared_ptr<RecordingHandle>> handles;
    for (int s = 0; s < sessions; ++s) handles.push_back(svc.open(header("multi-" + std::to_string(s))));
    std::atomic<std::uint64_t> clock{0};
    std::vector<std::thread> workers;
    for (int s = 0; s < sessions; ++s) {
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, s, t] {
                for (int i = 0; i < per_thread; ++i) {
                    const std::string p = std::to_string(t) + ":" + std::to_string(i);
                    REQUIRE(handles[static_cast<std::size_t>(s)]->append(EventKind::term_output,
                                                                       Direction::server_to_client, as_bytes(p), ++clock));
                }
            });
        }
    }
    for (auto& w : workers) w.join();
    for (auto& h : handles) {
        const auto info = h->close(clock + 1);
        CHECK(info.ok);
        CHECK(info.events == threads * per_thread);
        const auto rec = session::read_recording(slurp(h->path()), the_key);
        CHECK(rec.report.intact);
        CHECK(rec.report.sealed);
        REQUIRE(rec.events.size() == threads * per_thread);
        std::map<int, int> next;
        std::uint64_t last_t = 0;
        bool ordered = true;
        for (const auto& e : rec.events) {
            const std::string p(as_chars(e.payload));
            const int t = std::stoi(p.substr(0, p.find(':')));
            const int i = std::stoi(p.substr(p.find(':') + 1));
            ordered = ordered && i == next[t] && e.t_us >= last_t;
            next[t] = i + 1;
            last_t = e.t_us;
        }
        CHECK(ordered);
        for (int t = 0; t < threads; ++t) CHECK(next[t] == per_thread);
    }
}

TEST_CASE("the file is readable, intact and authenticated while the session is still open") {
    TempDir tmp;
    RecordingService svc(tmp.path(), the_key, fast());
    auto h = svc.open(header("live"));
    for (int i = 0; i < 10; ++i) {
        REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("line\r\n"), std::uint64_t(i)));
    }
    session::VerifyReport rep;
    CHECK(eventually([&] {
        rep = session::verify_recording(slurp(h->path()), the_key);
        return rep.authenticated_events == 10;
    }));
    CHECK(rep.intact);
    CHECK_FALSE(rep.sealed);
    CHECK(rep.events == 10);
    CHECK(rep.summary() == "incomplete: not sealed, 10 events, authenticated through checkpoint " +
                               std::to_string(rep.checkpoints) + " (10 events)");
    CHECK(h->close(20).ok);
    CHECK(session::verify_recording(slurp(h->path()), the_key).sealed);
}

TEST_CASE("fdatasync is rate-limited per file, never per event") {
    TempDir tmp;
    RecordingService::Options o = fast();
    o.sync_interval = 1000ms;
    RecordingService svc(tmp.path(), the_key, o);
    auto h = svc.open(header("sync"));
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t t = 0;
    while (std::chrono::steady_clock::now() - start < 400ms) {
        REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("x"), ++t));
        std::this_thread::sleep_for(1ms);
    }
    const auto before_close = svc.stats().syncs;
    CHECK(before_close <= 2);  // the directory entry, at most one data sync
    CHECK(h->close(t + 1).ok);
    CHECK(svc.stats().syncs == before_close + 1);  // the seal
    CHECK(session::verify_recording(slurp(h->path()), the_key).events == t);
}

/// Whether `dir` is on tmpfs, where the page cache is the storage and cannot be dropped.
static bool on_tmpfs(const std::filesystem::path& dir) {
    struct statfs st {};
    return ::statfs(dir.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
}

TEST_CASE("a recording's synced pages leave the page cache") {
    auto base = std::filesystem::temp_directory_path();
    if (on_tmpfs(base)) base = std::filesystem::current_path();  // the build tree
    if (on_tmpfs(base)) {
        MESSAGE("both the temporary directory and the build tree are on tmpfs: nothing to drop, not checked");
        return;
    }
    TempDir tmp(base);
    RecordingService::Options o = fast();
    o.sync_interval = 0ms;  // every flush is synced (and its pages dropped)
    RecordingService svc(tmp.path(), the_key, o);
    auto h = svc.open(header("cache"));
    const std::string chunk(64 * 1024, 'z');
    std::uint64_t t = 0;
    for (int i = 0; i < 256; ++i) {  // 16 MiB
        while (h->buffered_bytes() > 1024 * 1024) std::this_thread::sleep_for(1ms);
        REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes(chunk), ++t));
    }
    REQUIRE(h->close(t + 1).ok);

    // mincore(2) on a mapping of the file tells which of its pages are in the page cache.
    const int fd = ::open(h->path().c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const auto size = static_cast<std::size_t>(std::filesystem::file_size(h->path()));
    REQUIRE(size > 16u * 1024 * 1024);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(map != MAP_FAILED);
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> resident((size + page - 1) / page);
    REQUIRE(::mincore(map, size, resident.data()) == 0);
    const auto cached = std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; });
    ::munmap(map, size);
    ::close(fd);
    INFO(cached << " of " << resident.size() << " pages still cached");
    CHECK(static_cast<std::size_t>(cached) * 10 < resident.size());
    CHECK(session::verify_recording(slurp(h->path()), the_key).sealed);
}

TEST_CASE("kill -9 of a recording process leaves a file readable up to its last whole event") {
    TempDir tmp;
    const auto path = tmp.path() / "killed.ggrec";
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        try {
            RecordingService svc(tmp.path(), the_key, fast());
            auto h = svc.open(header("killed"));
            for (std::uint64_t i = 0;; ++i) {
                const std::string p = "output line " + std::to_string(i) + std::string(50, '.') + "\r\n";
                if (!h->append(EventKind::term_output, Direction::server_to_client, as_bytes(p), i)) ::_exit(3);
                if (i % 20 == 0) std::this_thread::sleep_for(1ms);
            }
        } catch (...) {
            ::_exit(2);
        }
    }
    const bool grew = eventually([&] {
        std::error_code ec;
        return std::filesystem::file_size(path, ec) > 64 * 1024 && !ec;
    });
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(grew);
    CHECK(WIFSIGNALED(status));

    const Bytes file = slurp(path);
    const auto rec = session::read_recording(file, the_key);
    INFO(rec.report.summary());
    CHECK(rec.report.intact);
    CHECK_FALSE(rec.report.sealed);
    CHECK(rec.report.events > 100);
    CHECK(rec.report.authenticated_events > 0);
    CHECK(rec.report.authenticated_events <= rec.report.events);
    for (std::size_t i = 0; i < rec.events.size(); ++i) CHECK(rec.events[i].t_us == i);

    // The same file also cut inside its last record (as a torn write would leave it).
    const Bytes torn(file.begin(), file.end() - static_cast<std::ptrdiff_t>(rec.report.trailing_bytes + 7));
    const auto rep = session::verify_recording(torn, the_key);
    CHECK(rep.intact);
    CHECK(rep.trailing_bytes > 0);
    CHECK(rep.events + 1 >= rec.report.events);  // the last record was an event or a checkpoint
    CHECK(rep.events <= rec.report.events);
}

TEST_CASE("a full buffer refuses the event, reports the failure once and still seals the file") {
    TempDir tmp;
    RecordingService svc(tmp.path(), the_key, small_buffer(4096));
    auto h = svc.open(header("overflow"));
    std::promise<std::string> fired;
    std::atomic<int> calls{0};
    h->set_on_failure([&](std::string why) {
        if (calls++ == 0) fired.set_value(std::move(why));
    });
    REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("before"), 1));
    const Bytes big(5000, std::byte{'x'});
    CHECK_FALSE(h->append(EventKind::term_output, Direction::server_to_client, big, 2));
    CHECK(h->failed());
    CHECK(h->failure().find("recording buffer full") != std::string::npos);
    auto fut = fired.get_future();
    REQUIRE(fut.wait_for(5s) == std::future_status::ready);
    CHECK(fut.get() == h->failure());
    CHECK_FALSE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("after"), 3));
    const auto info = h->close(4);
    CHECK(info.ok);
    CHECK(calls == 1);
    const auto rec = session::read_recording(slurp(h->path()), the_key);
    CHECK(rec.report.sealed);
    REQUIRE(rec.events.size() == 2);
    CHECK(rec.events[0].payload == to_bytes("before"));
    CHECK(rec.events[1].kind == EventKind::annotation);
    CHECK(session::decode_text(rec.events[1].payload).find("buffer full") != std::string::npos);
    CHECK(svc.stats().failures == 1);

    // A producer much faster than the writer hits the bound too, and the callback set late still fires.
    auto fast_producer = svc.open(header("overflow-2"));
    bool refused = false;
    for (int i = 0; i < 100000 && !refused; ++i) {
        refused = !fast_producer->append(EventKind::term_output, Direction::server_to_client, Bytes(1000), 5);
    }
    CHECK(refused);
    std::promise<void> late;
    fast_producer->set_on_failure([&](std::string) { late.set_value(); });
    CHECK(late.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(fast_producer->close(6).ok);
}

TEST_CASE("has_room: a producer that waits for room is never refused, and an event larger than the bound passes alone") {
    TempDir tmp;
    RecordingService svc(tmp.path(), the_key, small_buffer(4096));
    auto h = svc.open(header("room"));
    const Bytes big(20000, std::byte{'b'});
    CHECK(h->has_room(big.size()));  // the queue is empty
    REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, big, 1));
    CHECK_FALSE(h->has_room(10));    // over the bound until the writer takes it
    // A producer far faster than the writer, waiting for room each time: nothing refused, all recorded.
    const Bytes kib(1000, std::byte{'k'});
    for (std::uint64_t i = 0; i < 2000; ++i) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!h->has_room(kib.size()) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100us);
        REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, kib, 2 + i));
    }
    CHECK_FALSE(h->failed());
    const auto info = h->close(5000);
    CHECK(info.ok);
    const auto rec = session::read_recording(slurp(h->path()), the_key);
    CHECK(rec.report.sealed);
    CHECK(rec.events.size() == 2001);
    CHECK(svc.stats().failures == 0);
}

TEST_CASE("a disk error fails that session only: callback fired, file readable, others sealed") {
    // A write error that works as root without mounts: RLIMIT_FSIZE with SIGXFSZ ignored makes write(2)
    // beyond the limit fail with EFBIG (a real kernel error path). The limit is process-wide, so only
    // the big session crosses it; it is restored before any check.
    TempDir tmp;
    constexpr rlim_t limit = 64 * 1024;
    struct sigaction ign{}, old_action{};
    ign.sa_handler = SIG_IGN;
    REQUIRE(::sigaction(SIGXFSZ, &ign, &old_action) == 0);
    rlimit old_limit{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    rlimit small = old_limit;
    small.rlim_cur = limit;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);

    std::string reason;
    bool big_refused = false;
    RecordingHandle::SealInfo big_info, small_info;
    std::filesystem::path big_path, small_path;
    {
        RecordingService svc(tmp.path(), the_key, fast());
        auto big = svc.open(header("big"));
        auto little = svc.open(header("small"));
        big_path = big->path();
        small_path = little->path();
        std::promise<std::string> fired;
        big->set_on_failure([&](std::string why) { fired.set_value(std::move(why)); });
        const Bytes kib(1024, std::byte{'z'});
        for (std::uint64_t i = 0; i < 400 && !big_refused; ++i) {
            big_refused = !big->append(EventKind::term_output, Direction::server_to_client, kib, i);
            if (i % 16 == 0) std::this_thread::sleep_for(2ms);
        }
        for (std::uint64_t i = 0; i < 20; ++i) {
            REQUIRE(little->append(EventKind::term_input, Direction::client_to_server, as_bytes("k"), i));
        }
        auto fut = fired.get_future();
        if (fut.wait_for(5s) == std::future_status::ready) reason = fut.get();
        big_refused = big_refused || !big->append(EventKind::term_output, Direction::server_to_client, kib, 1000);
        small_info = little->close(30);
        big_info = big->close(1001);
    }
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    REQUIRE(::sigaction(SIGXFSZ, &old_action, nullptr) == 0);

    CHECK(big_refused);
    CHECK(reason == "write " + big_path.string() + ": File too large");
    CHECK_FALSE(big_info.ok);
    CHECK(big_info.error == reason);
    CHECK(small_info.ok);

    const auto big_rec = session::verify_recording(slurp(big_path), the_key);
    INFO(big_rec.summary());
    CHECK(big_rec.intact);
    CHECK_FALSE(big_rec.sealed);
    CHECK(std::filesystem::file_size(big_path) <= limit);
    CHECK(big_rec.events > 0);
    const auto small_rec = session::verify_recording(slurp(small_path), the_key);
    CHECK(small_rec.sealed);
    CHECK(small_rec.events == 20);
}

TEST_CASE("a dropped handle and a stopped service leave flushed, authenticated, unsealed files") {
    TempDir tmp;
    std::shared_ptr<RecordingHandle> survivor;
    std::filesystem::path dropped_path;
    {
        RecordingService svc(tmp.path(), the_key, fast());
        {
            auto dropped = svc.open(header("dropped"));
            dropped_path = dropped->path();
            REQUIRE(dropped->append(EventKind::term_output, Direction::server_to_client, as_bytes("bye"), 1));
        }
        survivor = svc.open(header("survivor"));
        REQUIRE(survivor->append(EventKind::term_output, Direction::server_to_client, as_bytes("still here"), 1));
        CHECK(eventually([&] { return svc.stats().open_files == 1; }));
    }
    const auto dropped_rep = session::verify_recording(slurp(dropped_path), the_key);
    CHECK(dropped_rep.intact);
    CHECK_FALSE(dropped_rep.sealed);
    CHECK(dropped_rep.authenticated_events == 1);

    CHECK_FALSE(survivor->append(EventKind::term_output, Direction::server_to_client, as_bytes("too late"), 2));
    CHECK(survivor->failed());
    const auto info = survivor->close(3);
    CHECK_FALSE(info.ok);
    CHECK(info.error.find("service stopped") != std::string::npos);
    const auto rep = session::verify_recording(slurp(survivor->path()), the_key);
    CHECK(rep.intact);
    CHECK_FALSE(rep.sealed);
    CHECK(rep.authenticated_events == 1);
}

TEST_CASE("sustained throughput with back-pressure") {
    TempDir tmp;
    RecordingService svc(tmp.path(), the_key);  // default options
    auto h = svc.open(header("bulk"));
    const Bytes chunk(16 * 1024, std::byte{'b'});
    constexpr int chunks = 4096;  // 64 MiB
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < chunks; ++i) {
        while (h->buffered_bytes() > RecordingService::Options{}.buffer_bytes / 2) std::this_thread::sleep_for(100us);
        REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, chunk, std::uint64_t(i)));
    }
    const double appended = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto info = h->close(chunks);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(info.ok);
    CHECK(info.events == chunks);
    MESSAGE("recording writer: 64 MiB in 16 KiB events: appended at " << 64.0 / appended
            << " MiB/s; sealed and synced after " << secs << " s = " << 64.0 / secs << " MiB/s");
    const auto rep = session::verify_recording(slurp(h->path()), the_key);
    CHECK(rep.sealed);
    CHECK(rep.events == chunks);
}


TEST_CASE("with a signing key every checkpoint and the seal are signed (version 2, verifiable by public key)") {
    TempDir tmp;
    const Bytes seed(32, std::byte{0x42});
    RecordingService::Options o;
    o.flush_interval = 20ms;
    o.signing_seed = seed;
    RecordingService svc(tmp / "r", the_key, o);
    auto h = svc.open(header("signed-1"));
    for (std::uint64_t i = 0; i < 5; ++i) {
        REQUIRE(h->append(EventKind::term_output, Direction::server_to_client, as_bytes("x"), i));
        std::this_thread::sleep_for(30ms);  // let the writer checkpoint between events
    }
    const auto info = h->close(10);
    REQUIRE(info.ok);
    const Bytes file = slurp(h->path());
    const auto pub = crypto::ed25519_public_from_seed(seed);
    const auto rec = session::read_recording(file, {}, pub);
    INFO(rec.report.summary());
    CHECK(rec.report.intact);
    CHECK(rec.report.sealed);
    CHECK(rec.report.format_version == 2);
    CHECK(rec.report.signatures == rec.report.checkpoints);
    CHECK(rec.report.signatures >= 2);
    CHECK(session::matches_seal(rec.report, info.events, info.chain_hash_hex));
    CHECK(rec.header.extra.at("signing_key").as_string() == session::ed25519_key_text(pub));
    CHECK(session::verify_recording(file, the_key).signatures == rec.report.signatures);
    CHECK(o.signing_seed == seed);  // the caller's copy is untouched; the service keeps its own

    RecordingService::Options bad;
    bad.signing_seed = Bytes(31);
    CHECK_THROWS_AS(RecordingService(tmp / "r2", the_key, bad), std::invalid_argument);
}

TEST_SUITE_END();
