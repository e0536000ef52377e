#include "glassgate/protocols/oidc/health.hpp"

#include <algorithm>
#include <limits>

namespace gg::oidc {
namespace {

// Evidence is free text from errors and remote peers; keep what we retain bounded.
constexpr std::size_t max_evidence_bytes = 512;

}  // namespace

std::string_view to_string(IdpHealth s) noexcept {
    switch (s) {
        case IdpHealth::unknown: return "unknown";
        case IdpHealth::healthy: return "healthy";
        case IdpHealth::degraded: return "degraded";
        case IdpHealth::unreachable: return "unreachable";
    }
    return "?";
}

std::string_view to_string(EvidenceSource s) noexcept {
    return s == EvidenceSource::probe ? "probe" : "passive";
}

HealthMonitor::HealthMonitor(HealthConfig config, std::chrono::system_clock::time_point now)
    : config_{std::max(config.unreachable_after, 1), std::max(config.healthy_after, 1)}, since_(now) {}

std::optional<Transition> HealthMonitor::on_probe(bool success, std::string_view evidence,
                                                  std::chrono::system_clock::time_point now) {
    return on_input(success, evidence, EvidenceSource::probe, now);
}

std::optional<Transition> HealthMonitor::on_passive(bool success, std::string_view evidence,
                                                    std::chrono::system_clock::time_point now) {
    return on_input(success, evidence, EvidenceSource::passive, now);
}

std::optional<Transition> HealthMonitor::on_input(bool success, std::string_view evidence, EvidenceSource source,
                                                  std::chrono::system_clock::time_point now) {
    last_evidence_.assign(evidence.substr(0, max_evidence_bytes));
    // Saturating counters: a months-long outage must not overflow.
    constexpr int cap = std::numeric_limits<int>::max();
    IdpHealth next = state_;
    if (success) {
        failures_ = 0;
        if (successes_ < cap) ++successes_;
        switch (state_) {
            case IdpHealth::unknown: next = IdpHealth::healthy; break;  // first evidence, and it is good
            case IdpHealth::healthy: break;
            case IdpHealth::degraded:
            case IdpHealth::unreachable:
                // Hysteresis: unreachable does not step down to degraded on one success; it stays
                // (break-glass stays open) until healthy_after successes in a row, then healthy.
                if (successes_ >= config_.healthy_after) next = IdpHealth::healthy;
                break;
        }
    } else {
        successes_ = 0;
        if (failures_ < cap) ++failures_;
        if (failures_ >= config_.unreachable_after) {
            next = IdpHealth::unreachable;
        } else if (state_ == IdpHealth::unknown || state_ == IdpHealth::healthy) {
            next = IdpHealth::degraded;
        }
        // degraded stays degraded below the threshold; unreachable stays unreachable.
    }
    if (next == state_) return std::nullopt;
    Transition t{state_, next, now, last_evidence_, source};
    state_ = next;
    since_ = now;
    return t;
}

}  // namespace gg::oidc
