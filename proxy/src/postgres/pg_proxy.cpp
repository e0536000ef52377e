#include "glassgate/proxy/postgres/pg_proxy.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <openssl/ssl.h>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <system_error>
#include <cctype>
#include <regex>
#include <unordered_map>

#include "glassgate/config/loader.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/session/audit_chain.hpp"
#include "glassgate/session/policy.hpp"
#include "glassgate/session/recording.hpp"
#include "glassgate/session/session.hpp"
#include "../lifecycle/session_scope.hpp"
#include "pg_backend.hpp"
#include "pg_conn.hpp"

namespace gg::proxy::postgres {
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using session::CloseReason;

// ---------------------------------------------------------------------------------------------
// CancelRegistry

std::uint32_t CancelRegistry::add(Target t) {
    std::lock_guard lk(mu_);
    const auto pid = t.backend_pid;
    std::uint32_t key = 0;
    for (bool taken = true; taken;) {
        auto r = crypto::random_bytes(4);
        std::memcpy(&key, r.data(), 4);
        taken = false;
        for (auto [it, end] = entries_.equal_range(pid); it != end; ++it) taken = taken || it->second.key == key;
    }
    entries_.emplace(pid, Entry{key, std::move(t)});
    return key;
}

void CancelRegistry::remove(std::int32_t pid, std::uint32_t key) {
    std::lock_guard lk(mu_);
    for (auto [it, end] = entries_.equal_range(pid); it != end; ++it) {
        if (it->second.key == key) {
            entries_.erase(it);
            return;
        }
    }
}

std::optional<CancelRegistry::Target> CancelRegistry::find(std::int32_t pid, std::uint32_t key) const {
    std::lock_guard lk(mu_);
    std::optional<Target> found;
    // Every entry of the pid is compared in constant time, so timing tells nothing about the key.
    for (auto [it, end] = entries_.equal_range(pid); it != end; ++it) {
        const std::uint32_t want = it->second.key;
        if (crypto::constant_time_equal(ByteView(reinterpret_cast<const std::byte*>(&want), 4),
                                        ByteView(reinterpret_cast<const std::byte*>(&key), 4))) {
            found = it->second.target;
        }
    }
    return found;
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
    /// Messages above this size are relayed in pieces even when the recording keeps them whole.
    static constexpr std::size_t stream_above = 1024 * 1024;
    /// PostgreSQL's own bound for a message (1 GB - 1, PQ_LARGE_MESSAGE_LIMIT).
    static constexpr std::size_t max_message = (std::size_t{1} << 30) - 1;
    /// Consecutive messages of one read are recorded as one event up to this size.
    static constexpr std::size_t record_batch = 256 * 1024;
    /// Writes up to this size try the socket at once, without a coroutine frame per layer.
    static constexpr std::size_t fast_write_max = 256 * 1024;
    // Coroutine parameters are references (callers always co_await at once): GCC 12 destroys
    // temporaries bound to by-value coroutine parameters twice (see http::fetch).
    asio::awaitable<void> fatal(const std::string& sqlstate, const std::string& message, const std::string& detail = {}) {
        auto msg = pg::error_response({pg::Severity::fatal, sqlstate, message, detail, {}});
        if (!co_await send_own(msg)) {
            spdlog::warn("postgres {}: not sent to the client, which is in the middle of a relayed message: {}", peer_, message);
        }
    }
    /// Sends a message of glassgate's own between relayed messages; false (nothing sent) while the
    /// client holds part of a message relayed in pieces, or when the write fails.
    asio::awaitable<bool> send_own(const Bytes& b) {
        if (!client_lock_.try_lock()) co_await client_lock_.lock();
        if (client_mid_message_) {
            client_lock_.unlock();
            co_return false;
        }
        auto ec = co_await client_.write(asio::buffer(b));
        client_lock_.unlock();
        co_return !ec;
    }
    /// Sends a buffer this coroutine owns (for fire-and-forget sends).
    asio::awaitable<void> send_owned(std::shared_ptr<Bytes> b) { co_await send(*b); }

    asio::awaitable<std::optional<pg::StartupMessage>> negotiate();
    asio::awaitable<void> handle_cancel(const pg::CancelRequest& c);
    asio::awaitable<std::optional<std::string>> read_password();
    asio::awaitable<void> relay(BackendSession& backend, const config::Target& target);
    asio::awaitable<void> watch(const config::Target& target, Conn& backend);

    /// One direction of the relay: its read buffer, the message relayed in pieces, the COPY data.
    struct Flow {
        explicit Flow(bool client)
            : from_client(client),
              kind(client ? session::EventKind::pg_frontend : session::EventKind::pg_backend),
              dir(client ? session::Direction::client_to_server : session::Direction::server_to_client) {}
        const bool from_client;
        const session::EventKind kind;
        const session::Direction dir;
        Bytes buf;
        std::size_t len = 0;
        std::size_t need = 0;  ///< size of the partial message at the front, once its header is in
        /// A message larger than whole_max_: relayed and recorded piece by piece as it arrives.
        struct Large {
            bool active = false;
            char type = 0;
            std::size_t size = 0;  ///< the whole message on the wire
            std::size_t done = 0;  ///< relayed so far
            std::size_t keep = 0;  ///< bytes of it the recording gets
            std::size_t kept = 0;
            bool summarize = true; ///< pg_large_end at its end (false: a row beyond record_rows, left out)
            bool redacted = false; ///< a Bind whose values are redacted: no bytes, no hash
            bool copy = false;     ///< CopyData: its body counts for the COPY summary
            crypto::Sha256 sha;
        } large;
        /// The CopyData messages since the last other message of this direction (one COPY).
        struct Copy {
            bool active = false;
            std::uint64_t messages = 0;
            std::uint64_t bytes = 0;     ///< payload bytes (message bodies)
            std::uint64_t recorded = 0;  ///< messages recorded (whole, or up to the value cap)
            crypto::Sha256 sha;          ///< of the payloads, in order: the COPY data as a file holds it
        } copy;
        long rows = 0;  ///< DataRows of the current statement (backend)
    };
    /// What the recording gets of one message (decide() also tracks the session state it shows).
    struct Decision {
        bool record = true;
        std::optional<Bytes> replacement;  ///< recorded instead (redacted Bind)
        std::string note;                  ///< an annotation: before the message, or instead of it
        bool note_before = false;
        const char* copy_end = nullptr;    ///< the COPY data before this message ended: "done", "fail", "error"
        bool refuse = false;               ///< COPY BOTH: end the session
        bool redacted = false;             ///< (large Bind) its values are redacted
    };
    asio::awaitable<void> pump(Flow& f, Conn& backend);
    Decision decide(Flow& f, char type, ByteView msg, bool whole);
    asio::awaitable<bool> flush_run(Flow& f, std::size_t& run, std::size_t upto);
    asio::awaitable<bool> stream_large(Flow& f, ByteView chunk);
    /// The pg_copy summary of f's COPY data (resets it).
    std::string copy_summary(Flow& f, std::string_view end);
    /// Records one event, waiting for room in the recording buffer first; false (the session is ended
    /// with a FATAL to the client) when recording failed.
    asio::awaitable<bool> put(session::EventKind kind, session::Direction dir, ByteView payload);
    asio::awaitable<bool> note(const std::string& text) {
        co_return co_await put(session::EventKind::annotation, session::Direction::none, as_bytes(text));
    }
    asio::awaitable<void> recording_failed();

    bool record(session::EventKind kind, session::Direction dir, ByteView payload) {
        if (!scope_.opened()) return true;
        if (scope_.record(kind, dir, payload)) return true;
        end(CloseReason::recording_failed, "recording failed: " + scope_.recording_failure());
        return false;
    }
    spdlog::logger& log() { return scope_.log(); }
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
    // The relay (see pump()).
    Flow c2s_flow_{true};
    Flow s2c_flow_{false};
    int record_rows_ = 100;
    bool record_copy_full_ = false;
    std::size_t value_cap_ = 64 * 1024;   ///< the target's record_value_bytes (no cap: SIZE_MAX)
    std::size_t whole_max_ = 64 * 1024;   ///< larger messages are relayed in pieces
    bool client_mid_message_ = false;     ///< part of a message went to the client, the rest has not
    bool backend_mid_message_ = false;    ///< the same towards the backend

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
        // The client gets the backend's real pid (as without a proxy) and a key of glassgate's own.
        const std::int32_t pid = br.session->pid;
        const std::uint32_t key = svc_->cancels.add({br.session->endpoint, br.session->pid, br.session->key, scope_.id()});
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
        svc_->cancels.remove(pid, key);
        backend_ = nullptr;
        if (keep_backend_ && !svc_->stopping) {
            (void)co_await note("the backend connection is kept for a later session (reset with DISCARD ALL first)");
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

std::string ClientSession::copy_summary(Flow& f, std::string_view end) {
    const auto digest = f.copy.sha.finish();
    boost::json::object j{{"direction", f.from_client ? "in" : "out"},
                          {"messages", f.copy.messages},
                          {"bytes", f.copy.bytes},
                          {"recorded_messages", f.copy.recorded},
                          {"sha256", to_hex(ByteView(digest.data(), digest.size()))},
                          {"end", end}};
    f.copy = {};
    return boost::json::serialize(j);
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
    const bool full = why.find(std::error_code(ENOSPC, std::generic_category()).message()) != std::string::npos ||
                      why.find(std::error_code(EDQUOT, std::generic_category()).message()) != std::string::npos;
    const std::string cause = why.substr(why.rfind(": ") == std::string::npos ? 0 : why.rfind(": ") + 2);
    co_await fatal(full ? "53100" : "58030",
                   full ? "glassgate: the recording storage is full, so this session is ended"
                        : "glassgate: recording this session failed, so it is ended",
                   "nothing is relayed unrecorded (" + cause + ")");
    end(CloseReason::recording_failed, "recording failed: " + why);
}

ClientSession::Decision ClientSession::decide(Flow& f, char type, ByteView msg, bool whole) {
    Decision d;
    if (f.copy.active && type != 'd') d.copy_end = type == 'c' ? "done" : type == 'f' ? "fail" : "error";
    if (type == 'd') {
        if (!f.copy.active) f.copy.active = true;
        ++f.copy.messages;
        d.record = record_copy_full_ || record_rows_ < 0 || f.copy.messages <= static_cast<std::uint64_t>(record_rows_);
        if (d.record) ++f.copy.recorded;
        return d;
    }
    if (f.from_client) {
        switch (type) {
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
            default: break;
        }
        if (!redact_all_ && redact_for_.empty()) return d;
        if (whole) {
            Bytes replacement;
            switch (redact(type, msg, replacement)) {
                case Redaction::as_is: break;
                case Redaction::replaced: d.replacement = std::move(replacement); break;
                case Redaction::dropped:
                    d.record = false;
                    d.note = "a Bind message that could not be parsed was not recorded (redact_params)";
                    break;
            }
            return d;
        }
        // Only the start of a large message is at hand: its names decide, and what cannot be read is
        // treated as redacted (fail closed).
        const ByteView body = msg.subspan(5);
        auto cstring = [&](std::size_t from) -> std::optional<std::pair<std::string, std::size_t>> {
            for (std::size_t i = from; i < body.size(); ++i) {
                if (body[i] == std::byte{0}) return std::pair{std::string(as_chars(body.subspan(from, i - from))), i + 1};
            }
            return std::nullopt;
        };
        if (type == 'P' && !redact_for_.empty()) {
            // Its text is too large to match here: its Binds are redacted.
            if (auto name = cstring(0)) redacted_statements_[name->first] = true;
            else redact_all_ = true;
        } else if (type == 'B') {
            bool redacted = redact_all_;
            if (!redacted) {
                auto portal = cstring(0);
                auto stmt = portal ? cstring(portal->second) : std::nullopt;
                auto it = stmt ? redacted_statements_.find(stmt->first) : redacted_statements_.end();
                redacted = !stmt || (it != redacted_statements_.end() && it->second);
            }
            d.redacted = redacted;
        }
        return d;
    }
    switch (type) {
        case 'D':
            ++f.rows;
            d.record = record_rows_ < 0 || f.rows <= record_rows_;
            break;
        case 'C':
        case 'E':
        case 'Z':
        case 'I':
        case 's':
            if (type == 'Z') {
                if (outstanding_ > 0) --outstanding_;
                if (whole && msg.size() == 6) backend_status_ = static_cast<char>(msg[5]);
            }
            if (record_rows_ >= 0 && f.rows > record_rows_) {
                d.note = std::to_string(f.rows - record_rows_) + " more row(s) not recorded (record_rows = " +
                         std::to_string(record_rows_) + ")";
                d.note_before = true;
            }
            f.rows = 0;
            break;
        case 'S':
            if (whole && poolable_ && backend_session_) {
                // A kept connection's parameters are what the next client is told at its start.
                if (auto ps = pg::parse_parameter_status(msg.subspan(5))) apply_parameter_status(*backend_session_, std::move(*ps));
            }
            break;
        case 'W': d.refuse = true; break;
        default: break;
    }
    return d;
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
            // Named, not a braced temporary inside co_await (GCC 12 destroys those twice: PR 101367).
            const auto notice = pg::notice_response({pg::Severity::warning, "01000", text, {}, {}});
            if (!co_await send_own(notice)) {
                // The client is in the middle of a large message: try again in a moment.
                if (ended_) co_return;
                watchdog_.expires_after(20ms);
                (void)co_await watchdog_.async_wait(use_tuple);
                continue;
            }
            ++next_warning;
            if (!co_await note("time-cap warning sent: " + text)) co_return;
            continue;
        }
        if (deadline && now >= *deadline) {
            if (!co_await note("time cap reached: session ended")) co_return;
            const std::string detail = cap_source_ + ": sessions of at most " + config::format_duration(*cap_);
            co_await fatal("57P01", "session time limit reached", detail);
            const auto x = pg::terminate();
            if (!backend_lock_.try_lock()) co_await backend_lock_.lock();
            if (!backend_mid_message_) (void)co_await backend.write(asio::buffer(x));
            backend_lock_.unlock();
            end(CloseReason::time_cap, "session time limit (" + config::format_duration(*cap_) + ") reached");
            co_return;
        }
        if (target.idle_timeout && now >= last_activity_ + *target.idle_timeout) {
            if (!co_await note("idle timeout: session ended")) co_return;
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
