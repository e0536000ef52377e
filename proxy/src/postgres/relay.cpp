// The relay: two pumps (client -> server, server -> client) and the watchdog, joined. A pump reads
// what its socket has, walks the messages in place, records them (back-pressure: it waits for room
// in the recording buffer) and forwards them with one write; messages larger than the recording cap
// are relayed and recorded piece by piece. Also the writes of glassgate's own messages, which never
// go between the pieces of a relayed message, and the end of the relay.

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include "client_session.hpp"
#include "glassgate/protocols/postgres/codec.hpp"

namespace gg::proxy::postgres {
using namespace boost::asio::experimental::awaitable_operators;
using session::CloseReason;

namespace {

/// decode_message's reason for the invalid header at the front of `at` (off the hot path).
std::string framing_error(ByteView at, const pg::Limits& limits) {
    const auto d = pg::decode_message(at, limits);
    return d ? std::string("invalid message header") : d.error().reason;
}

}  // namespace

asio::awaitable<boost::system::error_code> ClientSession::write_client(asio::const_buffer b) {
    if (!client_lock_.try_lock()) co_await client_lock_.lock();
    auto ec = co_await client_.write(b);
    client_lock_.unlock();
    co_return ec;
}

asio::awaitable<void> ClientSession::fatal(const std::string& sqlstate, const std::string& message, const std::string& detail) {
    auto msg = pg::error_response({pg::Severity::fatal, sqlstate, message, detail, {}});
    if (!co_await send_own(msg)) {
        spdlog::warn("postgres {}: not sent to the client, which is in the middle of a relayed message: {}", peer_, message);
    }
}

asio::awaitable<bool> ClientSession::send_own(const Bytes& b) {
    if (!client_lock_.try_lock()) co_await client_lock_.lock();
    if (client_mid_message_) {
        client_lock_.unlock();
        co_return false;
    }
    auto ec = co_await client_.write(asio::buffer(b));
    client_lock_.unlock();
    co_return !ec;
}

bool ClientSession::record(session::EventKind kind, session::Direction dir, ByteView payload) {
    if (!scope_.opened()) return true;
    if (scope_.record(kind, dir, payload)) return true;
    end(CloseReason::recording_failed, "recording failed: " + scope_.recording_failure());
    return false;
}

void ClientSession::end(CloseReason why, std::string detail) {
    if (!ended_) {
        ended_ = true;
        reason_ = why;
        detail_ = std::move(detail);
    }
    client_.close();
    if (backend_ && keep_backend_) {
        boost::system::error_code ec;
        backend_->socket().cancel(ec);  // the backend pump's read ends; the connection stays usable
    } else if (backend_) {
        backend_->close();
    }
    watchdog_.cancel();
}

asio::awaitable<void> ClientSession::relay(BackendSession& backend, const config::Target& target) {
    redact_all_ = target.redact_params;
    for (const auto& pattern : target.redact_params_for) {
        redact_for_.emplace_back(pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
    }
    record_rows_ = target.record_rows;
    record_copy_full_ = target.record_copy == config::RecordCopy::full;
    value_cap_ = target.record_value_bytes < 0 ? std::numeric_limits<std::size_t>::max()
                                               : static_cast<std::size_t>(target.record_value_bytes);
    whole_max_ = std::max<std::size_t>(5, std::min(value_cap_, stream_above));
    if (!backend.pending.empty()) {
        // The backend sent something right after ReadyForQuery (e.g. a notice): pass it on first,
        // once (a kept connection must not replay it to the next session).
        co_await send(backend.pending);
        Bytes().swap(backend.pending);
    }
    // Client bytes pipelined behind the password (still in buf_) are the client pump's first input.
    c2s_flow_.buf.resize(std::max<std::size_t>(relay_buffer, len_));
    if (len_ > 0) std::memcpy(c2s_flow_.buf.data(), buf_.data(), len_);
    c2s_flow_.len = len_;
    len_ = 0;
    Bytes().swap(buf_);
    s2c_flow_.buf.resize(relay_buffer);
    co_await (pump(c2s_flow_, *backend.conn) && pump(s2c_flow_, *backend.conn) && watch(target, *backend.conn));
    // What was cut off by the end of the session is said in the recording too.
    for (Flow* f : {&c2s_flow_, &s2c_flow_}) {
        if (f->large.active && (f->large.summarize || f->large.copy)) {
            const auto j = boost::json::serialize(boost::json::object{
                {"type", std::string(1, f->large.type)}, {"bytes", f->large.size}, {"relayed", f->large.done},
                {"recorded", f->large.kept}, {"interrupted", true}});
            if (!co_await put(session::EventKind::pg_large_end, f->dir, as_bytes(j))) break;
        }
        if (f->copy.active && !co_await put(session::EventKind::pg_copy, f->dir, as_bytes(copy_summary(*f, "interrupted")))) break;
    }
}

asio::awaitable<bool> ClientSession::put(session::EventKind kind, session::Direction dir, ByteView payload) {
    if (!scope_.opened()) co_return true;
    // Back-pressure: while the recording writer is behind, this pump stops (its peer's data waits in
    // the kernel); the session never ends for a full buffer.
    if (!scope_.has_room(payload.size())) co_await scope_.make_room(payload.size());
    if (scope_.record(kind, dir, payload)) co_return true;
    co_await recording_failed();
    co_return false;
}

asio::awaitable<void> ClientSession::recording_failed() {
    if (ended_) co_return;
    const std::string why = scope_.recording_failure();
    log().error("recording failed, ending the session: {}", why);
    const bool full = scope_.recording_storage_full();
    const std::string cause = why.substr(why.rfind(": ") == std::string::npos ? 0 : why.rfind(": ") + 2);
    co_await fatal(full ? "53100" : "58030",
                   full ? "glassgate: recording storage is full; this session is ended"
                        : "glassgate: recording this session failed, so it is ended",
                   "nothing is relayed unrecorded (" + cause + ")");
    end(CloseReason::recording_failed, (full ? "recording storage is full: " : "recording failed: ") + why);
}


asio::awaitable<bool> ClientSession::flush_run(Flow& f, std::size_t& run, std::size_t upto) {
    if (upto <= run) co_return true;
    const ByteView slice(f.buf.data() + run, upto - run);
    run = upto;
    co_return co_await put(f.kind, f.dir, slice);
}

asio::awaitable<bool> ClientSession::stream_large(Flow& f, ByteView chunk) {
    auto& l = f.large;
    if (!l.redacted) l.sha.update(chunk);
    if (l.copy) {
        const std::size_t header_left = l.done < 5 ? 5 - l.done : 0;
        if (chunk.size() > header_left) {
            f.copy.sha.update(chunk.subspan(header_left));
            f.copy.bytes += chunk.size() - header_left;
        }
    }
    if (l.kept < l.keep) {
        const std::size_t k = std::min(chunk.size(), l.keep - l.kept);
        if (!co_await put(session::EventKind::pg_large, f.dir, chunk.first(k))) co_return false;
        l.kept += k;
    }
    l.done += chunk.size();
    if (l.done < l.size) co_return true;
    l.active = false;
    if (!l.summarize) co_return true;
    boost::json::object j{{"type", std::string(1, l.type)}, {"bytes", l.size}, {"recorded", l.kept}};
    if (l.redacted) {
        j["redacted"] = true;  // no hash either: a hash of a short secret can be searched for
    } else {
        const auto digest = l.sha.finish();
        j["sha256"] = to_hex(ByteView(digest.data(), digest.size()));
    }
    co_return co_await put(session::EventKind::pg_large_end, f.dir, as_bytes(boost::json::serialize(j)));
}

// A pump reads as much as its socket has, walks the messages in place and records them (consecutive
// whole messages as one event), forwards what it walked with one write, and keeps a partial message
// at the front of its buffer. A message larger than whole_max_ (the recording cap per message, at
// most stream_above) is never buffered whole: it is forwarded and recorded piece by piece as it
// arrives (pg_large events up to the cap, then pg_large_end with its size and SHA-256).
asio::awaitable<void> ClientSession::pump(Flow& f, Conn& backend) {
    pg::Limits limits;
    limits.max_message = max_message;
    Conn& from = f.from_client ? client_ : backend;
    bool have_input = f.len > 0;
    while (!ended_) {
        if (!have_input) {
            if (f.need > f.buf.size()) f.buf.resize(f.need);
            if (!f.from_client) backend_waiting_ = true;
            auto [ec, n] = co_await from.read_some(asio::buffer(f.buf.data() + f.len, f.buf.size() - f.len));
            if (!f.from_client) backend_waiting_ = false;
            if (ec || n == 0) {
                if (f.from_client) {
                    end(CloseReason::client_disconnect, ended_ ? std::string() : "client closed the connection");
                } else if (!ended_) {
                    co_await fatal("08006", "the database server closed the connection");
                    end(CloseReason::backend_disconnect, "backend closed the connection");
                }
                co_return;
            }
            f.len += n;
            last_activity_ = std::chrono::steady_clock::now();
        }
        have_input = false;
        f.need = 0;

        std::size_t at = 0;
        std::size_t run = 0;                         // start of the whole messages not yet recorded
        std::size_t forward = std::numeric_limits<std::size_t>::max();  // Terminate kept back
        bool terminate = false;
        while (at < f.len && !terminate) {
            if (f.large.active) {
                const std::size_t n = std::min(f.large.size - f.large.done, f.len - at);
                if (!co_await stream_large(f, ByteView(f.buf.data() + at, n))) co_return;
                at += n;
                run = at;
                continue;
            }
            const auto frame = pg::scan_message(ByteView(f.buf.data() + at, f.len - at), limits);
            if (frame.error) {
                const std::string reason = framing_error(ByteView(f.buf.data() + at, f.len - at), limits);
                if (f.from_client) {
                    log().warn("malformed message from the client: {}", reason);
                    co_await fatal("08P01", "invalid message: " + reason);
                    end(CloseReason::protocol_error, "malformed client message: " + reason);
                } else {
                    log().error("malformed message from the backend: {}", reason);
                    co_await fatal("08P01", "glassgate received an invalid message from the database server");
                    end(CloseReason::protocol_error, "malformed backend message: " + reason);
                }
                co_return;
            }
            const std::size_t size = frame.size ? frame.size : frame.need;
            if (frame.size == 0 && (frame.need <= 5 || frame.need <= whole_max_)) {
                f.need = frame.need;  // the rest of a header or of a message recorded whole
                break;
            }
            const bool whole = size <= whole_max_;
            const ByteView msg(f.buf.data() + at, std::min(size, f.len - at));
            if (f.from_client && frame.type == 'X') {
                if (poolable_ && !ended_ && backend_at_rest()) {
                    keep_backend_ = true;
                    forward = at;
                }
                terminate = true;
            }
            Decision d = decide(f, frame.type, msg, whole);
            if (d.copy_end || d.refuse || !d.note.empty() || !whole || d.replacement || !d.record) {
                if (!co_await flush_run(f, run, at)) co_return;
            }
            if (d.copy_end && !co_await put(session::EventKind::pg_copy, f.dir, as_bytes(copy_summary(f, d.copy_end)))) {
                co_return;
            }
            if (d.refuse) {
                log().warn("the backend started COPY BOTH (replication protocol); ending the session");
                co_await fatal("0A000", "COPY BOTH (streaming replication) is not supported through glassgate");
                end(CloseReason::protocol_error, "backend started COPY BOTH");
                co_return;
            }
            if (!d.note.empty() && d.note_before && !co_await note(d.note)) co_return;
            if (!whole) {
                // Relayed and recorded piece by piece from here on.
                auto& l = f.large;
                l = {};
                l.active = true;
                l.type = frame.type;
                l.size = size;
                l.redacted = d.redacted;
                l.copy = frame.type == 'd';
                const bool full = l.copy && record_copy_full_;
                l.keep = !d.record || d.redacted ? 0 : full ? size : std::min(size, value_cap_);
                l.summarize = d.record || d.redacted;
                continue;
            }
            if (frame.type == 'd') {
                f.copy.sha.update(msg.subspan(5));
                f.copy.bytes += size - 5;
            }
            if (d.replacement) {
                if (!co_await put(f.kind, f.dir, *d.replacement)) co_return;
                run = at + size;
            } else if (!d.record) {
                if (!d.note.empty() && !co_await note(d.note)) co_return;
                run = at + size;
            } else if (at > run && at + size - run > record_batch && !co_await flush_run(f, run, at)) {
                co_return;
            }
            at += size;
        }
        if (!co_await flush_run(f, run, at)) co_return;
        const std::size_t consumed = at;
        const std::size_t out = std::min(forward, consumed);
        if (out > 0) {
            Conn& to = f.from_client ? backend : client_;
            AsyncLock& lock = f.from_client ? backend_lock_ : client_lock_;
            boost::system::error_code wec;
            if (!lock.try_lock()) co_await lock.lock();
            if (out > fast_write_max) {
                wec = co_await to.write(asio::const_buffer(f.buf.data(), out));
            } else if (!to.write_now(asio::const_buffer(f.buf.data(), out), wec) && !wec) {
                wec = co_await to.flush();
            }
            // Under the lock, so that a message of glassgate's own (send_own) is never slipped into a
            // message relayed in pieces.
            (f.from_client ? backend_mid_message_ : client_mid_message_) = f.large.active;
            lock.unlock();
            if (wec) {
                if (f.from_client) {
                    keep_backend_ = false;
                    end(CloseReason::backend_disconnect, "backend connection lost: " + wec.message());
                } else {
                    end(CloseReason::client_disconnect, "client connection lost: " + wec.message());
                }
                co_return;
            }
        }
        (f.from_client ? c2s_ : s2c_) += consumed;
        if (consumed > 0) {
            if (consumed < f.len) std::memmove(f.buf.data(), f.buf.data() + consumed, f.len - consumed);
            f.len -= consumed;
        }
        if (!f.from_client) backend_partial_ = f.len > 0 || f.large.active;
        if (terminate) {
            end(CloseReason::client_disconnect, "client sent Terminate");
            co_return;
        }
        // A buffer grown for one large whole message goes back to its usual size.
        if (f.buf.size() > relay_buffer && f.len <= relay_buffer && f.need <= relay_buffer) {
            f.buf.resize(relay_buffer);
            f.buf.shrink_to_fit();
        }
    }
}

}  // namespace gg::proxy::postgres
