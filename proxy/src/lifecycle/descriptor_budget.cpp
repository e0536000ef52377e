#include "glassgate/proxy/lifecycle/descriptor_budget.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace gg::proxy {

DescriptorBudget::DescriptorBudget(Metrics& metrics) : metrics_(metrics) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) limit_ = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
    const auto in_use = open_descriptors().value_or(0);
    if (limit_ > in_use + reserve) capacity_ = static_cast<std::size_t>((limit_ - in_use - reserve) / per_session);
    metrics_.set("glassgate_session_capacity", {}, static_cast<double>(capacity_));
    spdlog::info("session capacity: about {} concurrent sessions (open-file limit {}, {} descriptors in use, {} per "
                 "session); raise LimitNOFILE (ulimit -n) for more",
                 capacity_, limit_, in_use, per_session);
}

void DescriptorBudget::declare_metrics(Metrics& m) {
    m.declare("glassgate_session_capacity", Metrics::Type::gauge,
              "Concurrent sessions the open-file limit allows (measured at start).");
    m.declare("glassgate_sessions_refused_capacity_total", Metrics::Type::counter,
              "New sessions refused because the open-file limit was nearly used up, by protocol.");
}

std::optional<std::size_t> DescriptorBudget::open_descriptors() {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return std::nullopt;
    std::size_t n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n > 0 ? n - 1 : 0;  // the directory stream's own descriptor
}

std::optional<std::string> DescriptorBudget::refusal(std::string_view protocol) {
    const auto open = open_descriptors();
    if (!open || *open + per_session + reserve <= limit_) return std::nullopt;
    metrics_.inc("glassgate_sessions_refused_capacity_total", {{"protocol", std::string(protocol)}});
    std::string why = std::to_string(*open) + " of " + std::to_string(limit_) +
                      " file descriptors in use (open-file limit); a session needs " + std::to_string(per_session);
    std::lock_guard lk(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log_ >= std::chrono::seconds(5)) {
        last_log_ = now;
        spdlog::error("new {} sessions are refused: {}; raise LimitNOFILE (ulimit -n) to serve more", protocol, why);
    }
    return why;
}

std::string DescriptorBudget::user_message() const {
    return "glassgate: too many sessions at once for its open-file limit (" + std::to_string(limit_) +
           " descriptors); try again later";
}

bool is_descriptor_exhaustion(int error) noexcept { return error == EMFILE || error == ENFILE; }

}  // namespace gg::proxy
