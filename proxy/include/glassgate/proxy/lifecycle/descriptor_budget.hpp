#pragma once
// Admission by open-file descriptors: a session holds about three (the client's socket, the backend's
// socket and its recording file). When the process's limit (RLIMIT_NOFILE, whose soft value serve
// raises to the hard one at start) is nearly used up, a new session is refused at once with a message
// that names the limit, instead of failing later on a descriptor it cannot get, which would surface
// as "backend unreachable" or "cannot record" and hide the real cause.
//
// Thread-safe: each check counts /proc/self/fd (a directory read, tens of microseconds for a thousand
// descriptors), once per new session, before any credential is examined.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "glassgate/proxy/ops/metrics.hpp"

namespace gg::proxy {

class DescriptorBudget {
public:
    static constexpr std::size_t per_session = 3;  ///< client socket, backend socket, recording file
    static constexpr std::size_t reserve = 32;     ///< kept free for the store, logs, the admin socket, ...

    /// Reads the current limit and the descriptors in use now (call after the limit was raised and
    /// the listeners, store and log are open).
    explicit DescriptorBudget(Metrics& metrics);

    static void declare_metrics(Metrics& m);

    [[nodiscard]] std::uint64_t limit() const noexcept { return limit_; }
    /// Sessions that fit with what was in use at construction.
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

    /// Why a new session must be refused now, for the log (nothing: it may start). Counts the refusal
    /// (glassgate_sessions_refused_capacity_total{protocol}); logs at most once per 5 s.
    [[nodiscard]] std::optional<std::string> refusal(std::string_view protocol);
    /// What the client is told when refusal() said no.
    [[nodiscard]] std::string user_message() const;

    /// Descriptors open in this process now (/proc/self/fd), or nothing if it cannot be read.
    static std::optional<std::size_t> open_descriptors();

private:
    Metrics& metrics_;
    std::uint64_t limit_ = 0;
    std::size_t capacity_ = 0;
    std::mutex mu_;
    std::chrono::steady_clock::time_point last_log_{};
};

/// True for errno values that mean this process (or the system) ran out of descriptors: EMFILE, ENFILE.
bool is_descriptor_exhaustion(int error) noexcept;

}  // namespace gg::proxy
