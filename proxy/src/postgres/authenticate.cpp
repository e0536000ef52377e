// Authentication of a PostgreSQL client: a cleartext password carrying an SSO token, the word `sso`
// for an in-band device-code sign-in, or, for an emergency account, a break-glass passphrase.

#include <cctype>
#include <functional>

#include "client_session.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/session/policy.hpp"

namespace gg::proxy::postgres {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

/// A refused login: logged and audited as auth.denied with `reason`, FATAL `sqlstate` `message`.
Refusal denied(std::string sqlstate, std::string message, std::string reason) {
    return Refusal{std::move(sqlstate), std::move(message), std::move(reason)};
}

}  // namespace

asio::awaitable<ClientSession::Step> ClientSession::authenticate() {
    const auto ask = pg::authentication_cleartext_password();
    co_await send(ask);
    std::string password;
    if (auto refusal = co_await read_password(password)) co_return refusal;
    (void)scope_.reserve_id();  // break-glass consumes an account for it
    limits_ = {.cap = target_->max_session,
               .warn_before = target_->warn_before.value_or(std::chrono::minutes(5)),
               .idle_timeout = target_->idle_timeout};
    cap_source_ = "time limit of target \"" + target_->name + "\"";
    if (svc_->breakglass && svc_->breakglass->is_account(user_)) co_return co_await authenticate_breakglass(password);
    co_return co_await authenticate_sso(password);
}

asio::awaitable<ClientSession::Step> ClientSession::read_password(std::string& out) {
    // PostgreSQL's own bound for a password packet (PG_MAX_AUTH_TOKEN_LENGTH): before authentication
    // nobody gets a 64 MiB buffer, so idle pre-auth connections stay cheap.
    pg::Limits limits;
    limits.max_message = 65535;
    for (;;) {
        auto d = pg::decode_message(ByteView(buf_).first(len_), limits);
        if (!d) {
            spdlog::warn("postgres {}: bad password packet: {}", peer_, d.error().reason);
            co_return Refusal{"08P01", "invalid password packet: " + d.error().reason, {}};
        }
        if (auto* m = std::get_if<pg::MessageDecoded>(&*d)) {
            if (m->message.type != 'p') co_return Refusal{};
            auto pw = pg::parse_password_message(m->message.body);
            if (!pw) co_return Refusal{};
            out.assign(*pw);
            consume(m->consumed);
            co_return std::nullopt;
        }
        if (!co_await fill(std::get<pg::NeedMore>(*d).at_least)) co_return Refusal{};
    }
}

// Break-glass: the startup user is an emergency account named by a [[fallback]] rule. The service
// checks mode, rule, reason, limits and passphrase, and consumes the account atomically before the
// backend is contacted; it audits and alerts every step itself.
asio::awaitable<ClientSession::Step> ClientSession::authenticate_breakglass(std::string& password) {
    breakglass::Attempt attempt{.account = user_, .passphrase = Secret(std::move(password)),
                                .reason = login_reason_.value_or(""), .target = target_name_, .source = peer_,
                                .session_id = scope_.reserve_id(), .protocol = "postgres"};
    auto decision = co_await svc_->breakglass->authenticate(attempt);
    watchdog_.cancel();
    if (!decision.ok()) {
        spdlog::warn("postgres {}: break-glass login refused: {} (account={}, target={})", peer_, decision.log_reason,
                     user_, target_name_);
        co_return Refusal{decision.outcome == breakglass::Outcome::bad_passphrase ? "28P01" : "28000",
                          decision.public_message, {}};
    }
    grant_ = std::move(decision.grant);
    identity_ = user_;
    auth_method_ = "breakglass";
    limits_.cap = grant_->max_session;
    limits_.warn_before = grant_->warn_before;
    cap_source_ = "emergency access limit of rule \"" + grant_->rule_name + "\"";
    co_return std::nullopt;
}

asio::awaitable<ClientSession::Step> ClientSession::authenticate_sso(std::string& password) {
    if (!svc_->idp) {
        watchdog_.cancel();
        co_return denied("28000", "SSO is not configured on this proxy", "no [idp] configured");
    }
    std::optional<oidc::Identity> ident;
    if (lower(password) == "sso") {
        auth_method_ = "device";
        // psql prints a NoticeResponse only after AuthenticationOk (before it, the connection fails),
        // so: AuthenticationOk, then the URL and code as a WARNING, then wait for approval.
        watchdog_.cancel();
        const auto ok = pg::authentication_ok();
        co_await send(ok);
        sent_auth_ok_ = true;
        std::function<void(const oidc::DeviceAuthorization&)> show = [this](const oidc::DeviceAuthorization& a) {
            std::string msg = "To sign in, open " + a.verification_uri_complete.value_or(a.verification_uri) +
                              " and confirm the code " + a.user_code;
            auto notice = std::make_shared<Bytes>(
                pg::notice_response({pg::Severity::warning, "01000", msg, {}, "glassgate waits for the approval"}));
            asio::co_spawn(ex_, send_owned(std::move(notice)), LogEscaped{"postgres device sign-in notice"});
        };
        auto res = co_await svc_->idp->device_login(std::move(show));
        if (!res.identity) {
            co_return denied("28000", "sign-in failed: " + res.public_message, "device sign-in failed: " + res.reason);
        }
        ident = std::move(res.identity);
    } else {
        auto v = co_await svc_->idp->verify_token(std::move(password));
        watchdog_.cancel();
        if (!v.ok()) {
            co_return denied("28P01",
                             "password authentication failed for user \"" + user_ + "\": " +
                                 std::string(oidc::public_message(v.error)),
                             "token refused: " + v.reason);
        }
        ident = std::move(v.identity);
    }
    identity_ = ident->username;
    if (identity_ != user_) {
        co_return denied("28000", "the SSO sign-in is for \"" + identity_ + "\", not \"" + user_ + "\"",
                         "identity does not match the startup user");
    }
    if (!session::allow_list_admits(target_->allow, identity_, ident->groups)) {
        co_return denied("28000", "\"" + identity_ + "\" is not allowed to use target \"" + target_name_ + "\"",
                         "not in the target's allow list");
    }
    co_return std::nullopt;
}

}  // namespace gg::proxy::postgres
