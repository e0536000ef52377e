// The start and the end of a client connection: run() as a sequence of steps, the startup
// negotiation (decided by pg::StartupNegotiation, carried out here), the session's opening, and the
// one exit every connection takes.

#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>

#include "client_session.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/proxy/ops/logging.hpp"

namespace gg::proxy::postgres {
namespace {

session::TimePoint now_tp() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::string describe_peer(const tcp::socket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
}

/// The context of a connection that is never upgraded (no [tls]).
std::shared_ptr<asio::ssl::context> plain_ctx() {
    static auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    return ctx;
}

/// The ALPN protocol the TLS handshake selected (empty: none).
std::string_view selected_alpn(Conn& c) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(c.ssl(), &alpn, &alpn_len);
    return {reinterpret_cast<const char*>(alpn), alpn_len};
}

}  // namespace

ClientSession::ClientSession(tcp::socket sock, std::shared_ptr<Services> svc)
    : svc_(std::move(svc)),
      ex_(sock.get_executor()),
      client_(std::move(sock), svc_->client_tls ? svc_->client_tls : plain_ctx()),
      client_lock_(ex_),
      backend_lock_(ex_),
      watchdog_(ex_),
      peer_(describe_peer(client_.socket())),
      scope_(SessionDeps{svc_->store, svc_->recordings, svc_->metrics, svc_->active_sessions, *svc_->blocking,
                          svc_->cfg.server.instance, svc_->shipper},
             session::Protocol::postgres, peer_) {
    boost::system::error_code ec;
    client_.socket().set_option(tcp::no_delay(true), ec);
}

asio::awaitable<void> ClientSession::run() {
    svc_->metrics.inc("glassgate_connections_total", {{"protocol", "postgres"}});
    arm_pre_auth_deadline();
    Step refusal = co_await negotiate();
    if (!refusal) refusal = check_storage();
    if (!refusal) refusal = co_await authenticate();
    if (!refusal) refusal = open_session();
    if (!refusal) refusal = co_await open_backend();
    if (!refusal) co_await serve();
    co_await finish(refusal);
}

asio::awaitable<void> ClientSession::finish(const Step& refusal) {
    watchdog_.cancel();
    if (refusal) {
        if (!refusal->denied.empty()) {
            spdlog::warn("postgres {}: {} (user={}, target={})", peer_, refusal->denied,
                         identity_.empty() ? user_ : identity_, target_name_);
            audit("auth.denied", "denied", refusal->denied, {{"user", user_}});
        }
        if (!refusal->sqlstate.empty()) co_await fatal(refusal->sqlstate, refusal->message);
    }
    client_.close();
    // Seal the recording (off the io thread), index, audit, metrics; nothing if it never opened.
    co_await scope_.close(reason_, detail_, c2s_, s2c_);
    // Break-glass: the account is used now (a new stage is needed), rotation queued if the rule says
    // so. A credential consumed before the recording could be opened stays consumed.
    if (grant_) svc_->breakglass->session_closed(*grant_, session::to_string(scope_.close_reason()), now_tp());
}

asio::awaitable<ClientSession::Step> ClientSession::negotiate() {
    const auto& cfg = svc_->cfg;
    pg::StartupNegotiation startup({.tls_configured = svc_->client_tls != nullptr,
                                    .plaintext_allowed = cfg.listen.allow_plaintext},
                                   [&cfg](std::string_view name) -> std::optional<pg::RouteTarget> {
                                       const auto* t = cfg.find_target(name);
                                       if (!t || t->protocol != config::Protocol::postgres) return std::nullopt;
                                       return pg::RouteTarget{t->database, t->databases};
                                   });
    for (;;) {
        const ByteView input(buf_.data(), len_);
        auto step = startup.next(input);
        if (const auto* more = std::get_if<pg::ReadMore>(&step.action)) {
            if (!co_await fill(more->at_least)) co_return Refusal{};
            continue;
        }
        if (const auto* tls = std::get_if<pg::StartTls>(&step.action)) {
            std::string herr;
            if (tls->answer_s) {
                consume(step.consumed);
                const char s = 'S';
                if (co_await client_.write(asio::buffer(&s, 1))) co_return Refusal{};
                herr = co_await client_.handshake(true);
            } else {
                // Direct TLS: the bytes read so far are the start of the client's handshake.
                const ByteView early = input.first(step.consumed);
                herr = co_await client_.handshake(true, early);
                consume(step.consumed);
            }
            if (!herr.empty()) {
                spdlog::info("postgres {}: TLS handshake failed: {}", peer_, herr);
                co_return Refusal{};
            }
            startup.tls_started(selected_alpn(client_));
            continue;
        }
        consume(step.consumed);
        if (const auto* answer = std::get_if<pg::Answer>(&step.action)) {
            const char byte = answer->byte;
            (void)co_await client_.write(asio::buffer(&byte, 1));
            continue;
        }
        if (const auto* cancel = std::get_if<pg::ForwardCancel>(&step.action)) {
            co_await forward_cancel(*svc_, peer_, cancel->pid, cancel->key);
            co_return Refusal{};
        }
        if (const auto* end = std::get_if<pg::Disconnect>(&step.action)) {
            if (!end->log_reason.empty()) spdlog::warn("postgres {}: {}", peer_, end->log_reason);
            co_return Refusal{end->sqlstate, end->message, {}};
        }
        if (auto* deny = std::get_if<pg::Deny>(&step.action)) {
            user_ = std::move(deny->user);
            target_name_ = std::move(deny->target);
            co_return Refusal{std::move(deny->sqlstate), std::move(deny->message), std::move(deny->log_reason)};
        }
        auto& login = std::get<pg::Proceed>(step.action);
        user_ = std::move(login.user);
        target_name_ = std::move(login.target);
        target_ = cfg.find_target(target_name_);
        database_ = std::move(login.database);
        login_reason_ = std::move(login.reason);
        forward_ = std::move(login.forward);
        co_return std::nullopt;
    }
}

ClientSession::Step ClientSession::check_storage() {
    // Before any credential is looked at: a refusal here consumes nothing. Never relay unrecorded.
    if (svc_->descriptors) {
        if (const auto why = svc_->descriptors->refusal("postgres")) {
            spdlog::warn("postgres {}: new session refused (user={}, target={}): {}", peer_, user_, target_name_, *why);
            return Refusal{"53300", svc_->descriptors->user_message(), {}};
        }
    }
    if (!svc_->storage) return std::nullopt;
    const auto why = svc_->storage->refusal("postgres");
    if (!why) return std::nullopt;
    spdlog::warn("postgres {}: new session refused (user={}, target={}): {}", peer_, user_, target_name_, why->why);
    return Refusal{why->sqlstate, why->user_message, {}};
}

ClientSession::Step ClientSession::open_session() {
    // The session: index row, recording first (fail closed), audit.
    last_activity_ = std::chrono::steady_clock::now();
    SessionScope::Open open{.identity = identity_,
                            .method = grant_ ? session::AuthMethod::breakglass : session::AuthMethod::sso,
                            .auth_detail = auth_method_,
                            .target = target_name_,
                            .cap = std::nullopt,
                            .reason = grant_ ? grant_->reason : std::string(),
                            .extra = {{"database", database_}, {"user", user_}},
                            .audit_details = {{"database", database_}}};
    if (limits_.cap) {
        open.cap = std::chrono::duration_cast<std::chrono::microseconds>(*limits_.cap);
        open.audit_details["max_session"] = config::format_duration(*limits_.cap);
    }
    if (grant_) {
        open.extra["rule"] = grant_->rule_name;
        open.audit_details["rule"] = grant_->rule_name;
    }
    if (!scope_.open(open)) return Refusal{"58030", "glassgate cannot record this session, so it is refused", {}};
    log().info("postgres session: {} ({}) -> {} database {} from {}{}", identity_, auth_method_, target_name_, database_,
               peer_, grant_ ? " [break-glass, reason \"" + grant_->reason + "\"]" : std::string());
    return std::nullopt;
}

asio::awaitable<bool> ClientSession::fill(std::size_t at_least) {
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

void ClientSession::consume(std::size_t n) {
    if (n == 0) return;
    std::memmove(buf_.data(), buf_.data() + n, len_ - n);
    len_ -= n;
}

}  // namespace gg::proxy::postgres
