#include "glassgate/proxy/cluster/recording_shipper.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <system_error>

namespace gg::proxy::cluster {

RecordingShipper::RecordingShipper(StateStore& store, Metrics& metrics, Options options)
    : store_(store), metrics_(metrics), opts_(options) {}

RecordingShipper::~RecordingShipper() { stop(); }

void RecordingShipper::declare_metrics(Metrics& m) {
    m.declare("glassgate_recordings_unshipped", Metrics::Type::gauge,
              "Recordings this instance has not yet shipped whole into the state store (running sessions included).");
    m.declare("glassgate_recordings_ship_failing", Metrics::Type::gauge,
              "Recordings whose last shipping attempt failed (retried with backoff; the local file is kept).");
    m.declare("glassgate_recording_ship_failures_total", Metrics::Type::counter, "Failed recording shipping attempts.");
    m.declare("glassgate_recording_shipped_bytes_total", Metrics::Type::counter, "Recording bytes shipped into the store.");
}

void RecordingShipper::adopt_existing(const std::filesystem::path& dir) {
    std::error_code ec;
    std::lock_guard lk(mu_);
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const auto& p = it->path();
        if (p.extension() != ".ggrec") continue;
        auto& e = entries_[p.stem().string()];
        e.file = p;
        e.finished = true;  // no session of this instance is running yet
    }
    if (ec) spdlog::error("recording shipping: cannot list {}: {}", dir.string(), ec.message());
}

void RecordingShipper::start() {
    thread_ = std::thread([this] { run(); });
}

void RecordingShipper::track(const std::string& session_id, const std::filesystem::path& file) {
    std::lock_guard lk(mu_);
    auto& e = entries_[session_id];
    e.file = file;
    e.known = true;  // a new recording: the store has none of it
}

void RecordingShipper::finished(const std::string& session_id) {
    {
        std::lock_guard lk(mu_);
        auto it = entries_.find(session_id);
        if (it == entries_.end()) return;
        it->second.finished = true;
        it->second.next_try = {};
    }
    cv_.notify_all();
}

void RecordingShipper::stop() {
    {
        std::lock_guard lk(mu_);
        if (stop_) return;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

RecordingShipper::Status RecordingShipper::status() const {
    std::lock_guard lk(mu_);
    Status s;
    s.unshipped = entries_.size();
    for (const auto& [id, e] : entries_) s.failing += e.failures > 0 ? 1 : 0;
    s.failures = failures_;
    s.last_error = last_error_;
    return s;
}

void RecordingShipper::run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
        lk.unlock();
        pass(false);
        lk.lock();
        cv_.wait_for(lk, opts_.interval, [&] { return stop_; });
    }
    lk.unlock();
    pass(true);
}

void RecordingShipper::pass(bool final_pass) {
    std::vector<std::pair<std::string, Entry>> due;
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lk(mu_);
        for (const auto& [id, e] : entries_) {
            if (final_pass || e.next_try <= now) due.emplace_back(id, e);
        }
    }
    for (auto& [id, e] : due) {
        bool complete = false;
        std::string error;
        try {
            complete = ship(id, e);
        } catch (const std::exception& ex) {
            error = ex.what();
        }
        std::lock_guard lk(mu_);
        auto it = entries_.find(id);
        if (it == entries_.end()) continue;
        auto& cur = it->second;
        cur.shipped = e.shipped;
        cur.known = e.known && error.empty();
        if (!error.empty()) {
            // The store may have taken the chunk whose reply was lost: ask it again next time.
            cur.known = false;
            ++failures_;
            last_error_ = "session " + id + ": " + error;
            metrics_.inc("glassgate_recording_ship_failures_total", {});
            ++cur.failures;
            const auto backoff = std::min<std::chrono::milliseconds>(
                opts_.max_backoff, std::chrono::milliseconds(1000) * (1 << std::min(cur.failures - 1, 6)));
            cur.next_try = std::chrono::steady_clock::now() + backoff;
            if (cur.failures == 1 || cur.failures % 10 == 0 || cur.error != error) {
                spdlog::error("recording of session {} not shipped into the state store (attempt {}, retried in {} ms; "
                              "the local file {} is kept): {}",
                              id, cur.failures, backoff.count(), cur.file.string(), error);
            }
            cur.error = error;
            continue;
        }
        if (cur.failures > 0) spdlog::warn("recording of session {} ships again after {} failure(s)", id, cur.failures);
        cur.failures = 0;
        cur.error.clear();
        // Complete only if nothing changed meanwhile (finished() may have come after the pass took it).
        if (complete && cur.finished) entries_.erase(it);
    }
    Status s = status();
    metrics_.set("glassgate_recordings_unshipped", {}, static_cast<double>(s.unshipped));
    metrics_.set("glassgate_recordings_ship_failing", {}, static_cast<double>(s.failing));
}

bool RecordingShipper::ship(const std::string& id, Entry& e) {
    if (!e.known) {
        const auto have = store_.shipped_recording(id);
        e.known = true;
        e.shipped = have.bytes;
        if (have.complete) return true;
    }
    std::ifstream in(e.file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + e.file.string());
    in.seekg(static_cast<std::streamoff>(e.shipped));
    std::string buf(opts_.max_chunk, '\0');
    for (;;) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        if (in.bad()) throw std::runtime_error("cannot read " + e.file.string());
        // The last chunk of a finished recording says so; an empty one if the rest was shipped already.
        const bool at_end = n < buf.size();
        const bool last = e.finished && at_end;
        if (n == 0 && !last) return false;
        store_.put_recording_chunk(id, e.shipped, std::string_view(buf.data(), n), last);
        e.shipped += n;
        metrics_.inc("glassgate_recording_shipped_bytes_total", {}, static_cast<double>(n));
        if (at_end) return last;
        in.clear();
    }
}

}  // namespace gg::proxy::cluster
