#include "glassgate/proxy/recording/recording_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/io/unique_fd.hpp"

namespace gg::proxy {

using Clock = std::chrono::steady_clock;
using session::Direction;
using session::EventKind;

namespace {

// Queued event, host byte order (internal, never stored): u64 t_us | u8 kind | u8 direction | u32 len | payload
constexpr std::size_t frame_head = 8 + 1 + 1 + 4;
constexpr std::size_t shrink_above = 256u * 1024u;  // give back buffer memory a burst left behind

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

/// write(2) until done; returns 0 or the errno of the failure.
int write_all(int fd, ByteView data) {
    while (!data.empty()) {
        const std::size_t chunk = std::min<std::size_t>(data.size(), std::size_t{1} << 30);
        const ssize_t n = ::write(fd, data.data(), chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EIO;
        data = data.subspan(static_cast<std::size_t>(n));
    }
    return 0;
}

bool safe_file_name(std::string_view id) {
    if (id.empty() || id.size() > 200 || id.front() == '.') return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-';
    });
}

/// An event of `payload` bytes fits when the queue is empty (so an event larger than the bound still
/// passes, alone) or when it stays within the bound. Caller holds f.mu.
template <class File>
bool fits(const File& f, std::size_t payload) {
    return f.pending.empty() || f.pending.size() + frame_head + payload <= f.buffer_bytes;
}

void release_if_oversized(Bytes& b, std::size_t used) {
    if (b.capacity() > shrink_above && used * 4 < b.capacity()) Bytes().swap(b);
}

}  // namespace

namespace detail {

struct RecordingFile {
    RecordingFile(std::filesystem::path p, std::size_t bound, int descriptor, session::RecordingEncoder enc)
        : path(std::move(p)), buffer_bytes(bound), fd(descriptor), encoder(std::move(enc)) {}

    const std::filesystem::path path;
    const std::size_t buffer_bytes;

    // Guarded by mu (callers and writer).
    mutable std::mutex mu;
    std::condition_variable done_cv;
    Bytes pending;
    std::uint64_t last_t_us = 0;
    bool wake_requested = false;   // crossed the early-flush mark since the writer last took the buffer
    bool failed = false;
    bool overflow = false;         // the failure is a full buffer (the disk still works)
    std::string failure;
    std::function<void(std::string)> on_failure;
    bool failure_notified = false;
    bool close_requested = false;
    std::uint64_t close_t_us = 0;
    bool abandoned = false;        // the handle was dropped without close()
    bool done = false;             // the writer is finished with the file (fd closed)
    RecordingHandle::SealInfo seal_info;

    // Writer thread only.
    int fd;
    session::RecordingEncoder encoder;
    Bytes batch;
    Bytes out;
    bool io_failed = false;
    bool overflow_noted = false;
    bool unsynced = false;
    Clock::time_point last_sync = Clock::now();
    Clock::time_point last_checkpoint = Clock::now();
};

struct RecordingCore {
    std::filesystem::path dir;
    Bytes key;
    Bytes signing_seed;
    RecordingOptions opts;
    UniqueFd dir_fd;

    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::shared_ptr<RecordingFile>> files;
    bool stop = false;
    bool wake = false;
    bool dir_dirty = false;        // a file was created since the directory was last synced
    std::thread writer;
    std::thread::id writer_id;

    std::atomic<std::uint64_t> bytes_written{0};
    std::atomic<std::uint64_t> events_written{0};
    std::atomic<std::uint64_t> syncs{0};
    std::atomic<std::uint64_t> failures{0};

    ~RecordingCore() {
        if (!key.empty()) crypto::cleanse(key.data(), key.size());
        if (!signing_seed.empty()) crypto::cleanse(signing_seed.data(), signing_seed.size());
    }

    void request_wake() {
        {
            std::lock_guard lk(mu);
            wake = true;
        }
        cv.notify_one();
    }

    /// Marks a file failed (writer thread, disk errors). The callback fires at the end of the pass.
    void io_fail(RecordingFile& f, std::string reason) {
        f.io_failed = true;
        std::lock_guard lk(f.mu);
        if (!f.failed) {
            f.failed = true;
            f.failure = std::move(reason);
            failures.fetch_add(1, std::memory_order_relaxed);
        }
    }

    void notify_failure(RecordingFile& f) {
        std::function<void(std::string)> cb;
        std::string reason;
        {
            std::lock_guard lk(f.mu);
            if (!f.failed || f.failure_notified || !f.on_failure) return;
            f.failure_notified = true;
            cb = f.on_failure;
            reason = f.failure;
        }
        cb(reason);
    }

    /// Turns the queued frames into records in f.out.
    void encode_batch(RecordingFile& f) {
        std::size_t pos = 0;
        while (pos + frame_head <= f.batch.size()) {
            std::uint64_t t_us = 0;
            std::uint32_t len = 0;
            std::memcpy(&t_us, f.batch.data() + pos, 8);
            const auto kind = static_cast<EventKind>(f.batch[pos + 8]);
            const auto dir_byte = static_cast<Direction>(f.batch[pos + 9]);
            std::memcpy(&len, f.batch.data() + pos + 10, 4);
            f.encoder.encode_to(f.out, t_us, kind, dir_byte, ByteView(f.batch).subspan(pos + frame_head, len));
            pos += frame_head + len;
            events_written.fetch_add(1, std::memory_order_relaxed);
        }
    }

    /// One writer pass over one file.
    void service(RecordingFile& f, bool stopping, Clock::time_point now) {
        bool closing = false;
        bool abandoned = false;
        bool overflow = false;
        std::uint64_t close_t = 0;
        std::uint64_t last_t = 0;
        {
            std::lock_guard lk(f.mu);
            if (f.done) return;
            f.batch.swap(f.pending);   // callers keep appending into the (empty) other buffer
            f.wake_requested = false;
            closing = f.close_requested;
            close_t = f.close_t_us;
            abandoned = f.abandoned;
            overflow = f.overflow;
            last_t = f.last_t_us;
        }
        const bool finishing = closing || abandoned || stopping;
        const std::size_t batch_used = f.batch.size();
        bool sealed = false;
        if (!f.io_failed) {
            encode_batch(f);
            if (overflow && !f.overflow_noted) {
                // Say in the recording itself why it ends here.
                f.overflow_noted = true;
                f.encoder.encode_to(f.out, last_t, EventKind::annotation, Direction::none,
                                    as_bytes("recording buffer full: event refused, session ended (fail closed)"));
            }
            if (f.encoder.has_unauthenticated() &&
                (finishing || opts.checkpoint_interval.count() == 0 || now - f.last_checkpoint >= opts.checkpoint_interval)) {
                if (!closing) f.encoder.checkpoint_to(f.out, last_t);
                f.last_checkpoint = now;
            }
            if (closing) {
                const Bytes seal = f.encoder.seal(std::max(close_t, last_t));
                f.out.insert(f.out.end(), seal.begin(), seal.end());
            }
            if (!f.out.empty()) {
                if (const int err = write_all(f.fd, f.out); err != 0) {
                    io_fail(f, "write " + f.path.string() + ": " + errno_text(err));
                } else {
                    bytes_written.fetch_add(f.out.size(), std::memory_order_relaxed);
                    f.unsynced = true;
                    sealed = closing;
                }
            }
            release_if_oversized(f.out, f.out.size());
            f.out.clear();
            if (!f.io_failed && f.unsynced && (finishing || now - f.last_sync >= opts.sync_interval)) {
                if (::fdatasync(f.fd) != 0) {
                    const int err = errno;
                    io_fail(f, "fdatasync " + f.path.string() + ": " + errno_text(err));
                    sealed = false;
                } else {
                    f.unsynced = false;
                    f.last_sync = now;
                    syncs.fetch_add(1, std::memory_order_relaxed);
                    // A recording is written once and read rarely: its pages, clean now, leave the page
                    // cache instead of pushing out the host's useful cache (and the kernel reuses them for
                    // the next writes instead of taking fresh memory). Advisory: a failure changes nothing.
                    (void)::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
                }
            }
        }
        release_if_oversized(f.batch, batch_used);
        f.batch.clear();

        if (finishing) {
            if (f.fd >= 0 && ::close(f.fd) != 0 && !f.io_failed) {
                const int err = errno;
                io_fail(f, "close " + f.path.string() + ": " + errno_text(err));
                sealed = false;
            }
            f.fd = -1;
        }
        notify_failure(f);
        if (!finishing) return;
        {
            std::lock_guard lk(f.mu);
            RecordingHandle::SealInfo& s = f.seal_info;
            s.events = f.encoder.event_count();
            s.chain_hash_hex = f.encoder.chain_hash_hex();
            s.ok = sealed;
            if (!sealed) {
                s.error = f.io_failed ? f.failure
                          : closing   ? "recording not sealed"
                          : abandoned ? "recording handle dropped without close()"
                                      : "recording service stopped before the session closed";
                if (!closing && !f.failed) {
                    f.failed = true;
                    f.failure = s.error;
                }
            }
            f.done = true;
        }
        f.done_cv.notify_all();
    }

    void run() {
        std::unique_lock lk(mu);
        for (;;) {
            cv.wait_for(lk, opts.flush_interval, [&] { return stop || wake; });
            wake = false;
            const bool stopping = stop;
            const bool sync_dir = dir_dirty;
            dir_dirty = false;
            auto snapshot = files;
            lk.unlock();

            // New directory entries must survive a crash too, else a whole recording could vanish.
            if (sync_dir && ::fsync(dir_fd.get()) == 0) syncs.fetch_add(1, std::memory_order_relaxed);
            const auto now = Clock::now();
            for (auto& f : snapshot) {
                try {
                    service(*f, stopping, now);
                } catch (const std::exception& e) {
                    // Only a broken crypto library or memory exhaustion gets here: fail this file closed
                    // rather than the whole proxy.
                    io_fail(*f, "recording " + f->path.string() + ": " + e.what());
                    notify_failure(*f);
                }
            }
            snapshot.clear();

            lk.lock();
            std::erase_if(files, [](const std::shared_ptr<RecordingFile>& f) {
                std::lock_guard flk(f->mu);
                return f->done;
            });
            if (stopping) return;
        }
    }
};

}  // namespace detail

// ---- service ----------------------------------------------------------------------------------

RecordingService::RecordingService(std::filesystem::path dir, std::vector<std::byte> hmac_key, Options opts)
    : core_(std::make_shared<detail::RecordingCore>()) {
    if (opts.flush_interval.count() <= 0 || opts.flush_interval > std::chrono::milliseconds(200)) {
        throw std::invalid_argument("recording: flush_interval must be in (0, 200 ms]");
    }
    if (opts.buffer_bytes < 4096) throw std::invalid_argument("recording: buffer_bytes must be at least 4096");
    if (opts.checkpoint_interval.count() < 0 || opts.sync_interval.count() < 0) {
        throw std::invalid_argument("recording: intervals must not be negative");
    }
    if (!opts.signing_seed.empty() && opts.signing_seed.size() != crypto::ed25519_seed_size) {
        throw std::invalid_argument("recording: signing_seed must be 32 bytes");
    }
    core_->signing_seed = std::move(opts.signing_seed);
    opts.signing_seed.clear();
    core_->opts = std::move(opts);
    core_->key = std::move(hmac_key);
    core_->dir = std::move(dir);
    std::error_code ec;
    if (std::filesystem::create_directories(core_->dir, ec)) {
        std::filesystem::permissions(core_->dir, std::filesystem::perms::owner_all, ec);
    }
    if (ec) throw std::system_error(ec, "create recordings directory " + core_->dir.string());
    core_->dir_fd.reset(::open(core_->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!core_->dir_fd) {
        const int err = errno;
        throw std::system_error(err, std::generic_category(), "open recordings directory " + core_->dir.string());
    }
    core_->writer = std::thread([core = core_.get()] { core->run(); });
    core_->writer_id = core_->writer.get_id();
}

RecordingService::~RecordingService() {
    {
        std::lock_guard lk(core_->mu);
        core_->stop = true;
    }
    core_->cv.notify_one();
    if (core_->writer.joinable()) core_->writer.join();
}

const std::filesystem::path& RecordingService::directory() const noexcept { return core_->dir; }

std::filesystem::path RecordingService::path_for(std::string_view session_id) const {
    return core_->dir / (std::string(session_id) + std::string(session::recording_file_suffix));
}

std::shared_ptr<RecordingHandle> RecordingService::open(const session::RecordingHeader& header) {
    const auto path = path_for(header.session_id);
    if (!safe_file_name(header.session_id)) {
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "create recording " + path.string() + ": session id is not a safe file name");
    }
    // O_EXCL: never reuse or follow anything already there (a planted symlink or an old recording).
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
    if (!fd) {
        const int err = errno;
        throw std::system_error(err, std::generic_category(), "create recording " + path.string());
    }
    // Until the writer owns it, a failure removes the file (only our own, just created, incomplete).
    struct Discard {
        const std::filesystem::path& path;
        bool keep = false;
        ~Discard() {
            if (!keep) ::unlink(path.c_str());
        }
    } discard{path};

    session::RecordingEncoder encoder(core_->key, header, core_->signing_seed);
    const Bytes start = encoder.begin();
    // Written now, so a session is refused when its recording cannot even start.
    if (const int err = write_all(fd.get(), start); err != 0) {
        throw std::system_error(err, std::generic_category(), "write recording " + path.string());
    }
    core_->bytes_written.fetch_add(start.size(), std::memory_order_relaxed);
    discard.keep = true;

    auto file = std::make_shared<detail::RecordingFile>(path, core_->opts.buffer_bytes, fd.release(), std::move(encoder));
    file->unsynced = true;
    {
        std::lock_guard lk(core_->mu);
        core_->files.push_back(file);
        core_->dir_dirty = true;
    }
    return std::shared_ptr<RecordingHandle>(new RecordingHandle(core_, std::move(file)));
}

RecordingService::Stats RecordingService::stats() const {
    Stats s;
    {
        std::lock_guard lk(core_->mu);
        s.open_files = core_->files.size();
    }
    s.bytes_written = core_->bytes_written.load(std::memory_order_relaxed);
    s.events_written = core_->events_written.load(std::memory_order_relaxed);
    s.syncs = core_->syncs.load(std::memory_order_relaxed);
    s.failures = core_->failures.load(std::memory_order_relaxed);
    return s;
}

// ---- handle -----------------------------------------------------------------------------------

RecordingHandle::RecordingHandle(std::shared_ptr<detail::RecordingCore> core, std::shared_ptr<detail::RecordingFile> file)
    : core_(std::move(core)), file_(std::move(file)) {}

RecordingHandle::~RecordingHandle() {
    {
        std::lock_guard lk(file_->mu);
        if (!file_->close_requested) file_->abandoned = true;
    }
    core_->request_wake();
}

bool RecordingHandle::append(EventKind kind, Direction direction, ByteView payload, std::uint64_t t_us) {
    if (session::is_integrity_kind(kind)) {
        throw std::invalid_argument("recording: " + session::event_kind_name(kind) + " cannot be appended");
    }
    if (static_cast<std::uint8_t>(direction) > static_cast<std::uint8_t>(Direction::server_to_client)) {
        throw std::invalid_argument("recording: invalid direction");
    }
    auto& f = *file_;
    bool wake = false;
    bool accepted = false;
    {
        std::lock_guard lk(f.mu);
        if (f.failed || f.close_requested || f.done) return false;
        if (payload.size() > session::recording_max_payload || !fits(f, payload.size())) {
            // The caller did not wait for room (has_room) or the event exceeds the format's bound: fail
            // closed rather than grow without limit.
            f.failed = true;
            f.overflow = true;
            f.failure = "recording buffer full for " + f.path.string() + ": " + std::to_string(f.pending.size()) +
                        " bytes queued, event of " + std::to_string(payload.size()) + " bytes, limit " +
                        std::to_string(f.buffer_bytes);
            core_->failures.fetch_add(1, std::memory_order_relaxed);
            wake = true;
        } else {
            std::byte head[frame_head];
            const auto len = static_cast<std::uint32_t>(payload.size());
            std::memcpy(head, &t_us, 8);
            head[8] = static_cast<std::byte>(kind);
            head[9] = static_cast<std::byte>(direction);
            std::memcpy(head + 10, &len, 4);
            f.pending.insert(f.pending.end(), head, head + frame_head);
            f.pending.insert(f.pending.end(), payload.begin(), payload.end());
            f.last_t_us = std::max(f.last_t_us, t_us);
            if (!f.wake_requested && f.pending.size() >= f.buffer_bytes / 4) {
                f.wake_requested = true;  // flush early, long before the bound
                wake = true;
            }
            accepted = true;
        }
    }
    if (wake) core_->request_wake();
    return accepted;
}

bool RecordingHandle::has_room(std::size_t payload_bytes) const {
    std::lock_guard lk(file_->mu);
    return file_->failed || file_->done || fits(*file_, payload_bytes);
}

bool RecordingHandle::failed() const {
    std::lock_guard lk(file_->mu);
    return file_->failed;
}

std::string RecordingHandle::failure() const {
    std::lock_guard lk(file_->mu);
    return file_->failure;
}

void RecordingHandle::set_on_failure(std::function<void(std::string)> callback) {
    bool already = false;
    {
        std::lock_guard lk(file_->mu);
        file_->on_failure = std::move(callback);
        already = file_->failed && !file_->failure_notified;
    }
    if (already) core_->request_wake();  // the writer fires it on its next pass
}

std::size_t RecordingHandle::buffered_bytes() const {
    std::lock_guard lk(file_->mu);
    return file_->pending.size();
}

RecordingHandle::SealInfo RecordingHandle::close(std::uint64_t t_us) {
    if (std::this_thread::get_id() == core_->writer_id) {
        throw std::logic_error("recording: close() called from the writer thread (failure callback)");
    }
    auto& f = *file_;
    {
        std::lock_guard lk(f.mu);
        if (!f.close_requested && !f.done) {
            f.close_requested = true;
            f.close_t_us = t_us;
        }
    }
    core_->request_wake();
    std::unique_lock lk(f.mu);
    f.done_cv.wait(lk, [&] { return f.done; });
    return f.seal_info;
}

std::filesystem::path RecordingHandle::path() const { return file_->path; }

}  // namespace gg::proxy
