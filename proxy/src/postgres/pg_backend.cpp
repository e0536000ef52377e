#include "pg_backend.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/this_coro.hpp>

#include <openssl/ssl.h>

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

    tcp::resolver resolver(ex);
    auto [rec, eps] = co_await resolver.async_resolve(target.address.host, std::to_string(target.address.port), use_tuple);
    if (rec) co_return fail("resolve: " + rec.message(), "the database server could not be reached");

    // TLS context for this connection (verification only when a CA file is configured).
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    if (target.ca_file) {
        boost::system::error_code cec;
        ctx->load_verify_file(target.ca_file->string(), cec);
        if (cec) co_return fail("cannot load CA file " + target.ca_file->string() + ": " + cec.message(), "glassgate is misconfigured for this target");
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }

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
            if (!SSL_set_tlsext_host_name(conn->tls_stream().native_handle(), target.address.host.c_str())) {
                co_return fail("cannot set TLS server name", "the database server could not be reached");
            }
            if (target.ca_file) conn->tls_stream().set_verify_callback(asio::ssl::host_name_verification(target.address.host));
            auto [hec] = co_await conn->tls_stream().async_handshake(asio::ssl::stream_base::client, use_tuple);
            if (hec) co_return fail("TLS handshake: " + hec.message(), "the database server's TLS could not be verified");
            conn->set_tls();
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
                scram.emplace(secret.reveal(), pg::scram_client_nonce());
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

}  // namespace gg::proxy::postgres
