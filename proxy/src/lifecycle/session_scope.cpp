#include "session_scope.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <system_error>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::proxy {
namespace asio = boost::asio;

namespace {
session::TimePoint now_tp() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}
}  // namespace

bool SessionScope::open(const Open& o) {
    identity_ = o.identity;
    target_ = o.target;
    method_label_ = std::string(session::to_string(o.method));
    const auto started = now_tp();
    t0_ = std::chrono::steady_clock::now();
    session_.emplace(reserve_id(), protocol_, peer_, started);
    session_->set_instance(deps_.instance);
    log_ = logging::session_logger(session_->id());
    (void)session_->authorize(o.identity, o.method, o.target, o.cap, o.reason);
    session::RecordingHeader hdr;
    hdr.session_id = session_->id();
    hdr.protocol = std::string(session::to_string(protocol_));
    hdr.target = o.target;
    hdr.identity = o.identity;
    hdr.started_unix_us = started.time_since_epoch().count();
    hdr.extra = o.extra;
    hdr.extra["client"] = peer_;
    hdr.extra["auth"] = o.auth_detail;
    hdr.extra["mode"] = method_label_;
    if (!deps_.instance.empty()) hdr.extra["instance"] = deps_.instance;
    if (!o.reason.empty()) hdr.extra["reason"] = o.reason;
    std::string error;
    try {
        rec_ = deps_.recordings.open(hdr);
        session_->set_recording(rec_->path().filename().string());
        if (deps_.shipper) deps_.shipper->track(session_->id(), rec_->path());
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (!rec_) {
        session_->fail(session::CloseReason::recording_failed, error, now_tp());
        closed_ = true;
        save();
        log_->error("cannot open the recording: {}", error);
        audit("session.refused", "error", "recording unavailable: " + error);
        return false;
    }
    counted_ = true;
    ++deps_.active_sessions;
    deps_.metrics.set("glassgate_sessions_active", {}, static_cast<double>(deps_.active_sessions.load()));
    boost::json::object details{{"protocol", hdr.protocol}, {"auth", method_label_}, {"method", o.auth_detail}};
    if (!o.reason.empty()) details["reason"] = o.reason;
    for (const auto& [k, v] : o.audit_details) details[k] = v;
    save_and_audit_later("session.start", "ok", "", std::move(details));
    return true;
}

const std::string& SessionScope::reserve_id() {
    if (session_) return session_->id();
    if (reserved_id_.empty()) {
        std::uint8_t rnd[10];
        auto rb = crypto::random_bytes(10);
        std::memcpy(rnd, rb.data(), 10);
        reserved_id_ = session::make_session_id(now_tp(), rnd);
    }
    return reserved_id_;
}

std::uint64_t SessionScope::t_us() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0_).count());
}

bool SessionScope::record(session::EventKind kind, session::Direction dir, ByteView payload) {
    if (!rec_ || closed_) return false;
    return rec_->append(kind, dir, payload, t_us());
}

bool SessionScope::recording_storage_full() const {
    const auto why = recording_failure();
    return why.find(std::error_code(ENOSPC, std::generic_category()).message()) != std::string::npos ||
           why.find(std::error_code(EDQUOT, std::generic_category()).message()) != std::string::npos;
}

asio::awaitable<void> SessionScope::make_room(std::size_t payload_bytes) {
    if (has_room(payload_bytes)) co_return;
    // The writer takes the whole queue on each pass (early once it is a quarter full), so a short
    // poll is enough; a waiting session costs one timer, and it holds its peers' data in the kernel.
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto wait = std::chrono::microseconds(200);
    while (!has_room(payload_bytes)) {
        timer.expires_after(wait);
        (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        wait = std::min<std::chrono::microseconds>(wait * 2, std::chrono::milliseconds(5));
    }
}

session::AuditEvent make_audit_event(const AuditSubject& who, std::string type, std::string outcome, std::string reason,
                                     boost::json::object details) {
    session::AuditEvent ev;
    ev.time = now_tp();
    ev.type = std::move(type);
    ev.session_id = who.session_id;
    ev.identity = who.identity;
    ev.target = who.target;
    ev.source = who.source;
    ev.outcome = std::move(outcome);
    ev.reason = std::move(reason);
    ev.details = std::move(details);
    return ev;
}

namespace {

/// Saves the index row; a store failure is logged, never thrown.
void save_logged(StateStore& store, const session::SessionRecord& record, spdlog::logger* log) {
    try {
        store.save_session(record);
    } catch (const std::exception& e) {
        if (log) log->error("cannot update the sessions index: {}", e.what());
    }
}


}  // namespace

void SessionScope::activate() {
    if (!session_) return;
    (void)session_->activate();
    write_later([&store = deps_.store, record = session_->record(), log = log_] { save_logged(store, record, log.get()); });
}

void write_audit(StateStore& store, const AuditSubject& who, std::string type, std::string outcome, std::string reason,
                 boost::json::object details) {
    append_audit_logged(store, make_audit_event(who, std::move(type), std::move(outcome), std::move(reason), std::move(details)));
}

void SessionScope::audit(std::string type, std::string outcome, std::string reason, boost::json::object details) {
    auto ev = make_audit_event({session_ ? session_->id() : std::string(), identity_, target_, peer_}, std::move(type),
                               std::move(outcome), std::move(reason), std::move(details));
    if (queued_->load() == 0) {
        append_audit_logged(deps_.store, ev);  // nothing of this session waits: in order as it is
        return;
    }
    write_later([&store = deps_.store, ev = std::move(ev)] { append_audit_logged(store, ev); });
}

void SessionScope::write_later(std::function<void()> job) {
    queued_->fetch_add(1);
    asio::post(writes_, [job = std::move(job), queued = queued_] {
        job();
        queued->fetch_sub(1);
    });
}

namespace {

/// The index row and an audit event in one store transaction (each on its own if that fails, so a
/// problem with one loses nothing of the other). Logs, never throws.
void save_with_audit(StateStore& store, const session::SessionRecord& record, const session::AuditEvent& ev,
                     spdlog::logger& log) {
    try {
        store.save_session_and_audit(record, ev);
        return;
    } catch (const std::exception& e) {
        log.error("cannot update the sessions index and audit log together: {}", e.what());
    }
    save_logged(store, record, &log);
    append_audit_logged(store, ev);
}

/// The end of a session on the blocking pool: seal the recording, then the index row and session.end
/// in one transaction. A coroutine function, not a lambda: its parameters live in its frame.
asio::awaitable<RecordingHandle::SealInfo> seal_and_save(std::shared_ptr<RecordingHandle> rec, std::uint64_t t_end,
                                                         session::SessionRecord record, session::AuditEvent ev,
                                                         std::string method, std::shared_ptr<spdlog::logger> log,
                                                         StateStore& store) {
    auto seal = rec->close(t_end);
    if (seal.ok) {
        record.sealed_events = seal.events;
        record.sealed_chain_hash = seal.chain_hash_hex;
    } else {
        log->error("recording could not be sealed: {}", seal.error);
    }
    ev.outcome = record.close_reason == session::CloseReason::client_disconnect ? "ok" : "closed";
    ev.reason = std::string(session::to_string(record.close_reason)) +
                (record.close_detail.empty() ? "" : ": " + record.close_detail);
    ev.details = {{"bytes_in", record.bytes_client_to_server}, {"bytes_out", record.bytes_server_to_client},
                  {"auth", method}, {"recording", record.recording}};
    save_with_audit(store, record, ev, *log);
    co_return seal;
}

}  // namespace

void SessionScope::save_and_audit_later(std::string type, std::string outcome, std::string reason,
                                        boost::json::object details) {
    if (!session_) return;
    auto ev = make_audit_event({session_->id(), identity_, target_, peer_}, std::move(type), std::move(outcome),
                               std::move(reason), std::move(details));
    write_later([&store = deps_.store, record = session_->record(), ev = std::move(ev), log = log_] {
        save_with_audit(store, record, ev, *log);
    });
}

void SessionScope::save() {
    if (session_) save_logged(deps_.store, session_->record(), log_.get());
}

asio::awaitable<void> SessionScope::close(session::CloseReason why, std::string detail, std::uint64_t bytes_in,
                                          std::uint64_t bytes_out) {
    if (!session_ || closed_) co_return;
    closed_ = true;
    if (session_->state() == session::State::active) (void)session_->begin_close(why, detail);
    (void)session_->finish(now_tp());
    if (session_->state() != session::State::closed) session_->fail(why, detail, now_tp());
    session_->add_bytes(bytes_in, bytes_out);
    // Sealing waits for the writer thread (flush + fdatasync) and the store for its commit: both run
    // on the session's strand of the blocking pool, after its queued writes, never on an io thread.
    const auto t_end = t_us();
    auto ev = make_audit_event({session_->id(), identity_, target_, peer_}, "session.end", "", "", {});
    // Named objects, not temporaries, go into the coroutine and the co_await (GCC 12, architecture.md).
    session::SessionRecord record = session_->record();
    auto work = seal_and_save(rec_, t_end, std::move(record), std::move(ev), method_label_, log_, deps_.store);
    const auto sealed = co_await asio::co_spawn(writes_, std::move(work), asio::use_awaitable);
    if (sealed.ok) session_->set_seal(sealed.events, sealed.chain_hash_hex);
    if (deps_.shipper) deps_.shipper->finished(session_->id());
    const auto& r = session_->record();
    if (counted_) {
        --deps_.active_sessions;
        deps_.metrics.set("glassgate_sessions_active", {}, static_cast<double>(deps_.active_sessions.load()));
    }
    deps_.metrics.inc("glassgate_sessions_total", {{"protocol", std::string(session::to_string(protocol_))},
                                                   {"auth", method_label_},
                                                   {"reason", std::string(session::to_string(r.close_reason))}});
    log_->info("session ended: {}{}", session::to_string(r.close_reason), r.close_detail.empty() ? "" : ": " + r.close_detail);
}

}  // namespace gg::proxy
