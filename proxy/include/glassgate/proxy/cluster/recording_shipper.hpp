#pragma once
// Shipping recordings into the shared store, so that every instance (and any machine with the
// configuration) can list, replay, export and verify every session (docs/ha.md, "Recordings").
//
// A recording file is append-only, so it is shipped as consecutive byte ranges (chunks of at most
// max_chunk bytes; StateStore::put_recording_chunk), while the session runs — every interval, so the
// store holds each checkpoint within about that long — and to its end once it is sealed (the last
// chunk says so). The local file is never deleted. A recording whose shipping fails is retried with
// backoff (1 s doubling to 10 s) without holding up the others; the failures are visible in `status`
// and the metrics. At start, every local recording the store does not hold whole is shipped (what an
// instance had not shipped when it stopped or crashed).
//
// Thread-safe: track()/finished() from any thread; the shipping runs on a thread of its own.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::cluster {

class RecordingShipper {
public:
    struct Options {
        std::chrono::milliseconds interval{1000};
        std::size_t max_chunk = 1u << 20;
        std::chrono::milliseconds max_backoff{10000};
    };
    struct Status {
        std::size_t unshipped = 0;        ///< recordings not yet whole in the store (running ones included)
        std::size_t failing = 0;          ///< of them, those whose last attempt failed
        std::uint64_t failures = 0;       ///< failed attempts since start
        std::string last_error;
    };

    /// `existing`: the local recording files present at start (session id, path); those the store does
    /// not hold whole are shipped as finished.
    RecordingShipper(StateStore& store, Metrics& metrics, Options options);
    ~RecordingShipper();
    RecordingShipper(const RecordingShipper&) = delete;
    RecordingShipper& operator=(const RecordingShipper&) = delete;

    static void declare_metrics(Metrics& m);

    /// Lists `dir` (*.ggrec, named after their session) now, before any session starts; the shipping
    /// thread checks them against the store and ships what it lacks.
    void adopt_existing(const std::filesystem::path& dir);
    void start();
    /// A session's recording file exists and grows.
    void track(const std::string& session_id, const std::filesystem::path& file);
    /// It is sealed (or abandoned): ship the rest and mark it complete.
    void finished(const std::string& session_id);
    /// Stops the thread after one last pass (what cannot be shipped now is shipped by the next start).
    void stop();

    [[nodiscard]] Status status() const;

private:
    struct Entry {
        std::filesystem::path file;
        std::uint64_t shipped = 0;          ///< bytes the store holds
        bool known = false;                 ///< `shipped` was read from the store
        bool finished = false;
        int failures = 0;
        std::chrono::steady_clock::time_point next_try{};
        std::string error;
    };
    void run();
    void pass(bool final_pass);
    /// Ships what is new of one recording; throws on a store or file failure.
    bool ship(const std::string& id, Entry& e);

    StateStore& store_;
    Metrics& metrics_;
    Options opts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::string, Entry> entries_;
    std::uint64_t failures_ = 0;
    std::string last_error_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace gg::proxy::cluster
