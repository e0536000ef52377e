#include "glassgate/proxy/postgres/pg_proxy.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <unordered_map>

#include "glassgate/config/loader.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/proxy/logging.hpp"
#include "glassgate/session/audit_chain.hpp"
#include "glassgate/session/policy.hpp"
#include "glassgate/session/recording.hpp"
#include "glassgate/session/session.hpp"
#include "../session_scope.hpp"
#include "pg_backend.hpp"
#include "pg_conn.hpp"

namespace gg::proxy::postgres {
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using session::CloseReason;

// ---------------------------------------------------------------------------------------------
// CancelRegistry

std::pair<std::int32_t, std::uint32_t> CancelRegistry::add(Target t) {
    std::lock_guard lk(mu_);
    std::uint32_t key = 0;
    auto r = crypto::random_bytes(4);
    std::memcpy(&key, r.data(), 4);
    // Pids are ours, not the backend's: sequential, positive, never reused while active.
    do {
        next_pid_ = next_pid_ >= 0x7FFF'FFF0 ? 1 : next_pid_ + 1;
    } while (entries_.count(next_pid_));
    entries_[next_pid_] = Entry{key, std::move(t)};
    return {next_pid_, key};
}

void CancelRegistry::remove(std::int32_t pid) {
    std::lock_guard lk(mu_);
    entries_.erase(pid);
}

std::optional<CancelRegistry::Target> CancelRegistry::find(std::int32_t pid, std::uint32_t key) const {
    std::lock_guard lk(mu_);
    auto it = entries_.find(pid);
    if (it == entries_.end()) return std::nullopt;
    std::uint32_t want = it->second.key;
    if (!crypto::constant_time_equal(ByteView(reinterpret_cast<const std::byte*>(&want), 4),
                                     ByteView(reinterpret_cast<const std::byte*>(&key), 4))) {
        return std::nullopt;
    }
    return it->second.target;
}

std::set<int> CancelRegistry::backend_pids() const {
    std::lock_guard lk(mu_);
    std::set<int> out;
    for (const auto& [pid, e] : entries_) out.insert(e.target.backend_pid);
    return out;
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<asio::ssl::context> make_client_tls(const config::TlsConfig& tls) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                     asio::ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx->native_handle(), "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5:!RC4");
    ctx->use_certificate_chain_file(tls.cert_file.string());
    ctx->use_private_key_file(tls.key_file.string(), asio::ssl::context::pem);
    // Direct TLS (PostgreSQL 17 sslnegotiation=direct) sends ALPN "postgresql"; accept it.
    SSL_CTX_set_alpn_select_cb(
        ctx->native_handle(),
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
           void*) -> int {
            static const unsigned char proto[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
            unsigned char* sel = nullptr;
            if (SSL_select_next_proto(&sel, outlen, proto, sizeof proto, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
                *out = sel;
                return SSL_TLSEXT_ERR_OK;
            }
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        },
        nullptr);
    return ctx;
}

std::shared_ptr<BackendPool> make_backend_pool(Metrics* metrics) { return std::make_shared<BackendPool>(metrics); }
void stop_backend_pool(BackendPool& pool) { pool.stop(); }

void declare_metrics(Metrics& m) {
    m.declare("glassgate_connections_total", Metrics::Type::counter, "Client connections accepted, by protocol.");
    m.declare("glassgate_postgres_backend_connections_total", Metrics::Type::counter,
              "Backend connections by session: opened, or reused from the pool.");
    m.declare("glassgate_postgres_pool_idle", Metrics::Type::gauge, "Idle backend connections kept for reuse, by target.");
    m.declare("glassgate_sessions_total", Metrics::Type::counter, "Sessions ended, by protocol, auth method and close reason.");
    m.declare("glassgate_cancel_requests_total", Metrics::Type::counter, "PostgreSQL cancel requests by outcome.");
}

namespace {

session::TimePoint now_tp() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool allowed(const config::Target& t, const std::string& user, const std::vector<std::string>& groups) {
    return session::allow_list_admits(t.allow, user, groups);
}

/// Startup parameters glassgate consumes instead of forwarding.
bool consumed_param(std::string_view name) {
    return name == "user" || name == "database" || name == "replication" || name == "options";
}

/// The `options` startup parameter split into arguments the way the server does it
/// (pg_split_opts: whitespace separates, a backslash takes the next character literally).
std::vector<std::string> split_options(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    bool in = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (in) out.push_back(std::move(cur));
            cur.clear();
            in = false;
            continue;
        }
        in = true;
        if (c == '\\' && i + 1 < s.size()) {
            cur += s[++i];
        } else {
            cur += c;
        }
    }
    if (in) out.push_back(std::move(cur));
    return out;
}

std::string join_options(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& a : args) {
        if (!out.empty()) out += ' ';
        for (char c : a) {
            if (c == ' ' || c == '\\' || c == '\t') out += '\\';
            out += c;
        }
    }
    return out;
}

/// glassgate's own settings travel in `options` (`-c glassgate.reason=INC-1`, as psql and PGOPTIONS
/// send them); they are taken out before the rest is forwarded, so the backend never sees them.
struct StartupOptions {
    std::optional<std::string> reason;
    std::optional<std::string> forward;  ///< what is left for the backend; absent if nothing
};
StartupOptions take_glassgate_options(const std::optional<std::string>& options) {
    StartupOptions out;
    if (!options) return out;
    auto args = split_options(*options);
    std::vector<std::string> keep;
    auto setting = [&](const std::string& kv) {
        // A setting name=value; glassgate.* is ours.
        if (kv.rfind("glassgate.", 0) != 0) return false;
        auto eq = kv.find('=');
        if (kv.substr(0, eq) == "glassgate.reason" && eq != std::string::npos) out.reason = kv.substr(eq + 1);
        return true;
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "-c" && i + 1 < args.size()) {
            if (setting(args[i + 1])) {
                ++i;
                continue;
            }
        } else if (a.rfind("-c", 0) == 0 && a.size() > 2 && setting(a.substr(2))) {
            continue;
        } else if (a.rfind("--", 0) == 0 && setting(a.substr(2))) {
            continue;
        }
        keep.push_back(a);
    }
    if (!keep.empty()) out.forward = join_options(keep);
    return out;
}

/// How far the whole messages at the front of buf[0, len) reach, and whether an invalid header follows
/// them; `need` is set to the size the partial message after them announces (5 until its header is in).
struct Extent {
    std::size_t whole = 0;
    bool bad = false;
};
Extent frame_extent(const Bytes& buf, std::size_t len, const pg::Limits& limits, std::size_t& need) {
    Extent e;
    for (;;) {
        const auto f = pg::scan_message(ByteView(buf.data() + e.whole, len - e.whole), limits);
        if (f.size == 0) {
            e.bad = f.error;
            need = f.need;
            return e;
        }
        e.whole += f.size;
    }
}
/// decode_message's reason for the invalid header at the front of `at` (off the hot path).
std::string framing_error(ByteView at, const pg::Limits& limits) {
    const auto d = pg::decode_message(at, limits);
    return d ? std::string("invalid message header") : d.error().reason;
}

/// One client connection from accept to close.
class ClientSession : public std::enable_shared_from_this<ClientSession> {
public:
    ClientSession(tcp::socket sock, std::shared_ptr<Services> svc)
        : svc_(std::move(svc)),
          ex_(sock.get_executor()),
          client_(std::move(sock), svc_->client_tls ? svc_->client_tls : plain_ctx()),
          client_lock_(ex_),
          backend_lock_(ex_),
          watchdog_(ex_),
          peer_(describe_peer(client_.socket())),
          scope_(SessionDeps{svc_->store, svc_->recordings, svc_->metrics, svc_->active_sessions, *svc_->blocking},
                 session::Protocol::postgres, peer_) {
        boost::system::error_code ec;
        client_.socket().set_option(tcp::no_delay(true), ec);
    }

    asio::awaitable<void> run();

private:
    static std::string describe_peer(const tcp::socket& s) {
        boost::system::error_code ec;
        auto ep = s.remote_endpoint(ec);
        return ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    static std::shared_ptr<asio::ssl::context> plain_ctx() {
        static auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        return ctx;
    }

    // --- client I/O before the relay -------------------------------------------------------
    asio::awaitable<bool> fill(std::size_t at_least) {
        // Small until the client proves it speaks the protocol: many idle pre-auth connections stay cheap.
        if (buf_.size() < at_least) buf_.resize(std::max<std::size_t>(at_least, 1024));
        while (len_ < at_least) {
            if (buf_.size() <= len_) buf_.resize(len_ + 4096);
            auto [ec, n] = co_await client_.read_some(asio::buffer(buf_.data() + len_, buf_.size() - len_));
            if (ec) co_return false;
            len_ += n;
        }
        co_return true;
    }
    void consume(std::size_t n) {
        std::memmove(buf_.data(), buf_.data() + n, len_ - n);
        len_ -= n;
    }
    asio::awaitable<void> send(const Bytes& b) {
        (void)co_await write_client(asio::buffer(b));
    }
    /// Writes to one leg; the lock orders the pump's writes with the watchdog's and the closer's
    /// (uncontended on the hot path: no suspension, no timer).
    asio::awaitable<boost::system::error_code> write_client(asio::const_buffer b) {
        if (!client_lock_.try_lock()) co_await client_lock_.lock();
        auto ec = co_await client_.write(b);
        client_lock_.unlock();
        co_return ec;
    }
    asio::awaitable<boost::system::error_code> write_backend(Conn& backend, asio::const_buffer b) {
        if (!backend_lock_.try_lock()) co_await backend_lock_.lock();
        auto ec = co_await backend.write(b);
        backend_lock_.unlock();
        co_return ec;
    }
    /// Each pump's read buffer (grown only for a message larger than this).
    static constexpr std::size_t relay_buffer = 64 * 1024;
    /// Consecutive messages of one read are recorded as one event up to this size.
    static constexpr std::size_t record_batch = 256 * 1024;
    /// Writes up to this size try the socket at once, without a coroutine frame per layer.
    static constexpr std::size_t fast_write_max = 256 * 1024;
    // Coroutine parameters are references (callers always co_await at once): GCC 12 destroys
    // temporaries bound to by-value coroutine parameters twice (see http::fetch).
    asio::awaitable<void> fatal(const std::string& sqlstate, const std::string& message, const std::string& detail = {}) {
        auto msg = pg::error_response({pg::Severity::fatal, sqlstate, message, detail, {}});
        co_await send(msg);
    }
    /// Sends a buffer this coroutine owns (for fire-and-forget sends).
    asio::awaitable<void> send_owned(std::shared_ptr<Bytes> b) { co_await send(*b); }

    asio::awaitable<std::optional<pg::StartupMessage>> negotiate();
    asio::awaitable<void> handle_cancel(const pg::CancelRequest& c);
    asio::awaitable<std::optional<std::string>> read_password();
    asio::awaitable<void> relay(BackendSession& backend, const config::Target& target);
    asio::awaitable<void> pump_client_to_backend(Conn& backend);
    asio::awaitable<void> pump_backend_to_client(Conn& backend, int record_rows);
    asio::awaitable<void> watch(const config::Target& target, Conn& backend);

    bool record(session::EventKind kind, session::Direction dir, ByteView payload) {
        if (!scope_.opened()) return true;
        if (scope_.record(kind, dir, payload)) return true;
        end(CloseReason::recording_failed, "recording failed: " + scope_.recording_failure());
        return false;
    }
    spdlog::logger& log() { return scope_.log(); }
    /// Records buf[run, upto) as one event (nothing when empty) and moves `run` to `upto`.
    bool record_run(session::EventKind kind, session::Direction dir, const Bytes& buf, std::size_t& run, std::size_t upto) {
        const bool ok = upto == run || record(kind, dir, ByteView(buf.data() + run, upto - run));
        run = upto;
        return ok;
    }
    bool annotate(const std::string& text) {
        return record(session::EventKind::annotation, session::Direction::none, as_bytes(text));
    }
    void end(CloseReason why, std::string detail) {
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
    /// The backend is at rest: everything sent was answered, the last ReadyForQuery said idle (no
    /// transaction), no extended-protocol messages wait for a Sync, and the backend pump is waiting
    /// for input with nothing half-read.
    [[nodiscard]] bool backend_at_rest() const {
        return outstanding_ == 0 && !extended_open_ && backend_status_ == 'I' && backend_waiting_ && !backend_partial_;
    }
    void audit(std::string type, std::string outcome, std::string reason, boost::json::object details = {}) {
        write_audit(svc_->store, {scope_.opened() ? scope_.id() : std::string(), identity_, target_name_, peer_},
                    std::move(type), std::move(outcome), std::move(reason), std::move(details));
    }
    asio::awaitable<void> refuse(const std::string& sqlstate, const std::string& client_msg, const std::string& log_reason,
                                 const std::string& type = "auth.denied") {
        spdlog::warn("postgres {}: {} (user={}, target={})", peer_, log_reason, identity_.empty() ? user_ : identity_, target_name_);
        audit(type, "denied", log_reason, {{"user", user_}});
        co_await fatal(sqlstate, client_msg);
    }

    std::shared_ptr<Services> svc_;
    asio::any_io_executor ex_;
    Conn client_;
    Conn* backend_ = nullptr;
    AsyncLock client_lock_;
    AsyncLock backend_lock_;
    asio::steady_timer watchdog_;
    std::string peer_;
    SessionScope scope_;  ///< index row, recording, audit, close
    Bytes buf_;
    std::size_t len_ = 0;

    std::string user_;
    std::string identity_;
    std::string target_name_;
    std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
    bool ended_ = false;
    CloseReason reason_ = CloseReason::none;
    std::string detail_;
    std::uint64_t c2s_ = 0, s2c_ = 0;
    // The time cap and where it comes from (the target's, or a break-glass rule's capped by the target's).
    std::optional<std::chrono::milliseconds> cap_;
    std::chrono::milliseconds warn_{std::chrono::minutes(5)};
    std::string cap_source_;
    std::optional<breakglass::Grant> grant_;  ///< the consumed emergency account, for break-glass sessions
    // Bind redaction (the target's redact_params / redact_params_for).
    bool redact_all_ = false;
    std::vector<std::regex> redact_for_;
    std::unordered_map<std::string, bool> redacted_statements_;  ///< prepared statement -> its Binds are redacted
    // Backend reuse (the target's pool_size): whether this session may leave its backend connection,
    // and the state that tells whether it is at rest.
    bool poolable_ = false;
    bool keep_backend_ = false;                       ///< the session ended at rest: reset and park it
    BackendSession* backend_session_ = nullptr;       ///< its parameters follow ParameterStatus reports
    int outstanding_ = 0;                             ///< Query/Sync/FunctionCall sent, ReadyForQuery not yet seen
    bool extended_open_ = false;                      ///< extended-protocol messages since the last Sync
    char backend_status_ = 'I';                       ///< of the last ReadyForQuery
    bool backend_waiting_ = false;                    ///< the backend pump waits in a read
    bool backend_partial_ = false;                    ///< the backend pump holds part of a message

    enum class Redaction { as_is, replaced, dropped };
    /// What the recording gets for a client message under the target's redaction rules; `out` holds
    /// the replacement. Parse and Close maintain which statements are redacted.
    Redaction redact(char type, ByteView whole, Bytes& out);
};

asio::awaitable<std::optional<pg::StartupMessage>> ClientSession::negotiate() {
    for (int round = 0; round < 4; ++round) {
        if (!co_await fill(1)) co_return std::nullopt;
        // Direct TLS: the first byte of a TLS handshake record instead of a startup packet.
        if (round == 0 && std::to_integer<unsigned>(buf_[0]) == 0x16) {
            if (!svc_->client_tls) {
                spdlog::warn("postgres {}: direct TLS attempted but [tls] is not configured", peer_);
                co_return std::nullopt;
            }
            const auto herr = co_await client_.handshake(true, ByteView(buf_.data(), len_));
            if (!herr.empty()) {
                spdlog::info("postgres {}: TLS handshake failed: {}", peer_, herr);
                co_return std::nullopt;
            }
            len_ = 0;
            // As PostgreSQL 17 does: direct TLS only with ALPN "postgresql", so that a TLS connection
            // meant for another protocol is never taken for a PostgreSQL one.
            const unsigned char* alpn = nullptr;
            unsigned int alpn_len = 0;
            SSL_get0_alpn_selected(client_.ssl(), &alpn, &alpn_len);
            if (alpn_len == 0) {
                spdlog::warn("postgres {}: direct TLS without ALPN \"postgresql\"; closing", peer_);
                co_await fatal("08P01", "direct TLS connection without ALPN protocol \"postgresql\"");
                co_return std::nullopt;
            }
            continue;
        }
        std::optional<pg::StartupDecoded> dec;
        for (;;) {
            auto d = pg::decode_startup(ByteView(buf_).first(len_));
            if (!d) {
                spdlog::warn("postgres {}: bad startup packet: {}", peer_, d.error().reason);
                co_await fatal("08P01", "invalid startup packet: " + d.error().reason);
                co_return std::nullopt;
            }
            if (auto* s = std::get_if<pg::StartupDecoded>(&*d)) {
                dec = std::move(*s);
                break;
            }
            if (!co_await fill(std::get<pg::NeedMore>(*d).at_least)) co_return std::nullopt;
        }
        consume(dec->consumed);
        if (std::holds_alternative<pg::SslRequest>(dec->packet)) {
            if (client_.tls()) {
                co_await fatal("08P01", "SSLRequest inside TLS");
                co_return std::nullopt;
            }
            if (!svc_->client_tls) {
                const char n = 'N';
                (void)co_await client_.write(asio::buffer(&n, 1));
                continue;
            }
            // Bytes behind an SSLRequest arrived unencrypted and may have been injected by a
            // man-in-the-middle before the handshake (CVE-2021-23222 class): refuse them.
            if (len_ != 0) {
                spdlog::warn("postgres {}: {} unencrypted byte(s) after SSLRequest; closing", peer_, len_);
                co_return std::nullopt;
            }
            const char s = 'S';
            if (co_await client_.write(asio::buffer(&s, 1))) co_return std::nullopt;
            const auto herr = co_await client_.handshake(true);
            if (!herr.empty()) {
                spdlog::info("postgres {}: TLS handshake failed: {}", peer_, herr);
                co_return std::nullopt;
            }
            continue;
        }
        if (std::holds_alternative<pg::GssEncRequest>(dec->packet)) {
            const char n = 'N';
            (void)co_await client_.write(asio::buffer(&n, 1));
            continue;
        }
        if (auto* c = std::get_if<pg::CancelRequest>(&dec->packet)) {
            co_await handle_cancel(*c);
            co_return std::nullopt;
        }
        co_return std::get<pg::StartupMessage>(std::move(dec->packet));
    }
    co_await fatal("08P01", "too many negotiation requests");
    co_return std::nullopt;
}

asio::awaitable<void> ClientSession::handle_cancel(const pg::CancelRequest& c) {
    auto t = svc_->cancels.find(c.pid, c.key);
    if (!t) {
        svc_->metrics.inc("glassgate_cancel_requests_total", {{"outcome", "no_match"}});
        spdlog::info("postgres {}: cancel request for an unknown session or with a wrong key: ignored", peer_);
        co_return;
    }
    svc_->metrics.inc("glassgate_cancel_requests_total", {{"outcome", "forwarded"}});
    tcp::socket s(ex_);
    auto [ec] = co_await s.async_connect(t->backend, use_tuple);
    if (ec) {
        spdlog::warn("postgres: cannot forward cancel for session {}: {}", t->session_id, ec.message());
        co_return;
    }
    auto msg = pg::cancel_request(t->backend_pid, t->backend_key);
    (void)co_await asio::async_write(s, asio::buffer(msg), use_tuple);
    spdlog::info("postgres {}: cancel request forwarded for session {}", peer_, t->session_id);
}

asio::awaitable<std::optional<std::string>> ClientSession::read_password() {
    // PostgreSQL's own bound for a password packet (PG_MAX_AUTH_TOKEN_LENGTH): before authentication
    // nobody gets a 64 MiB buffer, so idle pre-auth connections stay cheap.
    pg::Limits limits;
    limits.max_message = 65535;
    for (;;) {
        auto d = pg::decode_message(ByteView(buf_).first(len_), limits);
        if (!d) {
            spdlog::warn("postgres {}: bad password packet: {}", peer_, d.error().reason);
            co_await fatal("08P01", "invalid password packet: " + d.error().reason);
            co_return std::nullopt;
        }
        if (auto* m = std::get_if<pg::MessageDecoded>(&*d)) {
            if (m->message.type != 'p') co_return std::nullopt;
            auto pw = pg::parse_password_message(m->message.body);
            if (!pw) co_return std::nullopt;
            std::string out(*pw);
            consume(m->consumed);
            co_return out;
        }
        if (!co_await fill(std::get<pg::NeedMore>(*d).at_least)) co_return std::nullopt;
    }
}

asio::awaitable<void> ClientSession::run() {
    svc_->metrics.inc("glassgate_connections_total", {{"protocol", "postgres"}});
    // Pre-authentication deadline: a client that says nothing is cut off.
    watchdog_.expires_after(svc_->pre_auth_timeout);
    watchdog_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
            spdlog::info("postgres {}: no startup within {} ms; closing", peer_, svc_->pre_auth_timeout.count());
            client_.close();
        }
    });
    auto startup = co_await negotiate();
    if (!startup) {
        watchdog_.cancel();
        client_.close();
        co_return;
    }
    user_ = startup->get("user").value_or("");
    const std::string dbparam = startup->get("database").value_or(user_);
    if (!client_.tls() && !svc_->cfg.listen.allow_plaintext) {
        watchdog_.cancel();
        co_await refuse("28000", "TLS required: connect with sslmode=require", "plaintext connection refused");
        client_.close();
        co_return;
    }
    if (startup->get("replication")) {
        watchdog_.cancel();
        co_await refuse("28000", "replication connections are not allowed through glassgate", "replication connection refused");
        client_.close();
        co_return;
    }
    // dbname = target, or target/database.
    target_name_ = dbparam.substr(0, dbparam.find('/'));
    std::string database;
    const auto* target = svc_->cfg.find_target(target_name_);
    if (!target || target->protocol != config::Protocol::postgres) {
        watchdog_.cancel();
        co_await refuse("3D000", "no PostgreSQL target \"" + target_name_ + "\" on this proxy", "unknown target", "auth.denied");
        client_.close();
        co_return;
    }
    if (auto slash = dbparam.find('/'); slash != std::string::npos) {
        database = dbparam.substr(slash + 1);
        if (database != target->database &&
            std::find(target->databases.begin(), target->databases.end(), database) == target->databases.end()) {
            watchdog_.cancel();
            co_await refuse("3D000", "target \"" + target_name_ + "\" does not allow database \"" + database + "\"",
                            "database not allowed by target");
            client_.close();
            co_return;
        }
    } else {
        database = target->database;
    }

    // Authentication: a cleartext password carrying an SSO token, or "sso" for a device-code sign-in.
    co_await send(pg::authentication_cleartext_password());
    auto password = co_await read_password();
    if (!password) {
        watchdog_.cancel();
        client_.close();
        co_return;
    }
    const auto gg_options = take_glassgate_options(startup->get("options"));
    const std::string session_id = scope_.reserve_id();  // break-glass consumes an account for it
    std::optional<oidc::Identity> ident;
    bool sent_auth_ok = false;
    std::string auth_method = "token";
    cap_ = target->max_session;
    warn_ = target->warn_before.value_or(std::chrono::minutes(5));
    cap_source_ = "time limit of target \"" + target->name + "\"";
    if (svc_->breakglass && svc_->breakglass->is_account(user_)) {
        // Break-glass: the startup user is an emergency account named by a [[fallback]] rule. The
        // service checks mode, rule, reason, limits and passphrase, and consumes the account atomically
        // before the backend is contacted; it audits and alerts every step itself.
        breakglass::Attempt attempt{.account = user_, .passphrase = Secret(std::move(*password)),
                                    .reason = gg_options.reason.value_or(""), .target = target_name_, .source = peer_,
                                    .session_id = session_id, .protocol = "postgres"};
        auto decision = co_await svc_->breakglass->authenticate(attempt);
        watchdog_.cancel();
        if (!decision.ok()) {
            spdlog::warn("postgres {}: break-glass login refused: {} (account={}, target={})", peer_, decision.log_reason,
                         user_, target_name_);
            const std::string code = decision.outcome == breakglass::Outcome::bad_passphrase ? "28P01" : "28000";
            co_await fatal(code, decision.public_message);
            client_.close();
            co_return;
        }
        grant_ = std::move(decision.grant);
        identity_ = user_;
        auth_method = "breakglass";
        cap_ = grant_->max_session;
        warn_ = grant_->warn_before;
        cap_source_ = "emergency access limit of rule \"" + grant_->rule_name + "\"";
    } else {
    if (!svc_->idp) {
        watchdog_.cancel();
        co_await refuse("28000", "SSO is not configured on this proxy", "no [idp] configured");
        client_.close();
        co_return;
    }
    if (lower(*password) == "sso") {
        auth_method = "device";
        // psql prints a NoticeResponse only after AuthenticationOk (before it, the connection fails),
        // so: AuthenticationOk, then the URL and code as a WARNING, then wait for approval.
        watchdog_.cancel();
        co_await send(pg::authentication_ok());
        sent_auth_ok = true;
        std::function<void(const oidc::DeviceAuthorization&)> show = [this](const oidc::DeviceAuthorization& a) {
            std::string msg = "To sign in, open " + a.verification_uri_complete.value_or(a.verification_uri) +
                              " and confirm the code " + a.user_code;
            auto notice = std::make_shared<Bytes>(
                pg::notice_response({pg::Severity::warning, "01000", msg, {}, "glassgate waits for the approval"}));
            asio::co_spawn(ex_, send_owned(std::move(notice)), asio::detached);
        };
        auto res = co_await svc_->idp->device_login(std::move(show));
        if (!res.identity) {
            co_await refuse("28000", "sign-in failed: " + res.public_message, "device sign-in failed: " + res.reason);
            client_.close();
            co_return;
        }
        ident = std::move(res.identity);
    } else {
        auto v = co_await svc_->idp->verify_token(std::move(*password));
        watchdog_.cancel();
        if (!v.ok()) {
            co_await refuse("28P01", "password authentication failed for user \"" + user_ + "\": " +
                                         std::string(oidc::public_message(v.error)),
                            "token refused: " + v.reason);
            client_.close();
            co_return;
        }
        ident = std::move(v.identity);
    }
    identity_ = ident->username;
    if (identity_ != user_) {
        co_await refuse("28000", "the SSO sign-in is for \"" + identity_ + "\", not \"" + user_ + "\"", "identity does not match the startup user");
        client_.close();
        co_return;
    }
    if (!allowed(*target, identity_, ident->groups)) {
        co_await refuse("28000", "\"" + identity_ + "\" is not allowed to use target \"" + target_name_ + "\"", "not in the target's allow list");
        client_.close();
        co_return;
    }
    }  // SSO
    const session::AuthMethod method = grant_ ? session::AuthMethod::breakglass : session::AuthMethod::sso;
    const std::string reason = grant_ ? grant_->reason : std::string();

    // The session: index row, recording first (fail closed), audit.
    last_activity_ = std::chrono::steady_clock::now();
    SessionScope::Open open{.identity = identity_, .method = method, .auth_detail = auth_method, .target = target_name_,
                            .cap = std::nullopt, .reason = reason, .extra = {{"database", database}, {"user", user_}},
                            .audit_details = {{"database", database}}};
    if (cap_) {
        open.cap = std::chrono::duration_cast<std::chrono::microseconds>(*cap_);
        open.audit_details["max_session"] = config::format_duration(*cap_);
    }
    if (grant_) {
        open.extra["rule"] = grant_->rule_name;
        open.audit_details["rule"] = grant_->rule_name;
    }
    if (!scope_.open(open)) {
        co_await fatal("58030", "glassgate cannot record this session, so it is refused");
        client_.close();
        // The emergency credential was consumed before the recording was tried: it stays consumed.
        if (grant_) svc_->breakglass->session_closed(*grant_, "recording_failed", now_tp());
        co_return;
    }
    log().info("postgres session: {} ({}) -> {} database {} from {}{}", identity_, auth_method, target_name_, database, peer_,
               grant_ ? " [break-glass, reason \"" + grant_->reason + "\"]" : std::string());

    // Backend leg with the stored secret.
    std::optional<Secret> secret;
    try {
        secret = SecretStore(svc_->store, svc_->secrets_key).get(target_name_);
    } catch (const std::exception& e) {
        log().error("cannot read the secret for {}: {}", target_name_, e.what());
    }
    std::vector<std::pair<std::string, std::string>> fwd;
    for (const auto& [k, v] : startup->params) {
        if (!consumed_param(k)) fwd.emplace_back(k, v);
    }
    if (gg_options.forward) fwd.emplace_back("options", *gg_options.forward);
    BackendResult br;
    // Break-glass sessions always get a connection of their own and leave none behind.
    poolable_ = target->pool_size > 0 && !grant_;
    std::string pool_key;
    bool reused = false;
    if (!secret) {
        br.error = "no credential is stored for target " + target_name_ + " (glassgate secret set " + target_name_ + ")";
        br.client_error = "glassgate has no credential for this target";
    } else {
        if (poolable_) {
            pool_key = BackendPool::key(*target, database, *secret, fwd);
            if (auto idle = svc_->pool->take(pool_key)) {
                br.session = std::move(*idle);
                reused = true;
            }
        }
        if (!reused) br = co_await connect_backend(*target, *secret, database, fwd, 10s);
        if (br.session) {
            svc_->metrics.inc("glassgate_postgres_backend_connections_total",
                              {{"target", target_name_}, {"how", reused ? "reused" : "opened"}});
        }
    }
    if (!br.session) {
        log().error("{}", br.error);
        annotate("backend connection failed: " + br.error);
        reason_ = CloseReason::backend_error;
        detail_ = br.error;
        co_await fatal(br.sqlstate == "3D000" ? "3D000" : "08006", br.client_error);
        client_.close();
    } else {
        scope_.activate();
        backend_ = br.session->conn.get();
        auto [pid, key] = svc_->cancels.add({br.session->endpoint, br.session->pid, br.session->key, scope_.id()});
        Bytes hello;
        if (!sent_auth_ok) {
            auto ok = pg::authentication_ok();
            hello.insert(hello.end(), ok.begin(), ok.end());
        }
        for (const auto& [k, v] : br.session->parameters) {
            auto ps = pg::parameter_status(k, v);
            hello.insert(hello.end(), ps.begin(), ps.end());
        }
        auto kd = pg::backend_key_data(pid, key);
        hello.insert(hello.end(), kd.begin(), kd.end());
        auto rq = pg::ready_for_query('I');
        hello.insert(hello.end(), rq.begin(), rq.end());
        annotate("connected to " + br.session->endpoint.address().to_string() + ":" +
                 std::to_string(br.session->endpoint.port()) + " as " + target->backend_user + ", database " + database +
                 (br.session->conn->tls() ? " (TLS)" : "") +
                 (reused ? ", reusing the idle backend connection of an earlier session (backend pid " +
                               std::to_string(br.session->pid) + ", reset with DISCARD ALL)"
                         : ""));
        backend_session_ = &*br.session;
        co_await send(hello);
        std::weak_ptr<ClientSession> weak = shared_from_this();
        const auto closer_id = svc_->closers.add([weak, ex = ex_](std::string why) {
            asio::co_spawn(ex, [weak, why]() -> asio::awaitable<void> {
                auto self = weak.lock();
                if (!self || self->ended_) co_return;
                co_await self->fatal("57P01", why);
                self->end(CloseReason::shutdown, why);
            }, asio::detached);
        });
        co_await relay(*br.session, *target);
        svc_->closers.remove(closer_id);
        svc_->cancels.remove(pid);
        backend_ = nullptr;
        if (keep_backend_ && !svc_->stopping) {
            annotate("the backend connection is kept for a later session (reset with DISCARD ALL first)");
            auto kept = std::make_shared<BackendSession>(std::move(*br.session));
            asio::co_spawn(ex_, [svc = svc_, kept, key = std::move(pool_key), target]() -> asio::awaitable<void> {
                const auto why = co_await reset_backend(*kept, 5s);
                if (!why.empty()) {
                    spdlog::warn("postgres: backend connection of target {} (pid {}) not kept for reuse: {}", target->name,
                                 kept->pid, why);
                    kept->conn->close();
                    co_return;
                }
                if (svc->stopping) {
                    kept->conn->close();
                    co_return;
                }
                svc->pool->put(key, std::move(*kept), *target);
            }, asio::detached);
        } else if (keep_backend_) {
            br.session->conn->close();
        }
    }
    // Close: seal the recording (off the io thread), index, audit, metrics.
    co_await scope_.close(reason_, detail_, c2s_, s2c_);
    // Break-glass: the account is used now (a new stage is needed), rotation queued if the rule says so.
    if (grant_) svc_->breakglass->session_closed(*grant_, session::to_string(scope_.close_reason()), now_tp());
}

ClientSession::Redaction ClientSession::redact(char type, ByteView whole, Bytes& out) {
    const ByteView body = whole.subspan(5);
    if (type == 'P') {
        if (redact_for_.empty()) return Redaction::as_is;
        auto p = pg::parse_parse(body);
        if (!p) return Redaction::as_is;  // the server refuses it; nothing is bound to it
        bool match = false;
        for (const auto& re : redact_for_) {
            if (std::regex_search(p->query.begin(), p->query.end(), re)) {
                match = true;
                break;
            }
        }
        redacted_statements_[std::string(p->statement)] = match;
        return Redaction::as_is;
    }
    if (type == 'C') {
        if (auto c = pg::parse_close(body); c && c->kind == 'S') redacted_statements_.erase(std::string(c->name));
        return Redaction::as_is;
    }
    if (type != 'B') return Redaction::as_is;
    auto b = pg::parse_bind(body);
    if (!b) return Redaction::dropped;  // unreadable: its values cannot be told apart, so none is kept
    if (!redact_all_) {
        auto it = redacted_statements_.find(std::string(b->statement));
        if (it == redacted_statements_.end() || !it->second) return Redaction::as_is;
    }
    out = pg::redact_bind(*b);
    return Redaction::replaced;
}

asio::awaitable<void> ClientSession::relay(BackendSession& backend, const config::Target& target) {
    redact_all_ = target.redact_params;
    for (const auto& pattern : target.redact_params_for) {
        redact_for_.emplace_back(pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
    }
    if (!backend.pending.empty()) {
        // The backend sent something right after ReadyForQuery (e.g. a notice): pass it on first,
        // once (a kept connection must not replay it to the next session).
        co_await send(backend.pending);
        Bytes().swap(backend.pending);
    }
    // Client bytes pipelined behind the password (still in buf_) are the client pump's first input.
    co_await (pump_client_to_backend(*backend.conn) && pump_backend_to_client(*backend.conn, target.record_rows) &&
              watch(target, *backend.conn));
}

// The pumps read as much as the socket has, walk the complete messages in place (recording each one),
// forward them with one write, and keep a partial message at the front of the buffer. The buffer grows
// to the size a partial message announces, never beyond the message cap (checked on the header, before
// anything is allocated).
asio::awaitable<void> ClientSession::pump_client_to_backend(Conn& backend) {
    const pg::Limits limits;
    Bytes buf(std::max<std::size_t>(relay_buffer, len_));
    std::size_t len = 0;
    if (len_ > 0) {
        std::memcpy(buf.data(), buf_.data(), len_);
        len = len_;
        len_ = 0;
    }
    Bytes().swap(buf_);
    bool have_input = len > 0;
    std::size_t need = 0;  // size of the partial message at the front, once its header is in
    while (!ended_) {
        if (!have_input) {
            if (need > buf.size()) {
                buf.resize(need);
            } else if (len == buf.size()) {
                buf.resize(std::min(buf.size() * 2, limits.max_message + 1));
            }
            auto [ec, n] = co_await client_.read_some(asio::buffer(buf.data() + len, buf.size() - len));
            if (ec || n == 0) {
                end(CloseReason::client_disconnect, ended_ ? std::string() : "client closed the connection");
                co_return;
            }
            len += n;
            last_activity_ = std::chrono::steady_clock::now();
        }
        have_input = false;
        // First the framing of everything read (an invalid header anywhere: nothing of it is recorded
        // or forwarded), then each whole message recorded.
        const auto [consumed, bad] = frame_extent(buf, len, limits, need);
        if (bad) {
            const std::string reason = framing_error(ByteView(buf.data() + consumed, len - consumed), limits);
            log().warn("malformed message from the client: {}", reason);
            co_await fatal("08P01", "invalid message: " + reason);
            end(CloseReason::protocol_error, "malformed client message: " + reason);
            co_return;
        }
        bool terminate = false;
        std::size_t forward = consumed;  // Terminate is not passed on when the backend is kept
        // Runs of consecutive messages are recorded as one event (up to record_batch bytes); a
        // redacted or dropped message ends a run.
        const bool redacting = redact_all_ || !redact_for_.empty();
        std::size_t run = 0;
        auto flush_run = [&](std::size_t upto) {
            return record_run(session::EventKind::pg_frontend, session::Direction::client_to_server, buf, run, upto);
        };
        for (std::size_t at = 0; at < consumed;) {
            const auto frame = pg::scan_message(ByteView(buf.data() + at, consumed - at), limits);
            switch (frame.type) {
                case 'Q':
                case 'F': ++outstanding_; break;
                case 'S':
                    ++outstanding_;
                    extended_open_ = false;
                    break;
                case 'P':
                case 'B':
                case 'E':
                case 'D':
                case 'C': extended_open_ = true; break;
                case 'X':
                    if (!terminate && poolable_ && !ended_ && backend_at_rest()) {
                        keep_backend_ = true;
                        forward = at;
                    }
                    terminate = true;
                    break;
                default: break;
            }
            if (at > run && at + frame.size - run > record_batch && !flush_run(at)) co_return;
            if (redacting) {
                Bytes replacement;
                switch (redact(frame.type, ByteView(buf.data() + at, frame.size), replacement)) {
                    case Redaction::as_is: break;
                    case Redaction::replaced:
                        if (!flush_run(at) ||
                            !record(session::EventKind::pg_frontend, session::Direction::client_to_server, replacement)) {
                            co_return;
                        }
                        run = at + frame.size;
                        break;
                    case Redaction::dropped:
                        if (!flush_run(at) ||
                            !annotate("a Bind message that could not be parsed was not recorded (redact_params)")) {
                            co_return;
                        }
                        run = at + frame.size;
                        break;
                }
            }
            at += frame.size;
        }
        if (!flush_run(consumed)) co_return;
        if (forward > 0) {
            boost::system::error_code wec;
            if (forward <= fast_write_max && backend_lock_.try_lock()) {
                if (!backend.write_now(asio::const_buffer(buf.data(), forward), wec) && !wec) wec = co_await backend.flush();
                backend_lock_.unlock();
            } else {
                wec = co_await write_backend(backend, asio::const_buffer(buf.data(), forward));
            }
            if (wec) {
                keep_backend_ = false;
                end(CloseReason::backend_disconnect, "backend connection lost: " + wec.message());
                co_return;
            }
        }
        if (consumed > 0) {
            c2s_ += consumed;
            if (consumed < len) std::memmove(buf.data(), buf.data() + consumed, len - consumed);
            len -= consumed;
        }
        if (terminate) {
            end(CloseReason::client_disconnect, "client sent Terminate");
            co_return;
        }
    }
}

asio::awaitable<void> ClientSession::pump_backend_to_client(Conn& backend, int record_rows) {
    const pg::Limits limits;
    Bytes buf(relay_buffer);
    std::size_t len = 0;
    std::size_t need = 0;
    long rows = 0;
    while (!ended_) {
        if (need > buf.size()) {
            buf.resize(need);
        } else if (len == buf.size()) {
            buf.resize(std::min(buf.size() * 2, limits.max_message + 1));
        }
        backend_waiting_ = true;
        auto [ec, n] = co_await backend.read_some(asio::buffer(buf.data() + len, buf.size() - len));
        backend_waiting_ = false;
        if (ec || n == 0) {
            if (!ended_) {
                co_await fatal("08006", "the database server closed the connection");
                end(CloseReason::backend_disconnect, "backend closed the connection");
            }
            co_return;
        }
        len += n;
        last_activity_ = std::chrono::steady_clock::now();
        const auto [consumed, bad] = frame_extent(buf, len, limits, need);
        if (bad) {
            const std::string reason = framing_error(ByteView(buf.data() + consumed, len - consumed), limits);
            log().error("malformed message from the backend: {}", reason);
            co_await fatal("08P01", "glassgate received an invalid message from the database server");
            end(CloseReason::protocol_error, "malformed backend message: " + reason);
            co_return;
        }
        // As in the other direction, runs of messages are one event; rows beyond record_rows end a run
        // (they are left out), and so does the note about them.
        std::size_t run = 0;
        auto flush_run = [&](std::size_t upto) {
            return record_run(session::EventKind::pg_backend, session::Direction::server_to_client, buf, run, upto);
        };
        for (std::size_t at = 0; at < consumed;) {
            const auto frame = pg::scan_message(ByteView(buf.data() + at, consumed - at), limits);
            if (at > run && at + frame.size - run > record_batch && !flush_run(at)) co_return;
            if (frame.type == 'D') {
                ++rows;
                if (record_rows >= 0 && rows > record_rows) {
                    if (!flush_run(at)) co_return;
                    run = at + frame.size;
                }
            } else if (frame.type == 'C' || frame.type == 'E' || frame.type == 'Z' || frame.type == 'I' || frame.type == 's') {
                if (frame.type == 'Z') {
                    if (outstanding_ > 0) --outstanding_;
                    if (frame.size == 6) backend_status_ = static_cast<char>(buf[at + 5]);
                }
                if (record_rows >= 0 && rows > record_rows) {
                    if (!flush_run(at) || !annotate(std::to_string(rows - record_rows) + " more row(s) not recorded (record_rows = " +
                                                    std::to_string(record_rows) + ")")) {
                        co_return;
                    }
                }
                rows = 0;
            } else if (frame.type == 'S' && poolable_ && backend_session_) {
                // A kept connection's parameters are what the next client is told at its start.
                if (auto ps = pg::parse_parameter_status(ByteView(buf.data() + at + 5, frame.size - 5))) {
                    apply_parameter_status(*backend_session_, std::move(*ps));
                }
            }
            at += frame.size;
        }
        if (!flush_run(consumed)) co_return;
        if (consumed > 0) {
            boost::system::error_code wec;
            if (consumed <= fast_write_max && client_lock_.try_lock()) {
                if (!client_.write_now(asio::const_buffer(buf.data(), consumed), wec) && !wec) wec = co_await client_.flush();
                client_lock_.unlock();
            } else {
                wec = co_await write_client(asio::const_buffer(buf.data(), consumed));
            }
            if (wec) {
                end(CloseReason::client_disconnect, "client connection lost: " + wec.message());
                co_return;
            }
            s2c_ += consumed;
            if (consumed < len) std::memmove(buf.data(), buf.data() + consumed, len - consumed);
            len -= consumed;
        }
        backend_partial_ = len > 0;
    }
}

asio::awaitable<void> ClientSession::watch(const config::Target& target, Conn& backend) {
    using steady = std::chrono::steady_clock;
    std::optional<steady::time_point> deadline;
    std::vector<std::pair<steady::time_point, std::string>> warnings;
    if (cap_) {
        deadline = scope_.started() + *cap_;
        auto warn = warn_;
        auto fmt = [](std::chrono::milliseconds d) { return config::format_duration(d); };
        if (warn > std::chrono::milliseconds(0) && warn < *cap_) warnings.emplace_back(*deadline - warn, fmt(warn));
        if (std::chrono::minutes(1) < *cap_ && warn != std::chrono::minutes(1)) {
            warnings.emplace_back(*deadline - std::chrono::minutes(1), "1m");
        }
        std::sort(warnings.begin(), warnings.end());
    }
    std::size_t next_warning = 0;
    while (!ended_) {
        auto wake = steady::time_point::max();
        if (deadline) wake = *deadline;
        if (next_warning < warnings.size()) wake = std::min(wake, warnings[next_warning].first);
        if (target.idle_timeout) wake = std::min(wake, last_activity_ + *target.idle_timeout);
        watchdog_.expires_at(wake);
        (void)co_await watchdog_.async_wait(use_tuple);
        if (ended_) co_return;
        const auto now = steady::now();
        if (next_warning < warnings.size() && now >= warnings[next_warning].first) {
            const auto text = "glassgate: this session ends in " + warnings[next_warning].second + " (" + cap_source_ + ")";
            ++next_warning;
            annotate("time-cap warning sent: " + text);
            // Named, not a braced temporary inside co_await (GCC 12 destroys those twice: PR 101367).
            const auto notice = pg::notice_response({pg::Severity::warning, "01000", text, {}, {}});
            co_await send(notice);
            continue;
        }
        if (deadline && now >= *deadline) {
            annotate("time cap reached: session ended");
            const std::string detail = cap_source_ + ": sessions of at most " + config::format_duration(*cap_);
            co_await fatal("57P01", "session time limit reached", detail);
            const auto x = pg::terminate();
            (void)co_await write_backend(backend, asio::buffer(x));
            end(CloseReason::time_cap, "session time limit (" + config::format_duration(*cap_) + ") reached");
            co_return;
        }
        if (target.idle_timeout && now >= last_activity_ + *target.idle_timeout) {
            annotate("idle timeout: session ended");
            const std::string detail =
                "target \"" + target.name + "\" closes sessions idle for " + config::format_duration(*target.idle_timeout);
            co_await fatal("57P01", "session idle for too long", detail);
            end(CloseReason::idle_timeout, "idle for " + config::format_duration(*target.idle_timeout));
            co_return;
        }
    }
}

}  // namespace

asio::awaitable<void> handle_client(tcp::socket sock, std::shared_ptr<Services> svc) {
    try {
        auto s = std::make_shared<ClientSession>(std::move(sock), std::move(svc));
        co_await s->run();
    } catch (const std::exception& e) {
        spdlog::error("postgres: connection ended by an internal error: {}", e.what());
    }
}

}  // namespace gg::proxy::postgres
