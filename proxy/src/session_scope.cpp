#include "session_scope.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/as_tuple.hpp>

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
    if (!o.reason.empty()) hdr.extra["reason"] = o.reason;
    std::string error;
    try {
        rec_ = deps_.recordings.open(hdr);
        session_->set_recording(rec_->path().filename().string());
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
    save_and_audit("session.start", "ok", "", std::move(details));
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

void SessionScope::activate() {
    if (!session_) return;
    (void)session_->activate();
    save();
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

/// Appends `ev`; a store failure is logged, never thrown.
void append_logged(StateStore& store, const session::AuditEvent& ev) {
    try {
        store.append_audit(ev);
    } catch (const std::exception& e) {
        spdlog::error("cannot write audit event {}: {}", ev.type, e.what());
    }
}

}  // namespace

void write_audit(StateStore& store, const AuditSubject& who, std::string type, std::string outcome, std::string reason,
                 boost::json::object details) {
    append_logged(store, make_audit_event(who, std::move(type), std::move(outcome), std::move(reason), std::move(details)));
}

void SessionScope::audit(std::string type, std::string outcome, std::string reason, boost::json::object details) {
    write_audit(deps_.store, {session_ ? session_->id() : std::string(), identity_, target_, peer_}, std::move(type),
                std::move(outcome), std::move(reason), std::move(details));
}

void SessionScope::save_and_audit(std::string type, std::string outcome, std::string reason, boost::json::object details) {
    if (!session_) return;
    auto ev = make_audit_event({session_->id(), identity_, target_, peer_}, std::move(type), std::move(outcome),
                               std::move(reason), std::move(details));
    try {
        deps_.store.save_session_and_audit(session_->record(), ev);
        return;
    } catch (const std::exception& e) {
        if (log_) log_->error("cannot update the sessions index and audit log together: {}", e.what());
    }
    // Separately, so a problem with one loses nothing of the other.
    save();
    append_logged(deps_.store, ev);
}

void SessionScope::save() {
    if (!session_) return;
    try {
        deps_.store.save_session(session_->record());
    } catch (const std::exception& e) {
        if (log_) log_->error("cannot update the sessions index: {}", e.what());
    }
}

asio::awaitable<void> SessionScope::close(session::CloseReason why, std::string detail, std::uint64_t bytes_in,
                                          std::uint64_t bytes_out) {
    if (!session_ || closed_) co_return;
    closed_ = true;
    if (session_->state() == session::State::active) (void)session_->begin_close(why, detail);
    (void)session_->finish(now_tp());
    if (session_->state() != session::State::closed) session_->fail(why, detail, now_tp());
    session_->add_bytes(bytes_in, bytes_out);
    // Sealing waits for the writer thread (flush + fdatasync): never block an io thread on it.
    const auto t_end = t_us();
    auto sealed = std::make_shared<std::atomic<bool>>(false);
    auto seal_result = std::make_shared<RecordingHandle::SealInfo>();
    asio::post(deps_.blocking, [rec = rec_, t_end, sealed, seal_result] {
        *seal_result = rec->close(t_end);
        sealed->store(true);
    });
    {
        asio::steady_timer poll(co_await asio::this_coro::executor);
        while (!sealed->load()) {
            poll.expires_after(std::chrono::milliseconds(5));
            (void)co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }
    if (seal_result->ok) {
        session_->set_seal(seal_result->events, seal_result->chain_hash_hex);
    } else {
        log_->error("recording could not be sealed: {}", seal_result->error);
    }
    const auto& r = session_->record();
    save_and_audit("session.end", r.close_reason == session::CloseReason::client_disconnect ? "ok" : "closed",
                   std::string(session::to_string(r.close_reason)) + (r.close_detail.empty() ? "" : ": " + r.close_detail),
                   {{"bytes_in", r.bytes_client_to_server}, {"bytes_out", r.bytes_server_to_client}, {"auth", method_label_},
                    {"recording", r.recording}});
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
