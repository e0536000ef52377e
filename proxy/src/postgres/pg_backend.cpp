#include "pg_backend.hpp"

#include "glassgate/proxy/lifecycle/descriptor_budget.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/protocols/postgres/scram.hpp"

namespace gg::proxy::postgres {
namespace {

struct Fail {
    std::string error;
    std::string client;
};

/// Reads whole messages from the backend, with a deadline enforced by closing the socket.
class MessageReader {
public:
    MessageReader(Conn& c, asio::steady_timer& deadline) : conn_(c), deadline_(deadline) {}

    /// The next message (copied), or an error text.
    asio::awaitable<std::variant<std::pair<char, Bytes>, std::string>> next() {
        for (;;) {
            auto d = pg::decode_message(ByteView(buf_).first(len_));
            if (!d) co_return "malformed message from the server: " + d.error().reason;
            if (auto* m = std::get_if<pg::MessageDecoded>(&*d)) {
                std::pair<char, Bytes> out{m->message.type, Bytes(m->message.body.begin(), m->message.body.end())};
                std::memmove(buf_.data(), buf_.data() + m->consumed, len_ - m->consumed);
                len_ -= m->consumed;
                co_return out;
            }
            const auto need = std::get<pg::NeedMore>(*d).at_least;
            if (buf_.size() < std::max<std::size_t>(need, len_ + 4096)) buf_.resize(std::max<std::size_t>(need, len_ + 16384));
            auto [ec, n] = co_await conn_.read_some(asio::buffer(buf_.data() + len_, buf_.size() - len_));
            if (ec) co_return std::string(deadline_.expiry() <= std::chrono::steady_clock::now() ? "timed out" : ec.message());
            len_ += n;
        }
    }
    Bytes rest() { return Bytes(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(len_)); }

private:
    Conn& conn_;
    asio::steady_timer& deadline_;
    Bytes buf_;
    std::size_t len_ = 0;
};

std::string server_error_text(const Bytes& body) {
    auto f = pg::parse_error_fields(body);
    if (!f) return "unreadable error response";
    return f->sqlstate + " " + f->message + (f->detail.empty() ? "" : " (" + f->detail + ")");
}

/// SCRAM keys per target, keyed on a digest of the secret they were derived from: the next connection
/// with the same secret and the same server verifier (salt, iterations) skips PBKDF2 (~2 ms of CPU each).
/// A changed secret or verifier (rotation) misses and derives again. Process memory only.
class ScramKeyCache {
public:
    std::optional<pg::ScramKeys> find(const std::string& target, const crypto::Digest& secret_digest) {
        std::lock_guard lk(mu_);
        auto it = entries_.find(target);
        if (it == entries_.end() || !crypto::constant_time_equal(it->second.first, secret_digest)) return std::nullopt;
        return it->second.second;
    }
    void store(const std::string& target, const crypto::Digest& secret_digest, const pg::ScramKeys& keys) {
        std::lock_guard lk(mu_);
        entries_[target] = {secret_digest, keys};
    }

private:
    std::mutex mu_;
    std::map<std::string, std::pair<crypto::Digest, pg::ScramKeys>> entries_;
};
ScramKeyCache& scram_keys() {
    static ScramKeyCache cache;
    return cache;
}

/// One TLS client context per target (OpenSSL's context setup costs more than a handshake's share),
/// made again when the target's CA file changes, so a replaced CA file is used without a restart.
std::shared_ptr<asio::ssl::context> backend_tls_context(const config::Target& target, std::string& error) {
    static std::mutex mu;
    struct Entry {
        std::filesystem::file_time_type ca_mtime;
        std::shared_ptr<asio::ssl::context> ctx;
    };
    static std::map<std::string, Entry> contexts;
    std::filesystem::file_time_type mtime{};
    if (target.ca_file) {
        std::error_code ec;
        mtime = std::filesystem::last_write_time(*target.ca_file, ec);
    }
    std::lock_guard lk(mu);
    if (auto it = contexts.find(target.name); it != contexts.end() && it->second.ca_mtime == mtime) return it->second.ctx;
    // Verification only when a CA file is configured.
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    if (target.ca_file) {
        boost::system::error_code cec;
        ctx->load_verify_file(target.ca_file->string(), cec);
        if (cec) {
            error = "cannot load CA file " + target.ca_file->string() + ": " + cec.message();
            return nullptr;
        }
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    contexts[target.name] = Entry{mtime, ctx};
    return ctx;
}

}  // namespace

asio::awaitable<BackendResult> connect_backend(const config::Target& target, const Secret& secret,
                                               const std::string& database,
                                               const std::vector<std::pair<std::string, std::string>>& params,
                                               std::chrono::milliseconds timeout) {
    BackendResult out;
    auto ex = co_await asio::this_coro::executor;
    const std::string where = "backend " + target.address.to_string() + " (target " + target.name + ")";
    auto fail = [&](std::string error, std::string client) {
        out.session.reset();
        out.error = where + ": " + std::move(error);
        out.client_error = std::move(client);
        return std::move(out);
    };

    // A numeric address needs no resolver (whose lookups run on a thread of their own).
    tcp::resolver::results_type eps;
    boost::system::error_code aec;
    const auto numeric = asio::ip::make_address(target.address.host, aec);
    if (!aec) {
        eps = tcp::resolver::results_type::create(tcp::endpoint(numeric, target.address.port), target.address.host,
                                                  std::to_string(target.address.port));
    } else {
        tcp::resolver resolver(ex);
        auto [rec, found] = co_await resolver.async_resolve(target.address.host, std::to_string(target.address.port), use_tuple);
        if (rec) co_return fail("resolve: " + rec.message(), "the database server could not be reached");
        eps = std::move(found);
    }

    std::string ctx_error;
    auto ctx = backend_tls_context(target, ctx_error);
    if (!ctx) co_return fail(ctx_error, "glassgate is misconfigured for this target");

    tcp::socket sock(ex);
    asio::steady_timer deadline(ex);
    deadline.expires_after(timeout);
    bool timed_out = false;
    deadline.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) {
            timed_out = true;
            boost::system::error_code ig;
            sock.close(ig);
        }
    });
    auto [cec, ep] = co_await asio::async_connect(sock, eps, use_tuple);
    if (cec) {
        deadline.cancel();
        if (!timed_out && is_descriptor_exhaustion(cec.value())) {
            // A local shortage, not the backend: say so (the log line names the limit's cause too).
            out.sqlstate = "53300";
            co_return fail("connect: " + cec.message() + " (glassgate's open-file limit is used up)",
                           "glassgate has no file descriptor left for the backend connection (open-file limit); try again later");
        }
        co_return fail("connect: " + std::string(timed_out ? "timed out" : cec.message()), "the database server could not be reached");
    }
    out.session.emplace();
    out.session->endpoint = ep;
    boost::system::error_code ig;
    sock.set_option(tcp::no_delay(true), ig);
    auto conn = std::make_unique<Conn>(std::move(sock), ctx);
    // From here the deadline closes the Conn's socket.
    deadline.cancel();
    deadline.expires_after(timeout);
    Conn* cp = conn.get();
    deadline.async_wait([cp, &timed_out](const boost::system::error_code& ec) {
        if (!ec) {
            timed_out = true;
            cp->close();
        }
    });
    struct CancelOnExit {
        asio::steady_timer& t;
        ~CancelOnExit() { t.cancel(); }
    } cancel_on_exit{deadline};

    if (target.tls != config::BackendTls::disable) {
        auto req = pg::ssl_request();
        if (auto ec = co_await conn->write(asio::buffer(req))) co_return fail("SSLRequest: " + ec.message(), "the database server could not be reached");
        char answer = 0;
        auto [ec, n] = co_await conn->read_some(asio::buffer(&answer, 1));
        if (ec || n != 1) co_return fail("SSLRequest answer: " + (timed_out ? std::string("timed out") : ec.message()), "the database server could not be reached");
        if (answer == 'S') {
            SSL* ssl = conn->ssl();
            if (!ssl) co_return fail("cannot create a TLS session", "the database server could not be reached");
            const bool is_ip = !aec;  // no SNI for an IP address (RFC 6066)
            if (!is_ip && !SSL_set_tlsext_host_name(ssl, target.address.host.c_str())) {
                co_return fail("cannot set TLS server name", "the database server could not be reached");
            }
            if (target.ca_file) {
                // The certificate must name the target's host (DNS name or IP address).
                X509_VERIFY_PARAM* vp = SSL_get0_param(ssl);
                const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, target.address.host.c_str())
                                       : X509_VERIFY_PARAM_set1_host(vp, target.address.host.c_str(), 0);
                if (ok != 1) co_return fail("cannot set the TLS host name to verify", "the database server could not be reached");
            }
            const auto herr = co_await conn->handshake(false);
            if (!herr.empty()) co_return fail("TLS handshake: " + herr, "the database server's TLS could not be verified");
        } else if (answer == 'N') {
            if (target.tls == config::BackendTls::require) {
                co_return fail("the server does not offer TLS but the target requires it (tls = \"require\")",
                               "the database server does not offer TLS");
            }
        } else {
            co_return fail("unexpected answer to SSLRequest", "the database server answered unexpectedly");
        }
    }

    std::vector<std::pair<std::string, std::string>> startup = {{"user", target.backend_user}, {"database", database}};
    for (const auto& p : params) startup.push_back(p);
    auto sm = pg::startup_message(startup);
    if (auto ec = co_await conn->write(asio::buffer(sm))) co_return fail("startup: " + ec.message(), "the database server could not be reached");

    MessageReader reader(*conn, deadline);
    std::optional<pg::ScramKeys> cached_keys;  // outlives `scram`, which points at it
    crypto::Digest secret_digest{};
    std::optional<pg::ScramClient> scram;
    for (;;) {
        auto next = co_await reader.next();
        if (auto* e = std::get_if<std::string>(&next)) co_return fail(*e, "the database server did not complete the sign-in");
        auto& [type, body] = std::get<std::pair<char, Bytes>>(next);
        if (type == 'E') {
            auto f = pg::parse_error_fields(body);
            out.sqlstate = f ? f->sqlstate : "08006";
            co_return fail("refused the connection: " + server_error_text(body),
                           f && f->sqlstate == "3D000" ? "database \"" + database + "\" does not exist"
                                                        : "the database server refused glassgate's credential");
        }
        if (type == 'N') continue;
        if (type == 'R') {
            auto a = pg::parse_authentication(body);
            if (!a) co_return fail("bad authentication request: " + a.error().reason, "the database server answered unexpectedly");
            Bytes reply;
            if (a->code == 0) break;
            if (a->code == 3) {
                reply = pg::password_message(secret.reveal());
            } else if (a->code == 5) {
                reply = pg::password_message(pg::md5_password(target.backend_user, secret.reveal(), a->md5_salt));
            } else if (a->code == 10) {
                if (std::find(a->mechanisms.begin(), a->mechanisms.end(), "SCRAM-SHA-256") == a->mechanisms.end()) {
                    co_return fail("no supported SASL mechanism offered", "the database server's authentication is not supported");
                }
                secret_digest = crypto::sha256(as_bytes(secret.reveal()));
                cached_keys = scram_keys().find(target.name, secret_digest);
                scram.emplace(secret.reveal(), pg::scram_client_nonce(), cached_keys ? &*cached_keys : nullptr);
                reply = pg::sasl_initial_response("SCRAM-SHA-256", scram->client_first());
            } else if (a->code == 11) {
                if (!scram) co_return fail("SASL continue without SASL", "the database server answered unexpectedly");
                auto cf = scram->on_server_first(as_chars(a->data));
                if (!cf) co_return fail(cf.error().reason, "the database server's authentication failed");
                reply = pg::sasl_response(*cf);
            } else if (a->code == 12) {
                if (!scram) co_return fail("SASL final without SASL", "the database server answered unexpectedly");
                auto fin = scram->on_server_final(as_chars(a->data));
                if (!fin) co_return fail(fin.error().reason, "the database server could not prove its identity");
                // Only keys the server has just accepted (and proved it knows) are kept.
                if (!scram->used_cached_keys()) scram_keys().store(target.name, secret_digest, scram->keys());
                continue;
            } else {
                co_return fail("unsupported authentication method " + std::to_string(a->code), "the database server's authentication is not supported");
            }
            if (auto ec = co_await conn->write(asio::buffer(reply))) co_return fail("auth: " + ec.message(), "the database server could not be reached");
            continue;
        }
        co_return fail(std::string("unexpected message '") + type + "' during authentication", "the database server answered unexpectedly");
    }
    // Authenticated: collect parameters and the cancel key until ReadyForQuery.
    for (;;) {
        auto next = co_await reader.next();
        if (auto* e = std::get_if<std::string>(&next)) co_return fail(*e, "the database server did not complete the sign-in");
        auto& [type, body] = std::get<std::pair<char, Bytes>>(next);
        if (type == 'S') {
            auto ps = pg::parse_parameter_status(body);
            if (ps) out.session->parameters.push_back(*ps);
        } else if (type == 'K') {
            auto k = pg::parse_backend_key_data(body);
            if (k) {
                out.session->pid = k->pid;
                out.session->key = k->key;
            }
        } else if (type == 'Z') {
            break;
        } else if (type == 'E') {
            co_return fail("error after authentication: " + server_error_text(body), "the database server refused the session");
        }
    }
    out.session->pending = reader.rest();
    out.session->conn = std::move(conn);
    co_return std::move(out);
}

void apply_parameter_status(BackendSession& session, std::pair<std::string, std::string> p) {
    for (auto& [k, v] : session.parameters) {
        if (k == p.first) {
            v = std::move(p.second);
            return;
        }
    }
    session.parameters.push_back(std::move(p));
}

namespace {

asio::awaitable<std::string> reset_steps(BackendSession& s, asio::steady_timer& deadline) {
    s.pending.clear();  // what the server sent the previous session is that session's
    const auto q = pg::query("DISCARD ALL");
    if (auto ec = co_await s.conn->write(asio::buffer(q))) co_return "sending DISCARD ALL: " + ec.message();
    MessageReader reader(*s.conn, deadline);
    for (;;) {
        auto next = co_await reader.next();
        if (auto* e = std::get_if<std::string>(&next)) co_return "waiting for DISCARD ALL: " + *e;
        auto& [type, body] = std::get<std::pair<char, Bytes>>(next);
        switch (type) {
            case 'S':
                if (auto ps = pg::parse_parameter_status(body)) apply_parameter_status(s, std::move(*ps));
                break;
            case 'C':
            case 'N':
            case 'A': break;  // the tag; notices and notifications of the previous session are dropped
            case 'E': co_return "DISCARD ALL failed: " + server_error_text(body);
            case 'Z':
                if (body.size() != 1 || body[0] != std::byte{'I'}) co_return "the server is not idle after DISCARD ALL";
                if (!reader.rest().empty()) co_return "the server sent more than the answer to DISCARD ALL";
                co_return std::string();
            default: co_return std::string("unexpected message '") + type + "' in answer to DISCARD ALL";
        }
    }
}

}  // namespace

asio::awaitable<std::string> reset_backend(BackendSession& session, std::chrono::milliseconds timeout) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer deadline(co_await asio::this_coro::executor);
    deadline.expires_after(timeout);
    auto r = co_await (reset_steps(session, deadline) || deadline.async_wait(use_tuple));
    if (r.index() == 1) co_return "no answer to DISCARD ALL within " + std::to_string(timeout.count()) + " ms";
    co_return std::get<0>(std::move(r));
}

namespace {

/// Ends a parked connection politely: Terminate if the socket takes it at once, then close.
void retire(Conn& conn) {
    boost::system::error_code ec;
    const auto x = pg::terminate();
    (void)conn.write_now(asio::buffer(x), ec);
    conn.close();
}

}  // namespace

BackendPool::~BackendPool() { stop(); }

std::string BackendPool::key(const config::Target& target, const std::string& database, const Secret& secret,
                             const Params& params) {
    // Length-prefixed fields: no value can be mistaken for a separator.
    std::string k;
    auto add = [&k](std::string_view f) {
        k += std::to_string(f.size());
        k += ':';
        k += f;
    };
    add(target.name);
    add(target.address.to_string());
    add(target.backend_user);
    add(database);
    const auto digest = crypto::sha256(as_bytes(secret.reveal()));
    add(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
    for (const auto& [n, v] : params) {
        add(n);
        add(v);
    }
    return k;
}

std::optional<BackendSession> BackendPool::take(const std::string& key) {
    std::list<Entry> dead;
    std::optional<BackendSession> out;
    {
        std::lock_guard lk(mu_);
        for (auto it = entries_.begin(); it != entries_.end();) {
            if (it->key != key) {
                ++it;
                continue;
            }
            auto next = std::next(it);
            const std::string target = it->target;
            if (it->session.conn->idle()) {
                out = std::move(it->session);
                entries_.erase(it);
                count_locked(target);
                break;
            }
            dead.splice(dead.end(), entries_, it);  // closed by the server, or it wrote while idle
            count_locked(target);
            it = next;
        }
    }
    for (auto& e : dead) e.session.conn->close();
    return out;
}

bool BackendPool::put(const std::string& key, BackendSession session, const config::Target& target) {
    std::lock_guard lk(mu_);
    std::size_t parked = 0;
    for (const auto& e : entries_) parked += e.target == target.name ? 1 : 0;
    if (stopped_ || parked >= static_cast<std::size_t>(std::max(target.pool_size, 0))) {
        retire(*session.conn);
        return false;
    }
    if (!sweeper_) sweeper_.emplace(session.conn->socket().get_executor());
    entries_.push_front(Entry{key, target.name, std::move(session), std::chrono::steady_clock::now() + target.pool_idle});
    count_locked(target.name);
    arm_locked();
    return true;
}

void BackendPool::arm_locked() {
    if (entries_.empty() || !sweeper_) return;
    auto earliest = entries_.front().expires;
    for (const auto& e : entries_) earliest = std::min(earliest, e.expires);
    if (armed_ && sweeper_->expiry() <= earliest) return;
    sweeper_->expires_at(earliest);  // cancels a later wait, whose handler then only clears armed_
    armed_ = true;
    sweeper_->async_wait([this](const boost::system::error_code& ec) { on_sweep(ec); });
}

void BackendPool::on_sweep(const boost::system::error_code& ec) {
    std::list<Entry> expired;
    {
        std::lock_guard lk(mu_);
        if (ec) return;  // re-armed earlier, or stopped
        armed_ = false;
        const auto now = std::chrono::steady_clock::now();
        for (auto it = entries_.begin(); it != entries_.end();) {
            auto next = std::next(it);
            if (it->expires <= now) expired.splice(expired.end(), entries_, it);
            it = next;
        }
        for (const auto& e : expired) count_locked(e.target);
        arm_locked();
    }
    for (auto& e : expired) retire(*e.session.conn);
}

void BackendPool::stop() {
    std::list<Entry> all;
    {
        std::lock_guard lk(mu_);
        stopped_ = true;
        all.swap(entries_);
        if (sweeper_) sweeper_->cancel();
        armed_ = false;
        for (const auto& e : all) count_locked(e.target);
    }
    for (auto& e : all) retire(*e.session.conn);
}

void BackendPool::count_locked(const std::string& target) {
    if (!metrics_) return;
    const auto n = std::count_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.target == target; });
    metrics_->set("glassgate_postgres_pool_idle", {{"target", target}}, static_cast<double>(n));
}

}  // namespace gg::proxy::postgres
