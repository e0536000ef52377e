#include "glassgate/proxy/store/state_store.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <variant>

namespace gg::proxy {

bool append_audit_logged(StateStore& store, const session::AuditEvent& ev) noexcept {
    try {
        store.append_audit(ev);
        return true;
    } catch (const std::exception& e) {
        spdlog::error("cannot write audit event {}{}: {}", ev.type, ev.session_id.empty() ? "" : " of session " + ev.session_id,
                      e.what());
    } catch (...) {
        spdlog::error("cannot write audit event {}: unknown error", ev.type);
    }
    return false;
}

namespace {

/// The write backlog of with_write_backlog(). Lock order: mu_, then the inner store's own lock.
class BackloggedStore final : public StateStore {
public:
    BackloggedStore(std::unique_ptr<StateStore> inner, StoreBacklogOptions o) : inner_(std::move(inner)), opts_(o) {
        if (opts_.max_entries == 0) opts_.max_entries = 1;
        if (opts_.retry_interval.count() <= 0) opts_.retry_interval = std::chrono::milliseconds(500);
        retrier_ = std::thread([this] { retry_loop(); });
    }
    ~BackloggedStore() override {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        retrier_.join();
        std::lock_guard lk(mu_);
        drain_locked();
        if (!queue_.empty()) {
            spdlog::critical("state store: {} write(s) ({} audit event(s)) could not be written before the proxy stopped "
                             "and are lost: {}",
                             queue_.size(), audit_queued_locked(), last_error_);
        }
    }
    BackloggedStore(const BackloggedStore&) = delete;
    BackloggedStore& operator=(const BackloggedStore&) = delete;

    std::optional<std::string> get(std::string_view ns, std::string_view key) override { return inner_->get(ns, key); }
    void put(std::string_view ns, std::string_view key, std::string_view value) override { inner_->put(ns, key, value); }
    bool erase(std::string_view ns, std::string_view key) override { return inner_->erase(ns, key); }
    std::vector<std::pair<std::string, std::string>> list(std::string_view ns) override { return inner_->list(ns); }
    bool compare_and_set(std::string_view ns, std::string_view key, const std::optional<std::string>& expected,
                         const std::optional<std::string>& desired) override {
        return inner_->compare_and_set(ns, key, expected, desired);
    }
    std::optional<session::SessionRecord> find_session(std::string_view id) override { return inner_->find_session(id); }
    std::vector<session::SessionRecord> list_sessions(const SessionFilter& filter) override {
        return inner_->list_sessions(filter);
    }
    std::vector<std::string> audit_lines(std::uint64_t from_seq, std::size_t limit) override {
        return inner_->audit_lines(from_seq, limit);
    }
    // Recording chunks are retried by their shipper (the file stays on disk until the store has it).
    void put_recording_chunk(std::string_view session_id, std::uint64_t offset, std::string_view bytes,
                             bool last) override {
        inner_->put_recording_chunk(session_id, offset, bytes, last);
    }
    ShippedRecording shipped_recording(std::string_view session_id) override {
        return inner_->shipped_recording(session_id);
    }
    std::optional<std::string> recording_chunk(std::string_view session_id, std::uint64_t offset) override {
        return inner_->recording_chunk(session_id, offset);
    }

    void save_session(const session::SessionRecord& rec) override { (void)write(Entry{rec}); }
    std::uint64_t append_audit(const session::AuditEvent& ev) override { return write(Entry{ev}); }
    std::uint64_t save_session_and_audit(const session::SessionRecord& rec, const session::AuditEvent& ev) override {
        return write(Entry{RowAndAudit{rec, ev}});
    }

    [[nodiscard]] StoreBacklogStatus backlog_status() const override {
        std::lock_guard lk(mu_);
        return {queue_.size(), audit_queued_locked(), opts_.max_entries, failures_, dropped_, last_error_};
    }

private:
    struct RowAndAudit {
        session::SessionRecord row;
        session::AuditEvent ev;
    };
    using Entry = std::variant<session::SessionRecord, session::AuditEvent, RowAndAudit>;
    using Clock = std::chrono::steady_clock;

    static std::string describe(const Entry& e) {
        if (const auto* r = std::get_if<session::SessionRecord>(&e)) return "index row of session " + r->id;
        const auto& ev = std::holds_alternative<session::AuditEvent>(e) ? std::get<session::AuditEvent>(e)
                                                                         : std::get<RowAndAudit>(e).ev;
        return "audit event " + ev.type + (ev.session_id.empty() ? "" : " of session " + ev.session_id);
    }

    std::size_t audit_queued_locked() const {
        std::size_t n = 0;
        for (const auto& e : queue_) n += std::holds_alternative<session::SessionRecord>(e) ? 0 : 1;
        return n;
    }

    /// Writes one entry to the inner store; throws what it throws.
    std::uint64_t apply(const Entry& e) {
        if (const auto* r = std::get_if<session::SessionRecord>(&e)) {
            inner_->save_session(*r);
            return 0;
        }
        if (const auto* ev = std::get_if<session::AuditEvent>(&e)) return inner_->append_audit(*ev);
        const auto& both = std::get<RowAndAudit>(e);
        return inner_->save_session_and_audit(both.row, both.ev);
    }

    /// Writes queued entries in order until one fails (it stays at the front). Under mu_.
    void drain_locked() {
        if (queue_.empty()) return;
        last_attempt_ = Clock::now();
        std::size_t written = 0;
        while (!queue_.empty()) {
            try {
                (void)apply(queue_.front());
            } catch (const std::exception& ex) {
                ++failures_;
                last_error_ = ex.what();
                if (written > 0) {
                    spdlog::warn("state store: {} queued write(s) written, {} still waiting: {}", written, queue_.size(),
                                 last_error_);
                }
                return;
            }
            queue_.pop_front();
            ++written;
        }
        spdlog::warn("state store writable again: {} queued write(s) written in order; the backlog is empty", written);
    }

    /// Keeps `e` at the end of the queue, or drops it (counted, logged) at the bound. Under mu_.
    void enqueue_locked(Entry e, const std::string& why) {
        if (queue_.size() >= opts_.max_entries) {
            ++dropped_;
            const auto what = describe(e);
            spdlog::critical("state store: write backlog at its bound of {} entries; {} is DROPPED ({})", opts_.max_entries,
                             what, why);
            throw StoreError("state store: write backlog full (" + std::to_string(opts_.max_entries) + " entries), " + what +
                             " dropped: " + why);
        }
        if (queue_.empty()) {
            spdlog::error("state store: cannot write ({}); {} and every later index/audit write are kept in memory, in "
                          "order, and retried every {} ms (at most {} entries); new sessions are refused meanwhile",
                          why, describe(e), opts_.retry_interval.count(), opts_.max_entries);
        } else {
            spdlog::debug("state store: {} queued behind {} earlier write(s)", describe(e), queue_.size());
        }
        queue_.push_back(std::move(e));
        cv_.notify_all();
    }

    std::uint64_t write(Entry e) {
        std::lock_guard lk(mu_);
        // Behind a backlog a write waits its turn (audit chain order); the queue is tried first at
        // most once per retry interval, so a full disk is not hammered by every event.
        if (!queue_.empty() && Clock::now() - last_attempt_ >= opts_.retry_interval) drain_locked();
        if (!queue_.empty()) {
            enqueue_locked(std::move(e), "behind " + std::to_string(queue_.size()) + " earlier write(s): " + last_error_);
            return 0;
        }
        try {
            return apply(e);
        } catch (const std::exception& ex) {
            ++failures_;
            last_error_ = ex.what();
            last_attempt_ = Clock::now();
            enqueue_locked(std::move(e), last_error_);
            return 0;
        }
    }

    void retry_loop() {
        std::unique_lock lk(mu_);
        while (!stop_) {
            if (queue_.empty()) {
                cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
                continue;
            }
            cv_.wait_for(lk, opts_.retry_interval, [&] { return stop_; });
            if (stop_) return;
            drain_locked();
        }
    }

    std::unique_ptr<StateStore> inner_;
    StoreBacklogOptions opts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Entry> queue_;
    std::uint64_t failures_ = 0;
    std::uint64_t dropped_ = 0;
    std::string last_error_;
    Clock::time_point last_attempt_{};
    bool stop_ = false;
    std::thread retrier_;  ///< last: started after everything it uses
};

}  // namespace

std::unique_ptr<StateStore> with_write_backlog(std::unique_ptr<StateStore> inner, StoreBacklogOptions options) {
    return std::make_unique<BackloggedStore>(std::move(inner), options);
}

}  // namespace gg::proxy
