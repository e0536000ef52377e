// Emergency (break-glass) sign-in on the SSH listener: login ACCOUNT:TARGET, passphrase (not echoed)
// and reason in one keyboard-interactive exchange, checked by the break-glass service off the strand.

#include <boost/asio/co_spawn.hpp>

#include "connection.hpp"

namespace gg::proxy::ssh {
namespace asio = boost::asio;

void Connection::on_breakglass_start(MessageHandle m) {
    const std::string p1 = "glassgate emergency access: passphrase for " + login_->hint + ": ";
    const std::string p2 = "Reason (incident or ticket): ";
    const char* prompts[] = {p1.c_str(), p2.c_str()};
    char echo[] = {0, 1};
    ssh_message_auth_interactive_request(
        m.get(), "glassgate emergency access",
        ("Emergency access to " + target_->name + " is recorded in full, time-limited and alerted.").c_str(), 2,
        prompts, echo);
    kbd_ = Kbd::bg_prompted;
}

void Connection::on_breakglass_response(MessageHandle m) {
    const int n = ssh_userauth_kbdint_getnanswers(srv_.get());
    const char* pass = n >= 1 ? ssh_userauth_kbdint_getanswer(srv_.get(), 0) : nullptr;
    const char* why = n >= 2 ? ssh_userauth_kbdint_getanswer(srv_.get(), 1) : nullptr;
    held_ = std::move(m);
    kbd_ = Kbd::waiting_result;
    auto attempt = std::make_shared<breakglass::Attempt>(breakglass::Attempt{
        .account = login_->hint, .passphrase = Secret(std::string(pass ? pass : "")), .reason = why ? why : "",
        .target = target_->name, .source = peer_, .session_id = scope_.reserve_id(), .protocol = "ssh"});
    auto bg = svc_->breakglass;
    breakglass::Decision on_error;
    on_error.public_message = "emergency sign-in failed";
    on_error.log_reason = "break-glass check failed with an internal error";
    asio::co_spawn(
        ex_,
        [bg, attempt]() -> asio::awaitable<breakglass::Decision> { co_return co_await bg->authenticate(*attempt); },
        deliver_to(&Connection::bg_decision_, std::move(on_error)));
}

/// The break-glass service's decision: a refusal (already audited and alerted by the service), or
/// the grant whose rule sets the session's limits.
bool Connection::finish_breakglass() {
    if (kbd_ != Kbd::waiting_result || !held_ || !bg_decision_) return false;
    MessageHandle m = std::move(held_);
    auto d = std::move(*bg_decision_);
    bg_decision_.reset();
    if (!d.ok()) {
        svc_->throttle.failure(peer_addr_, steady::now());
        refuse_auth(std::move(m), d.public_message, "break-glass: " + d.log_reason, false);
        return true;
    }
    grant_ = std::move(d.grant);
    admit(std::move(m), login_->hint, {}, "breakglass");
    return true;
}

}  // namespace gg::proxy::ssh
