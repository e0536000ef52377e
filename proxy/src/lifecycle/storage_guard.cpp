#include "glassgate/proxy/lifecycle/storage_guard.hpp"

#include <sys/statvfs.h>

#include <spdlog/spdlog.h>

namespace gg::proxy {

StorageGuard::StorageGuard(StateStore& store, Metrics& metrics, std::vector<std::filesystem::path> dirs,
                           std::uint64_t min_free_bytes)
    : store_(store), metrics_(metrics), dirs_(std::move(dirs)), min_free_(min_free_bytes) {}

void StorageGuard::declare_metrics(Metrics& m) {
    m.declare("glassgate_audit_backlog", Metrics::Type::gauge,
              "Audit events the state store could not write yet, kept in memory in order and retried.");
    m.declare("glassgate_store_backlog_writes", Metrics::Type::gauge,
              "State store writes (audit events and sessions index rows) waiting for storage.");
    m.declare("glassgate_store_write_failures_total", Metrics::Type::counter,
              "Failed state store writes (first attempts and retries).");
    m.declare("glassgate_store_writes_dropped_total", Metrics::Type::counter,
              "State store writes lost because the in-memory backlog was at its bound.");
    m.declare("glassgate_state_free_bytes", Metrics::Type::gauge,
              "Bytes available on the file system of a state directory path.");
    m.declare("glassgate_sessions_refused_storage_total", Metrics::Type::counter,
              "New sessions refused because recording storage is full or store writes are waiting.");
    m.set("glassgate_audit_backlog", {}, 0);
    m.set("glassgate_store_backlog_writes", {}, 0);
    m.set("glassgate_store_write_failures_total", {}, 0);
    m.set("glassgate_store_writes_dropped_total", {}, 0);
}

std::optional<std::uint64_t> StorageGuard::free_bytes(const std::filesystem::path& dir) {
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(st.f_bavail) * static_cast<std::uint64_t>(st.f_frsize);
}

std::optional<StorageGuard::Refusal> StorageGuard::refusal(std::string_view protocol) {
    std::optional<std::string> why;
    std::string_view user = user_message;
    std::string sqlstate = "53100";  // disk_full
    if (store_check_) {
        if (auto unreachable = store_check_()) {
            why = "the state store is unreachable: " + *unreachable;
            user = store_unreachable_message;
            sqlstate = "57P03";  // cannot_connect_now
        }
    }
    if (!why) for (const auto& d : dirs_) {
        const auto avail = free_bytes(d);
        if (!avail) {
            why = "cannot read the free space of " + d.string();
            break;
        }
        if (*avail < min_free_) {
            why = d.string() + " has " + std::to_string(*avail) + " bytes free, less than [server] min_free_bytes (" +
                  std::to_string(min_free_) + ")";
            break;
        }
    }
    if (!why) {
        const auto b = store_.backlog_status();
        if (b.queued > 0) {
            why = std::to_string(b.queued) + " state store write(s) (" + std::to_string(b.audit_events) +
                  " audit event(s)) are waiting for storage: " + b.last_error;
        }
    }
    if (!why) return std::nullopt;
    metrics_.inc("glassgate_sessions_refused_storage_total", {{"protocol", std::string(protocol)}});
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lk(mu_);
    if (now - last_log_ >= std::chrono::seconds(5)) {
        last_log_ = now;
        spdlog::error("refusing new {} sessions: {}", protocol, *why);
    }
    return Refusal{*why, std::string(user), sqlstate};
}

void StorageGuard::update_metrics() {
    const auto b = store_.backlog_status();
    metrics_.set("glassgate_audit_backlog", {}, static_cast<double>(b.audit_events));
    metrics_.set("glassgate_store_backlog_writes", {}, static_cast<double>(b.queued));
    metrics_.set("glassgate_store_write_failures_total", {}, static_cast<double>(b.write_failures));
    metrics_.set("glassgate_store_writes_dropped_total", {}, static_cast<double>(b.dropped));
    for (const auto& d : dirs_) {
        if (const auto avail = free_bytes(d)) metrics_.set("glassgate_state_free_bytes", {{"path", d.string()}}, static_cast<double>(*avail));
    }
}

}  // namespace gg::proxy
