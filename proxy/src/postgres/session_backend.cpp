// The backend leg of a session: the target's stored secret, a pooled or new connection, the
// client's greeting (ParameterStatus, BackendKeyData, ReadyForQuery), the relay, and at the end
// keeping the connection for a later session when this one ended at rest.

#include "client_session.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/proxy/store/secret_store.hpp"

namespace gg::proxy::postgres {
using namespace std::chrono_literals;

std::optional<Secret> ClientSession::read_secret() {
    // The store reports a secret that fails authentication (tampered, another master key) by
    // throwing: the session then goes on as one without a credential, which refuses it cleanly.
    try {
        return SecretStore(svc_->store, svc_->secrets_key).get(target_name_);
    } catch (const std::exception& e) {
        log().error("cannot read the secret for {}: {}", target_name_, e.what());
        return std::nullopt;
    }
}

asio::awaitable<ClientSession::Step> ClientSession::open_backend() {
    const auto secret = read_secret();
    BackendResult br;
    // Break-glass sessions always get a connection of their own and leave none behind.
    poolable_ = target_->pool_size > 0 && !grant_;
    if (!secret) {
        br.error = "no credential is stored for target " + target_name_ + " (glassgate secret set " + target_name_ + ")";
        br.client_error = "glassgate has no credential for this target";
    } else {
        if (poolable_) {
            pool_key_ = BackendPool::key(*target_, database_, *secret, forward_);
            if (auto idle = svc_->pool->take(pool_key_)) {
                br.session = std::move(*idle);
                reused_ = true;
            }
        }
        if (!reused_) br = co_await connect_backend(*target_, *secret, database_, forward_, 10s);
        if (br.session) {
            svc_->metrics.inc("glassgate_postgres_backend_connections_total",
                              {{"target", target_name_}, {"how", reused_ ? "reused" : "opened"}});
        }
    }
    if (!br.session) {
        log().error("{}", br.error);
        annotate("backend connection failed: " + br.error);
        reason_ = session::CloseReason::backend_error;
        detail_ = br.error;
        co_return Refusal{br.sqlstate == "3D000" ? "3D000" : "08006", br.client_error, {}};
    }
    backend_leg_ = std::move(br.session);
    co_return std::nullopt;
}

asio::awaitable<void> ClientSession::serve() {
    BackendSession& leg = *backend_leg_;
    scope_.activate();
    backend_ = leg.conn.get();
    // The client gets the backend's real pid (as without a proxy) and a key of glassgate's own.
    const std::int32_t pid = leg.pid;
    const std::uint32_t key = svc_->cancels.add({leg.endpoint, leg.pid, leg.key, scope_.id()});
    publish_cancel_key(*svc_, pid, key);
    Bytes hello;
    auto add = [&hello](const Bytes& m) { hello.insert(hello.end(), m.begin(), m.end()); };
    if (!sent_auth_ok_) add(pg::authentication_ok());
    for (const auto& [k, v] : leg.parameters) add(pg::parameter_status(k, v));
    add(pg::backend_key_data(pid, key));
    add(pg::ready_for_query('I'));
    annotate("connected to " + leg.endpoint.address().to_string() + ":" + std::to_string(leg.endpoint.port()) + " as " +
             target_->backend_user + ", database " + database_ + (leg.conn->tls() ? " (TLS)" : "") +
             (reused_ ? ", reusing the idle backend connection of an earlier session (backend pid " +
                            std::to_string(leg.pid) + ", reset with DISCARD ALL)"
                      : ""));
    backend_session_ = &leg;
    co_await send(hello);
    std::weak_ptr<ClientSession> weak = shared_from_this();
    const auto closer_id = svc_->closers.add([weak, ex = ex_](std::string why) {
        asio::co_spawn(ex, [weak, why]() -> asio::awaitable<void> {
            auto self = weak.lock();
            if (!self || self->ended_) co_return;
            co_await self->fatal("57P01", why);
            self->end(session::CloseReason::shutdown, why);
        }, LogEscaped{"postgres shutdown notice"});
    });
    co_await relay(leg, *target_);
    svc_->closers.remove(closer_id);
    svc_->cancels.remove(pid, key);
    withdraw_cancel_key(*svc_, pid, key);
    backend_ = nullptr;
    if (keep_backend_ && !svc_->stopping) {
        (void)co_await note("the backend connection is kept for a later session (reset with DISCARD ALL first)");
        auto kept = std::make_shared<BackendSession>(std::move(leg));
        asio::co_spawn(ex_, [svc = svc_, kept, key = std::move(pool_key_), target = target_]() -> asio::awaitable<void> {
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
        }, LogEscaped{"postgres backend reset"});
    } else if (keep_backend_) {
        leg.conn->close();
    }
}

}  // namespace gg::proxy::postgres
