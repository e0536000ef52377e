#include "glassgate/proxy/rotation/rotation.hpp"

#include <fcntl.h>

#include <cerrno>
#include <libpq-fe.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include "glassgate/proxy/ops/logging.hpp"
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/session/audit_chain.hpp"
#include "glassgate/session/breakglass.hpp"

namespace gg::proxy::rotation {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

session::TimePoint now_tp() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::string aad_for(std::string_view target) { return "glassgate-rotation-pending-v1:" + std::string(target); }

std::string to_hex_str(ByteView b) { return to_hex(b); }

std::optional<Bytes> from_hex_str(std::string_view s) {
    if (s.size() % 2) return std::nullopt;
    Bytes out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        unsigned v = 0;
        for (int k = 0; k < 2; ++k) {
            char c = s[i + static_cast<std::size_t>(k)];
            unsigned n = c >= '0' && c <= '9' ? unsigned(c - '0') : c >= 'a' && c <= 'f' ? unsigned(c - 'a' + 10) : 99;
            if (n == 99) return std::nullopt;
            v = v * 16 + n;
        }
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

/// True when a TCP connection to `address` opens within `timeout` (any resolved address). Blocking.
bool backend_reachable(const config::SocketAddress& address, std::chrono::milliseconds timeout) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const auto port = std::to_string(address.port);
    if (::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &res) != 0) return false;
    bool ok = false;
    for (auto* ai = res; ai && !ok; ai = ai->ai_next) {
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
            int err = 0;
            socklen_t len = sizeof err;
            ok = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
                 ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
        ::close(fd);
    }
    ::freeaddrinfo(res);
    return ok;
}

/// Backoff after `attempts` failures: 5 s, 10 s, 20 s, ... capped at 10 minutes.
std::chrono::seconds backoff(int attempts) {
    const int shift = std::clamp(attempts - 1, 0, 10);
    return std::min(std::chrono::seconds(5) * (1 << shift), std::chrono::seconds(600));
}

struct PgConn {
    PGconn* c = nullptr;
    ~PgConn() {
        if (c) PQfinish(c);
    }
    explicit operator bool() const { return c && PQstatus(c) == CONNECTION_OK; }
    [[nodiscard]] std::string error() const {
        std::string e = c ? PQerrorMessage(c) : "out of memory";
        while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
        return e;
    }
};

void connect(PgConn& out, const config::Target& t, const Secret& password) {
    const std::string port = std::to_string(t.address.port);
    std::string sslmode = t.tls == config::BackendTls::require ? "require"
                          : t.tls == config::BackendTls::prefer ? "prefer"
                                                                 : "disable";
    std::string ca;
    if (t.ca_file && t.tls != config::BackendTls::disable) {
        sslmode = "verify-ca";
        ca = t.ca_file->string();
    }
    const std::string pw(password.reveal());
    std::vector<const char*> keys = {"host", "port", "dbname", "user", "password", "sslmode", "connect_timeout",
                                     "application_name"};
    std::vector<const char*> vals = {t.address.host.c_str(), port.c_str(), t.database.c_str(), t.backend_user.c_str(),
                                     pw.c_str(), sslmode.c_str(), "10", "glassgate-rotation"};
    if (!ca.empty()) {
        keys.push_back("sslrootcert");
        vals.push_back(ca.c_str());
    }
    keys.push_back(nullptr);
    vals.push_back(nullptr);
    out.c = PQconnectdbParams(keys.data(), vals.data(), 0);
}

std::string one_value(PGconn* c, const char* sql, std::string& err) {
    PGresult* r = PQexec(c, sql);
    std::string v;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        v = PQgetvalue(r, 0, 0);
    } else {
        err = PQresultErrorMessage(r);
    }
    PQclear(r);
    return v;
}

}  // namespace

json::object to_json(const Job& j, bool with_secret) {
    json::object o{{"target", j.target},
                   {"session", j.session},
                   {"account", j.account},
                   {"queued_at_us", j.queued_at.time_since_epoch().count()},
                   {"queued_at", session::format_utc(j.queued_at)},
                   {"attempts", j.attempts},
                   {"last_error", j.last_error},
                   {"state", j.pending.empty() ? "queued" : "pending"}};
    if (j.next_attempt) {
        o["next_attempt_us"] = j.next_attempt->time_since_epoch().count();
        o["next_attempt"] = session::format_utc(*j.next_attempt);
    }
    if (with_secret && !j.pending.empty()) o["pending"] = j.pending;
    if (!j.lease_owner.empty() && j.lease_until) {
        o["lease_owner"] = j.lease_owner;
        o["lease_until_us"] = j.lease_until->time_since_epoch().count();
    }
    return o;
}

std::optional<Job> job_from_json(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto& o = v.as_object();
    auto str = [&](std::string_view k) -> std::string {
        auto* x = o.if_contains(k);
        return x && x->is_string() ? std::string(x->as_string()) : std::string();
    };
    Job j;
    j.target = str("target");
    if (j.target.empty()) return std::nullopt;
    j.session = str("session");
    j.account = str("account");
    j.last_error = str("last_error");
    j.pending = str("pending");
    if (auto* x = o.if_contains("queued_at_us"); x && x->is_int64()) {
        j.queued_at = session::TimePoint(std::chrono::microseconds(x->as_int64()));
    }
    if (auto* x = o.if_contains("attempts"); x && x->is_int64()) j.attempts = static_cast<int>(x->as_int64());
    if (auto* x = o.if_contains("next_attempt_us"); x && x->is_int64()) {
        j.next_attempt = session::TimePoint(std::chrono::microseconds(x->as_int64()));
    }
    j.lease_owner = str("lease_owner");
    if (auto* x = o.if_contains("lease_until_us"); x && x->is_int64()) {
        j.lease_until = session::TimePoint(std::chrono::microseconds(x->as_int64()));
    }
    return j;
}

void queue_rotation(StateStore& store, const std::string& target, const std::string& session,
                    const std::string& account, session::TimePoint now) {
    for (int tries = 0; tries < 20; ++tries) {
        auto prev = store.get(store_namespace, target);
        Job j;
        if (prev) {
            if (auto p = job_from_json(*prev)) j = *p;  // keep its pending secret: a retry must reuse it
        }
        j.target = target;
        j.session = session;
        j.account = account;
        if (!prev) j.queued_at = now;
        j.next_attempt.reset();
        if (store.compare_and_set(store_namespace, target, prev, json::serialize(to_json(j)))) return;
    }
    throw StoreError("cannot queue the rotation of " + target + ": the job keeps changing");
}

std::vector<Job> pending_jobs(StateStore& store) {
    std::vector<Job> out;
    for (auto& [k, v] : store.list(store_namespace)) {
        if (auto j = job_from_json(v)) out.push_back(std::move(*j));
    }
    return out;
}

Secret generate_password() {
    auto r = crypto::random_bytes(32);
    Secret s(oidc::base64url_encode(r));
    crypto::cleanse(r.data(), r.size());
    return s;
}

Outcome rotate_postgres(const config::Target& target, const Secret& current, const Secret& next,
                        const std::set<int>& keep_pids) {
    Outcome out;
    PgConn conn;
    connect(conn, target, current);
    if (!conn) {
        const std::string first = conn.error();
        // An earlier attempt may have changed the password and failed before committing: try the pending one.
        PgConn again;
        connect(again, target, next);
        if (!again) {
            out.error = "cannot log in to " + target.address.to_string() + " as " + target.backend_user +
                        " with the current secret (" + first + ") nor the pending one (" + again.error() + ")";
            return out;
        }
        out.used_pending = true;
        std::swap(conn.c, again.c);
    }
    if (!out.used_pending) {
        char* verifier = PQencryptPasswordConn(conn.c, std::string(next.reveal()).c_str(), target.backend_user.c_str(),
                                               "scram-sha-256");
        if (!verifier) {
            out.error = "cannot compute the SCRAM verifier: " + conn.error();
            return out;
        }
        char* role = PQescapeIdentifier(conn.c, target.backend_user.c_str(), target.backend_user.size());
        char* lit = PQescapeLiteral(conn.c, verifier, std::strlen(verifier));
        PQfreemem(verifier);
        if (!role || !lit) {
            if (role) PQfreemem(role);
            if (lit) PQfreemem(lit);
            out.error = "cannot quote the ALTER ROLE statement: " + conn.error();
            return out;
        }
        // Only the verifier travels: the plaintext never reaches the server or its logs.
        const std::string sql = std::string("ALTER ROLE ") + role + " PASSWORD " + lit;
        PQfreemem(role);
        PQfreemem(lit);
        PGresult* r = PQexec(conn.c, sql.c_str());
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) out.error = std::string("ALTER ROLE failed: ") + PQresultErrorMessage(r);
        PQclear(r);
        if (!ok) return out;
    }
    // Lingering sessions of the role (opened during the emergency) keep working after ALTER ROLE: end
    // them, except this one and the backends of live proxy sessions.
    std::string keep = "{";
    for (int p : keep_pids) keep += (keep.size() > 1 ? "," : "") + std::to_string(p);
    keep += "}";
    const char* params[2] = {target.backend_user.c_str(), keep.c_str()};
    PGresult* t = PQexecParams(conn.c,
                               "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE usename = $1 AND pid <> pg_backend_pid() AND NOT (pid = ANY($2::int[]))",
                               2, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(t) == PGRES_TUPLES_OK && PQntuples(t) == 1) {
        out.terminated = std::atoi(PQgetvalue(t, 0, 0));
    } else {
        spdlog::warn("rotation of {}: terminating lingering sessions failed: {}", target.name, PQresultErrorMessage(t));
    }
    PQclear(t);
    // Verify: a fresh login with the new secret.
    PgConn check;
    connect(check, target, next);
    if (!check) {
        out.error = "the new secret does not log in: " + check.error();
        return out;
    }
    std::string err;
    if (one_value(check.c, "SELECT 1", err) != "1") {
        out.error = "the new secret logs in but cannot query: " + err;
        return out;
    }
    out.ok = true;
    return out;
}

void declare_metrics(Metrics& m) {
    m.declare("glassgate_rotation_pending", Metrics::Type::gauge, "1 while a target's credential rotation is pending.");
    m.declare("glassgate_rotations_total", Metrics::Type::counter, "Credential rotation attempts by target and outcome.");
}

Worker::Worker(asio::any_io_executor ex, std::shared_ptr<asio::thread_pool> pool, const config::Config& cfg,
               StateStore& store, Bytes secrets_key, Metrics& metrics, std::shared_ptr<Notifier> notifier)
    : ex_(std::move(ex)),
      pool_(std::move(pool)),
      cfg_(cfg),
      store_(store),
      key_(std::move(secrets_key)),
      metrics_(metrics),
      notifier_(std::move(notifier)) {
    rotators_[config::Protocol::postgres] = Rotator{generate_password, rotate_postgres};
}

void Worker::set_rotator(config::Protocol protocol, Rotator r) {
    std::lock_guard lk(mu_);
    rotators_[protocol] = std::move(r);
}

void Worker::start(std::chrono::milliseconds interval) {
    auto self = shared_from_this();
    auto timer = std::make_shared<asio::steady_timer>(ex_);
    timer_ = timer;
    auto loop = [self, timer, interval]() -> asio::awaitable<void> {
        while (!self->stopped_) {
            self->run_due();
            timer->expires_after(interval);
            (void)co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
        }
    };
    asio::co_spawn(ex_, std::move(loop), logging::LogEscaped{"rotation worker"});
}

void Worker::stop() {
    stopped_ = true;
    if (auto t = std::static_pointer_cast<asio::steady_timer>(timer_)) {
        asio::post(ex_, [t] { t->cancel(); });
    }
}

void Worker::poke() {
    if (auto t = std::static_pointer_cast<asio::steady_timer>(timer_)) {
        asio::post(ex_, [t] { t->cancel(); });
    }
}

void Worker::run_due() {
    std::vector<Job> jobs;
    try {
        jobs = pending_jobs(store_);
    } catch (const std::exception& e) {
        spdlog::error("rotation: cannot list jobs: {}", e.what());
        return;
    }
    const auto now = now_tp();
    for (const auto& target : cfg_.targets) {
        bool pending = std::any_of(jobs.begin(), jobs.end(), [&](const Job& j) { return j.target == target.name; });
        metrics_.set("glassgate_rotation_pending", {{"target", target.name}}, pending ? 1.0 : 0.0);
    }
    for (const auto& j : jobs) {
        const bool due = !j.next_attempt || *j.next_attempt <= now;
        {
            std::lock_guard lk(mu_);
            if (!running_.insert(j.target).second) continue;
        }
        auto self = shared_from_this();
        asio::post(*pool_, [self, target = j.target, due] {
            try {
                // A job waiting out its backoff is retried at once when its backend, unreachable at the
                // last look, accepts connections again: the old credential must not stay valid for the
                // rest of a backoff once it can be changed.
                if (due || self->backend_came_back(target)) self->run_job(target);
            } catch (const std::exception& e) {
                spdlog::error("rotation of {}: {}", target, e.what());
            }
            std::lock_guard lk(self->mu_);
            self->running_.erase(target);
        });
    }
}

bool Worker::backend_came_back(const std::string& target_name) {
    const auto* target = cfg_.find_target(target_name);
    if (!target) return false;
    const auto now = std::chrono::steady_clock::now();
    {
        // One probe per 5 s per waiting job: a backend logs every connection that sends no startup packet.
        std::lock_guard lk(mu_);
        auto it = reachable_.find(target_name);
        if (it != reachable_.end() && now - it->second.at < std::chrono::seconds(5)) return false;
    }
    const bool up = backend_reachable(target->address, std::chrono::milliseconds(1000));
    bool was_up = false;  // not probed yet in this process (e.g. just restarted): a reachable backend is news
    {
        std::lock_guard lk(mu_);
        auto& seen = reachable_[target_name];
        was_up = seen.up;
        seen = {up, now};
    }
    if (up && !was_up) {
        spdlog::info("rotation of {}: the backend {} accepts connections; retrying now", target_name,
                     target->address.to_string());
        return true;
    }
    return false;
}

void Worker::run_job(const std::string& target_name) {
    auto text = store_.get(store_namespace, target_name);
    if (!text) return;
    auto job = job_from_json(*text);
    if (!job) {
        spdlog::error("rotation job for {} is unreadable; leaving it for an operator", target_name);
        return;
    }
    const auto* target = cfg_.find_target(target_name);
    std::vector<std::string> notify;
    for (const auto& r : cfg_.fallbacks) {
        for (const auto& g : r.targets) {
            if (!session::breakglass::glob_match(g, target_name)) continue;
            for (const auto& u : r.notify) {
                if (std::find(notify.begin(), notify.end(), u) == notify.end()) notify.push_back(u);
            }
        }
    }
    auto audit = [&](const std::string& type, const std::string& outcome, const std::string& reason, json::object details) {
        append_audit_logged(store_, {.time = now_tp(), .type = type, .session_id = job->session, .identity = job->account,
                                     .target = target_name, .source = {}, .outcome = outcome, .reason = reason,
                                     .details = std::move(details)});
    };
    auto alert = [&](const std::string& event, const std::string& reason, json::object extra) {
        if (!notifier_) return;
        notifier_->send(notify, Alert{.event = event, .account = job->account, .target = target_name, .reason = reason,
                                      .source = {}, .session = job->session, .time = now_tp(), .mode = {},
                                      .extra = std::move(extra)});
    };
    // Claim the job (a lease in the job itself): of several instances sharing the store, one works on
    // it; when that one dies, the lease runs out and another takes over, reusing the pending secret.
    const auto& me = cfg_.server.instance;
    if (!job->lease_owner.empty() && job->lease_owner != me && job->lease_until && *job->lease_until > now_tp()) {
        spdlog::debug("rotation of {}: instance {} is on it until {}", target_name, job->lease_owner,
                      session::format_utc(*job->lease_until));
        return;
    }
    {
        Job claimed = *job;
        if (!claimed.lease_owner.empty() && claimed.lease_owner != me) {
            spdlog::warn("rotation of {}: taking over from instance {}, whose lease ran out", target_name,
                         claimed.lease_owner);
        }
        claimed.lease_owner = me;
        claimed.lease_until = now_tp() + std::chrono::duration_cast<std::chrono::microseconds>(rotation_lease);
        auto claimed_text = json::serialize(to_json(claimed));
        if (!store_.compare_and_set(store_namespace, target_name, text, claimed_text)) return;  // changed: next round
        job = std::move(claimed);
        text = std::move(claimed_text);
    }
    auto fail = [&](const std::string& why) {
        auto cur = store_.get(store_namespace, target_name);
        Job j = cur ? job_from_json(*cur).value_or(*job) : *job;
        if (j.lease_owner == me) {  // released: whoever is due next may take it
            j.lease_owner.clear();
            j.lease_until.reset();
        }
        ++j.attempts;
        j.last_error = why;
        j.next_attempt = now_tp() + std::chrono::duration_cast<std::chrono::microseconds>(backoff(j.attempts));
        if (!store_.compare_and_set(store_namespace, target_name, cur, json::serialize(to_json(j)))) return;
        metrics_.inc("glassgate_rotations_total", {{"target", target_name}, {"outcome", "failed"}});
        spdlog::error("rotation of {} failed (attempt {}): {}; next attempt {}", target_name, j.attempts, why,
                      session::format_utc(*j.next_attempt));
        if (j.attempts == 1 || j.attempts % 5 == 0) {
            audit("rotation.failed", "error", why, {{"attempts", j.attempts}, {"next_attempt", session::format_utc(*j.next_attempt)}});
            alert("rotation.failed", why, {{"attempts", j.attempts}});
        }
    };
    if (!target) return fail("target " + target_name + " is no longer configured");
    Rotator rot;
    {
        std::lock_guard lk(mu_);
        auto it = rotators_.find(target->protocol);
        if (it != rotators_.end()) rot = it->second;
    }
    if (!rot.apply) return fail("no rotation for " + std::string(config::to_string(target->protocol)) + " targets in this version");
    SecretStore secrets(store_, key_);
    auto current = secrets.get(target_name);
    if (!current) return fail("no current secret stored for " + target_name);

    // The new secret is durable (encrypted, in the job) before the backend changes; retries reuse it.
    if (job->pending.empty()) {
        auto fresh = rot.generate();
        auto sealed = crypto::aes256gcm_seal(key_, as_bytes(fresh.reveal()), as_bytes(aad_for(target_name)));
        Job with = *job;
        with.pending = to_hex_str(sealed);
        const auto new_text = json::serialize(to_json(with));
        if (!store_.compare_and_set(store_namespace, target_name, text, new_text)) return;  // changed: next round
        job = with;
        text = new_text;
        spdlog::info("rotation of {}: new secret generated and stored as pending", target_name);
    }
    auto sealed = from_hex_str(job->pending);
    std::optional<Bytes> plain;
    if (sealed) plain = crypto::aes256gcm_open(key_, *sealed, as_bytes(aad_for(target_name)));
    if (!plain) return fail("the pending secret of " + target_name + " fails authentication");
    Secret next(std::string(as_chars(*plain)));
    crypto::cleanse(plain->data(), plain->size());

    std::set<int> keep;
    if (keep_pids_) keep = keep_pids_(target_name);
    auto outcome = rot.apply(*target, *current, next, keep);
    if (!outcome.ok) return fail(outcome.error);
    // Commit: the store gets the new secret, then the job goes. A crash between the two reruns the job,
    // which finds the backend on the pending secret (used_pending) and commits again.
    secrets.set(target_name, next);
    (void)store_.compare_and_set(store_namespace, target_name, text, std::nullopt);
    metrics_.inc("glassgate_rotations_total", {{"target", target_name}, {"outcome", "done"}});
    metrics_.set("glassgate_rotation_pending", {{"target", target_name}}, 0.0);
    audit("rotation.done", "ok", "backend credential rotated",
          {{"attempts", job->attempts + 1}, {"terminated_sessions", outcome.terminated}, {"resumed", outcome.used_pending}});
    alert("rotation.done", "backend credential rotated", {{"terminated_sessions", outcome.terminated}});
    spdlog::info("rotation of {} done (terminated {} lingering session(s))", target_name, outcome.terminated);
}

}  // namespace gg::proxy::rotation
