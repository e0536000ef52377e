// The backend leg: the target's credential from the encrypted store, the TCP connection, the SSH
// handshake with the pinned host key checked (never trust on first use), authentication as the
// target's backend_user, and the sign-in answered once all of that worked.

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "connection.hpp"
#include "glassgate/proxy/lifecycle/descriptor_budget.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/ssh/host_key.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "keys.hpp"

namespace gg::proxy::ssh {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using session::CloseReason;
using namespace std::chrono_literals;

namespace {

// AES-GCM first on the leg glassgate chooses: with AES-NI it costs a fraction of ChaCha20.
constexpr const char* backend_ciphers =
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";

}  // namespace

void Connection::start_backend() {
    std::optional<Secret> secret;
    try {
        secret = SecretStore(svc_->store, svc_->secrets_key).get(target_->name);
    } catch (const std::exception& e) {  // reported to the user as a missing credential, below
        scope_.log().error("cannot read the secret for {}: {}", target_->name, e.what());
    }
    if (!secret) {
        fail_backend("no credential is stored for target " + target_->name + " (glassgate secret set " + target_->name + ")",
                     "glassgate has no credential for " + target_->name);
        return;
    }
    const auto text = secret->reveal();
    if (is_private_key(text)) {
        be_key_ = import_private_key(text);
        if (!be_key_) {
            fail_backend("the stored credential for " + target_->name + " is not a usable private key",
                         "glassgate's credential for " + target_->name + " is unusable");
            return;
        }
    } else {
        be_password_ = std::string(text);
        while (!be_password_.empty() && (be_password_.back() == '\n' || be_password_.back() == '\r')) be_password_.pop_back();
    }
    be_state_ = Be::resolving;
    be_deadline_ = steady::now() + 15s;
    std::weak_ptr<Connection> weak = shared_from_this();
    asio::co_spawn(
        ex_,
        [weak, addr = target_->address, ex = ex_]() -> asio::awaitable<void> {
            tcp::resolver resolver(ex);
            auto [rec, results] = co_await resolver.async_resolve(addr.host, std::to_string(addr.port),
                                                                  asio::as_tuple(asio::use_awaitable));
            std::string error;
            bool local_shortage = false;
            tcp::socket s(ex);
            if (rec) {
                error = "cannot resolve " + addr.to_string() + ": " + rec.message();
            } else {
                boost::system::error_code last = asio::error::host_not_found;
                for (const auto& r : results) {
                    boost::system::error_code ec;
                    s.close(ec);
                    auto [cec] = co_await s.async_connect(r.endpoint(), asio::as_tuple(asio::use_awaitable));
                    last = cec;
                    if (!cec) break;
                }
                if (last) error = "cannot connect to " + addr.to_string() + ": " + last.message();
                local_shortage = last && is_descriptor_exhaustion(last.value());
            }
            auto self = weak.lock();
            if (!self) co_return;
            if (!error.empty() && local_shortage) {
                // A local shortage, not the backend: say so.
                self->fail_backend(error + " (glassgate's open-file limit is used up)",
                                   "glassgate has no file descriptor left for the connection to " + self->target_->name +
                                       " (open-file limit); try again later");
            } else if (!error.empty()) {
                self->fail_backend(error, "glassgate cannot reach " + self->target_->name + " (" + error + ")");
            } else if (self->be_state_ == Be::resolving) {
                boost::system::error_code ec;
                s.set_option(tcp::no_delay(true), ec);
                self->backend_fd_ = s.release();
                self->be_state_ = Be::tcp_ready;
            }
            self->kick();
        },
        // An internal error here leaves the leg resolving: the connect timeout then fails it.
        logging::LogEscaped{"ssh backend connect"});
}

void Connection::finish_admit() {
    ssh_message_auth_reply_success(admit_msg_.get(), 0);
    admit_msg_.reset();
    phase_ = Phase::open;
}

void Connection::fail_backend(const std::string& why, const std::string& user_message) {
    if (be_state_ == Be::failed) return;
    be_state_ = Be::failed;
    be_deadline_ = steady::time_point::max();
    be_error_user_ = "glassgate: " + user_message;
    if (admit_msg_) refuse_auth(std::move(admit_msg_), user_message, "backend unavailable: " + why, false);
    if (scope_.opened()) scope_.log().error("backend: {}", why);
    annotate("backend connection failed: " + why);
    audit("backend.error", "error", why);
    if (reason_ == CloseReason::none) {
        reason_ = CloseReason::backend_error;
        detail_ = why;
    }
    cut_all(CloseReason::backend_error, be_error_user_);
}

bool Connection::step_backend() {
    if (be_state_ == Be::tcp_ready) {
        be_ = PeerSessionHandle(ssh_new());
        if (!be_) {
            fail_backend("cannot create an SSH client session", "glassgate cannot reach " + target_->name);
            return true;
        }
        const auto pinned = gg::ssh::parse_public_key_line(target_->host_key);
        set_client_options(be_.get(), target_->address,
                           {.user = target_->backend_user.c_str(),
                            .hostkeys = gg::ssh::hostkey_algorithms_for(pinned ? pinned->type : "ssh-ed25519"),
                            .ciphers = backend_ciphers,
                            .fd = backend_fd_});
        ssh_set_blocking(be_.get(), 0);
        bfd_.emplace(ex_, ::dup(backend_fd_));
        be_state_ = Be::connecting;
    }
    if (be_state_ == Be::connecting) {
        const int rc = ssh_connect(be_.get());
        if (!be_connect_called_) {
            // ssh_connect with SSH_OPTIONS_FD makes the socket blocking again.
            be_connect_called_ = true;
            ::fcntl(backend_fd_, F_SETFL, ::fcntl(backend_fd_, F_GETFL) | O_NONBLOCK);
        }
        if (rc == SSH_AGAIN) return false;
        if (rc != SSH_OK) {
            fail_backend(std::string("SSH handshake with the backend failed: ") + ssh_get_error(be_.get()),
                         "glassgate cannot reach " + target_->name);
            return true;
        }
        // The pinned host key, never trust on first use.
        const auto presented = presented_host_key(be_.get());
        if (!host_key_matches(presented, target_->host_key)) {
            audit("backend.hostkey_mismatch", "denied", "backend host key does not match the pinned key",
                  {{"presented", presented}, {"pinned", target_->host_key}});
            fail_backend("backend host key mismatch: the target presented " + presented + ", the pinned key is " +
                             target_->host_key,
                         "the host key of " + target_->name +
                             " does not match the pinned key; the connection is refused (tell the operators)");
            return true;
        }
        be_state_ = Be::authenticating;
    }
    if (be_state_ == Be::authenticating) {
        const int rc = be_key_ ? ssh_userauth_publickey(be_.get(), nullptr, be_key_.get())
                               : ssh_userauth_password(be_.get(), nullptr, be_password_.c_str());
        if (rc == SSH_AUTH_AGAIN) return false;
        if (rc != SSH_AUTH_SUCCESS) {
            fail_backend("the backend refused glassgate's credential for " + target_->backend_user + ": " +
                             ssh_get_error(be_.get()),
                         target_->name + " refused glassgate's credential (tell the operators)");
            return true;
        }
        be_state_ = Be::ready;
        backend_ready_ = true;
        be_deadline_ = steady::time_point::max();
        crypto::cleanse(be_password_.data(), be_password_.size());
        be_password_.clear();
        scope_.activate();
        annotate("connected to " + target_->address.to_string() + " as " + target_->backend_user);
        if (admit_msg_) finish_admit();
        return true;
    }
    return false;
}

}  // namespace gg::proxy::ssh
