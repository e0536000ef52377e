#pragma once
// Admission by storage: whether a new session may start, given the room left under the state
// directory (recordings and the state store) and the store's write backlog. A session whose
// recording or audit trail cannot be written is never started (fail closed); the check runs before
// any credential is examined, so a refusal consumes nothing (no break-glass account, no device code).
//
// Thread-safe: statvfs(2) per check and the store's backlog status; no I/O besides those.

#include <chrono>
#include <functional>
#include <cstdint>
#include <mutex>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy {

class StorageGuard {
public:
    /// `dirs`: the directories whose file systems must have `min_free_bytes` available (the
    /// recordings directory and the store's directory; the same file system is checked once).
    StorageGuard(StateStore& store, Metrics& metrics, std::vector<std::filesystem::path> dirs,
                 std::uint64_t min_free_bytes);

    /// Declares this guard's metric families (and those of the store's backlog).
    static void declare_metrics(Metrics& m);

    struct Refusal {
        std::string why;           ///< for the log
        std::string user_message;  ///< for the client ("glassgate: ...")
        std::string sqlstate;      ///< for a PostgreSQL client
    };
    /// Why a new session must be refused now (nothing: it may start). Counts the refusal
    /// (glassgate_sessions_refused_storage_total{protocol}) and logs it, at most once per 5 s.
    [[nodiscard]] std::optional<Refusal> refusal(std::string_view protocol);
    /// What the client is told when storage is full.
    static constexpr std::string_view user_message =
        "glassgate: recording storage is full; new sessions are refused until space is freed";
    /// What the client is told when the shared state store cannot be reached.
    static constexpr std::string_view store_unreachable_message =
        "glassgate: the state store is unreachable; new sessions are refused until it is back";

    /// A check of the store itself (the instance heartbeat): why it cannot take a session now, or
    /// nothing. Set once, before sessions start.
    void set_store_check(std::function<std::optional<std::string>()> check) { store_check_ = std::move(check); }

    /// Refreshes the gauges (free bytes, backlog) and the store's failure counters for /metrics.
    void update_metrics();

private:
    /// Bytes available to glassgate on `dir`'s file system, or nothing when statvfs fails.
    static std::optional<std::uint64_t> free_bytes(const std::filesystem::path& dir);

    StateStore& store_;
    std::function<std::optional<std::string>()> store_check_;
    Metrics& metrics_;
    std::vector<std::filesystem::path> dirs_;
    std::uint64_t min_free_;
    std::mutex mu_;
    std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace gg::proxy
