// Signing in: keyboard-interactive device-code sign-in (URL and code in the prompt), the approval
// cache for a proven client key ([ssh] sso_cache), refusals shown as a prompt, and admission — the
// session opened (recording first) and the backend leg started. Break-glass logins branch off to
// breakglass_sign_in.cpp.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include "connection.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/session/policy.hpp"
#include "keys.hpp"
#include "message_fields.hpp"

namespace gg::proxy::ssh {
namespace asio = boost::asio;
using session::CloseReason;
using namespace std::chrono_literals;

void Connection::on_auth(MessageHandle m) {
    const char* user = ssh_message_auth_user(m.get());
    if (login_user_.empty() && user) {
        login_user_ = user;
        auto parsed = gg::ssh::parse_login(login_user_);
        if (parsed.login) {
            login_ = std::move(parsed.login);
            const auto* t = svc_->cfg.find_target(login_->target);
            if (t && t->protocol == config::Protocol::ssh) target_ = t;
        } else {
            login_problem_ = std::move(parsed.problem);
        }
    } else if (user && login_user_ != user) {
        ssh_message_reply_default(m.get());
        return;
    }
    const int sub = ssh_message_subtype(m.get());
    if (sub == SSH_AUTH_METHOD_PUBLICKEY) {
        on_publickey(std::move(m));
        return;
    }
    if (sub == SSH_AUTH_METHOD_INTERACTIVE) {
        if (ssh_message_auth_kbdint_is_response(m.get())) {
            on_kbd_response(std::move(m));
        } else {
            on_kbd_start(std::move(m));
        }
        return;
    }
    ssh_message_reply_default(m.get());
}

void Connection::on_publickey(MessageHandle m) {
    // A key only counts once libssh has verified its signature: a public key alone proves nothing.
    if (!svc_->cfg.ssh.sso_cache || !target_ || !svc_->idp) {
        ssh_message_reply_default(m.get());
        return;
    }
    if (admission_refusal()) {  // keyboard-interactive tells the user why
        ssh_message_reply_default(m.get());
        return;
    }
    const auto state = auth_publickey_state(m.get());
    if (state == SSH_PUBLICKEY_STATE_NONE) {
        ssh_message_auth_reply_pk_ok_simple(m.get());
        return;
    }
    if (state == SSH_PUBLICKEY_STATE_VALID) {
        const auto fp = key_fingerprint(auth_pubkey(m.get()));
        if (proven_key_fp_.empty()) proven_key_fp_ = fp;
        if (auto e = svc_->approvals.find(fp + "\n" + target_->name, steady::now())) {
            if ((login_->hint.empty() || login_->hint == e->identity) &&
                session::allow_list_admits(target_->allow, e->identity, e->groups)) {
                admit(std::move(m), e->identity, e->groups, "sso-cache");
                return;
            }
        }
    }
    ssh_message_reply_default(m.get());
}

std::optional<std::string> Connection::admission_refusal() {
    // What the client is told, without the "glassgate: " that refuse_auth() puts in front.
    auto user_text = [](std::string_view message) {
        constexpr std::string_view prefix = "glassgate: ";
        return std::string(message.starts_with(prefix) ? message.substr(prefix.size()) : message);
    };
    if (svc_->descriptors) {
        if (const auto why = svc_->descriptors->refusal("ssh")) {
            spdlog::warn("ssh {}: new session refused (login={}): {}", peer_, login_user_, *why);
            return user_text(svc_->descriptors->user_message());
        }
    }
    if (!svc_->storage) return std::nullopt;
    const auto why = svc_->storage->refusal("ssh");
    if (!why) return std::nullopt;
    spdlog::warn("ssh {}: new session refused (login={}): {}", peer_, login_user_, why->why);
    return user_text(why->user_message);
}

void Connection::refuse_auth(MessageHandle m, const std::string& user_message, const std::string& log_reason,
                             bool counted) {
    spdlog::warn("ssh {}: sign-in refused: {} (login={}, identity={})", peer_, log_reason, login_user_, identity_);
    if (counted) {
        svc_->metrics.inc("glassgate_ssh_auth_total", {{"method", "device"}, {"outcome", "denied"}});
        audit("auth.denied", "denied", log_reason, {{"protocol", "ssh"}, {"login", login_user_}});
        svc_->throttle.failure(peer_addr_, steady::now());
    }
    // The prompt is the one text every ssh client shows (the instruction is hidden by ssh -q).
    const std::string prompt = "glassgate: " + user_message + "\nPress Enter to disconnect: ";
    const char* prompts[] = {prompt.c_str()};
    char echo[] = {1};
    ssh_message_auth_interactive_request(m.get(), "glassgate", "", 1, prompts, echo);
    kbd_ = Kbd::failing;
    failing_reason_ = log_reason;
}

void Connection::on_kbd_start(MessageHandle m) {
    if (kbd_ == Kbd::failing) {  // a client retrying after a refusal gets the refusal
        ssh_message_reply_default(m.get());
        end(CloseReason::auth_failed, failing_reason_);
        return;
    }
    if (kbd_ != Kbd::none) {  // a restarted exchange while one is running: answer the newest
        held_ = std::move(m);
        if (kbd_ == Kbd::prompted || kbd_ == Kbd::waiting_result) kbd_ = Kbd::waiting_prompt;
        return;
    }
    if (auto refused = admission_refusal()) {
        // Before any credential is looked at: a refusal here consumes nothing. Never relay unrecorded.
        refuse_auth(std::move(m), *refused, *refused, false);
        return;
    }
    if (const auto wait = svc_->throttle.wait_for(peer_addr_, steady::now()); wait > 0s) {
        refuse_auth(std::move(m),
                    "too many failed sign-ins from " + peer_addr_ + "; try again in " + std::to_string(wait.count()) + "s",
                    "source throttled after repeated failures");
        return;
    }
    if (!login_) {
        refuse_auth(std::move(m), login_problem_, "bad login name \"" + login_user_ + "\"");
        return;
    }
    if (!target_) {
        refuse_auth(std::move(m), "there is no SSH target \"" + login_->target + "\" on this proxy", "unknown target");
        return;
    }
    if (!login_->hint.empty() && svc_->breakglass && svc_->breakglass->is_account(login_->hint)) {
        on_breakglass_start(std::move(m));
        return;
    }
    if (!svc_->idp) {
        refuse_auth(std::move(m), "single sign-on is not configured on this proxy", "no [idp] configured");
        return;
    }
    held_ = std::move(m);
    kbd_ = Kbd::waiting_prompt;
    start_device_login();
}

void Connection::start_device_login() {
    if (device_started_) return;
    device_started_ = true;
    std::weak_ptr<Connection> weak = shared_from_this();
    std::function<void(const oidc::DeviceAuthorization&)> show = [weak, ex = ex_](const oidc::DeviceAuthorization& a) {
        asio::post(ex, [weak, url = a.verification_uri_complete.value_or(a.verification_uri), code = a.user_code] {
            if (auto self = weak.lock()) {
                self->device_url_ = url;
                self->device_code_ = code;
                self->kick();
            }
        });
    };
    identity::DeviceLoginResult on_error;
    on_error.reason = "device sign-in failed with an internal error";
    on_error.public_message = "sign-in failed";
    asio::co_spawn(ex_, svc_->idp->device_login(std::move(show)),
                   deliver_to(&Connection::device_result_, std::move(on_error)));
}

void Connection::on_kbd_response(MessageHandle m) {
    if (kbd_ == Kbd::failing) {
        ssh_message_reply_default(m.get());
        end(CloseReason::auth_failed, failing_reason_);
        return;
    }
    if (kbd_ == Kbd::bg_prompted) {
        on_breakglass_response(std::move(m));
        return;
    }
    if (kbd_ != Kbd::prompted) {
        ssh_message_reply_default(m.get());
        return;
    }
    held_ = std::move(m);
    kbd_ = Kbd::waiting_result;
}

bool Connection::step_auth() {
    if (kbd_ == Kbd::waiting_prompt && held_ && (device_url_ || device_result_)) {
        if (!device_url_) {  // the IdP failed before there was anything to show
            refuse_auth(std::move(held_), "sign-in failed: " + device_result_->public_message,
                        "device sign-in failed: " + device_result_->reason);
            return true;
        }
        const std::string instruction =
            "Sign in to glassgate: open " + *device_url_ + " and confirm the code " + device_code_ + ".";
        const std::string prompt = "glassgate: open " + *device_url_ + " (code " + device_code_ +
                                   "), approve, then press Enter: ";
        const char* prompts[] = {prompt.c_str()};
        char echo[] = {1};
        ssh_message_auth_interactive_request(held_.get(), "glassgate sign-in", instruction.c_str(), 1, prompts, echo);
        held_.reset();
        kbd_ = Kbd::prompted;
        return true;
    }
    if (finish_breakglass()) return true;
    return finish_device_login();
}

/// The device-code sign-in's result, once the user has pressed Enter: checks the identity against
/// the login name's hint and the target's allow list, then admits.
bool Connection::finish_device_login() {
    if (kbd_ != Kbd::waiting_result || !held_ || !device_result_) return false;
    MessageHandle m = std::move(held_);
    auto res = std::move(*device_result_);
    device_result_.reset();
    if (!res.identity) {
        refuse_auth(std::move(m), "sign-in failed: " + res.public_message, "device sign-in failed: " + res.reason);
        return true;
    }
    identity_ = res.identity->username;
    if (!login_->hint.empty() && login_->hint != identity_) {
        refuse_auth(std::move(m), "you signed in as \"" + identity_ + "\", not \"" + login_->hint + "\"",
                    "identity does not match the login name's hint \"" + login_->hint + "\"");
        return true;
    }
    if (!session::allow_list_admits(target_->allow, identity_, res.identity->groups)) {
        refuse_auth(std::move(m), "\"" + identity_ + "\" is not allowed to use target \"" + target_->name + "\"",
                    "not in the target's allow list");
        return true;
    }
    if (svc_->cfg.ssh.sso_cache && !proven_key_fp_.empty()) {
        svc_->approvals.put(proven_key_fp_ + "\n" + target_->name,
                            {identity_, res.identity->groups, steady::now() + *svc_->cfg.ssh.sso_cache});
    }
    admit(std::move(m), identity_, res.identity->groups, "device");
    return true;
}

void Connection::admit(MessageHandle m, const std::string& identity, const std::vector<std::string>& groups,
                       const std::string& method) {
    identity_ = identity;
    set_time_limits();
    SessionScope::Open o;
    o.identity = identity_;
    o.method = grant_ ? session::AuthMethod::breakglass : session::AuthMethod::sso;
    o.auth_detail = method;
    o.target = target_->name;
    if (grant_) o.reason = grant_->reason;
    if (limits_.cap) o.cap = std::chrono::duration_cast<std::chrono::microseconds>(*limits_.cap);
    o.extra = {{"login", login_user_}, {"backend_user", target_->backend_user}};
    if (!groups.empty()) o.extra["groups"] = boost::json::array(groups.begin(), groups.end());
    if (grant_) o.extra["rule"] = grant_->rule_name;
    if (!scope_.open(o)) {
        if (grant_) {
            svc_->breakglass->session_closed(*grant_, "recording_failed", session::TimePoint(
                std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now())));
        }
        refuse_auth(std::move(m), "glassgate cannot record this session, so it is refused", "recording unavailable");
        return;
    }
    svc_->metrics.inc("glassgate_ssh_auth_total", {{"method", method}, {"outcome", "ok"}});
    svc_->metrics.inc("glassgate_auth_total", {{"method", "ssh-" + method}, {"outcome", "ok"}});
    svc_->throttle.success(peer_addr_);
    // The sign-in is answered once the backend is ready, so that a backend problem reaches the user
    // as a clear message in the prompt instead of a failed channel.
    admit_msg_ = std::move(m);
    admit_method_ = method;
    kbd_ = Kbd::none;
    grace_deadline_ = steady::time_point::max();
    scope_.log().info("ssh session: {} ({}) -> {} as {} from {}", identity_, method, target_->name,
                      target_->backend_user, peer_);
    last_activity_ = steady::now();
    // The backend leg starts now, while the client opens its channel.
    start_backend();
}

}  // namespace gg::proxy::ssh
