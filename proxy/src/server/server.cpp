#include "glassgate/proxy/server/server.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <thread>

#include "glassgate/proxy/store/configured_store.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/proxy/ops/alerts.hpp"
#include "glassgate/proxy/breakglass/breakglass.hpp"
#include "glassgate/proxy/cluster/instances.hpp"
#include "glassgate/proxy/cluster/recording_shipper.hpp"
#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/proxy/lifecycle/descriptor_budget.hpp"
#include "glassgate/proxy/lifecycle/storage_guard.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/ops/metrics.hpp"
#include "glassgate/proxy/postgres/pg_proxy.hpp"
#include "glassgate/proxy/recording/recording_file.hpp"
#include "glassgate/proxy/recording/recording_writer.hpp"
#include "glassgate/proxy/rotation/rotation.hpp"
#include "glassgate/proxy/ssh/ssh_proxy.hpp"
#include "glassgate/proxy/ssh/ssh_rotator.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/recording.hpp"

namespace gg::proxy {
namespace asio = boost::asio;
using asio::ip::tcp;
using local_stream = asio::local::stream_protocol;

namespace {

session::TimePoint now() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

tcp::endpoint resolve(const config::SocketAddress& a, std::string_view what) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(a.host, ec);
    if (!ec) return {addr, a.port};
    asio::io_context io;
    tcp::resolver r(io);
    auto res = r.resolve(a.host, std::to_string(a.port), ec);
    if (ec || res.empty()) {
        throw OperationalError("cannot resolve " + a.to_string() + " (" + std::string(what) + "): " + ec.message());
    }
    return res.begin()->endpoint();
}

void bind_acceptor(tcp::acceptor& acc, const config::SocketAddress& a, std::string_view what) {
    auto ep = resolve(a, what);
    boost::system::error_code ec;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw OperationalError("cannot listen on " + a.to_string() + " (" + std::string(what) + "): " + ec.message());
}

void check_tls_files(const config::TlsConfig& tls) {
    asio::ssl::context ctx(asio::ssl::context::tls_server);
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(tls.cert_file.string(), ec);
    if (ec) throw OperationalError("cannot load TLS certificate " + tls.cert_file.string() + ": " + ec.message());
    ctx.use_private_key_file(tls.key_file.string(), asio::ssl::context::pem, ec);
    if (ec) throw OperationalError("cannot load TLS private key " + tls.key_file.string() + ": " + ec.message());
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        throw OperationalError("TLS private key " + tls.key_file.string() + " does not match certificate " +
                               tls.cert_file.string());
    }
}

}  // namespace

struct Server::Impl {
    const config::Config& cfg;
    StateDir state;
    std::unique_ptr<StateStore> store;
    std::unique_ptr<RecordingService> recordings;
    std::shared_ptr<StorageGuard> storage;
    std::shared_ptr<DescriptorBudget> descriptors;
    asio::io_context io;
    /// Listeners, signals and shutdown run on this strand; each connection gets a strand of its own,
    /// so the io_context can run on several threads.
    asio::strand<asio::io_context::executor_type> control{asio::make_strand(io)};
    /// The io_context runs on one thread: connections then run on it directly, as a strand would
    /// add a hop through its queue to every completion and serialise nothing more.
    bool single_io_thread = true;
    asio::signal_set signals{control, SIGINT, SIGTERM};
    std::optional<tcp::acceptor> pg_acceptor;
    std::optional<tcp::acceptor> ssh_acceptor;
    local_stream::acceptor admin{control};
    std::optional<tcp::acceptor> http_acceptor;
    Metrics metrics;
    std::shared_ptr<identity::IdentityProvider> idp;
    std::atomic<std::uint64_t> active_sessions{0};
    std::shared_ptr<postgres::Services> pg;
    std::shared_ptr<ssh::Services> sshs;
    std::shared_ptr<Notifier> notifier;
    std::shared_ptr<breakglass::Service> bg;
    std::shared_ptr<rotation::Worker> rotator;
    std::unique_ptr<cluster::Registry> registry;
    std::unique_ptr<cluster::RecordingShipper> shipper;  ///< only with a shared store
    std::vector<session::SessionRecord> orphaned_breakglass;  ///< open break-glass sessions of a previous run
    session::TimePoint started = now();
    bool stopping = false;

    explicit Impl(const config::Config& c) : cfg(c), state(c.server.state_dir, c.server.master_key_path()) {
        // Each session holds two sockets and a recording file: use the whole hard limit.
        rlimit rl{};
        if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            ::setrlimit(RLIMIT_NOFILE, &rl);
        }
        // Index rows and audit events that cannot be written (state directory full, shared store down)
        // wait in memory, in order, instead of being lost (docs/architecture.md, "State directory full").
        store = with_write_backlog(open_configured_store(cfg, state));
        refuse_if_running();  // before the listeners: "port in use" would hide the real cause
        if (cfg.listen.postgres && cfg.tls) check_tls_files(*cfg.tls);
        if (cfg.listen.postgres) {
            pg_acceptor.emplace(control);
            bind_acceptor(*pg_acceptor, *cfg.listen.postgres, "postgres listener");
        }
        if (cfg.listen.ssh) {
            ssh_acceptor.emplace(control);
            bind_acceptor(*ssh_acceptor, *cfg.listen.ssh, "ssh listener");
        }
        if (cfg.admin.listen) {
            http_acceptor.emplace(control);
            bind_acceptor(*http_acceptor, *cfg.admin.listen, "admin HTTP listener");
        }
        open_admin_socket();
        metrics.declare("glassgate_sessions_active", Metrics::Type::gauge, "Sessions currently open.");
        metrics.set("glassgate_sessions_active", {}, 0);
        identity::declare_metrics(metrics);
        if (cfg.idp) idp = std::make_shared<identity::IdentityProvider>(asio::make_strand(io), *cfg.idp, *store, metrics);
        recordings = std::make_unique<RecordingService>(state.recordings_dir(), state.recording_key(),
                                                        RecordingService::Options{.buffer_bytes = cfg.server.recording_buffer_bytes,
                                                                                  .signing_seed = state.signing_seed()});
        StorageGuard::declare_metrics(metrics);
        storage = std::make_shared<StorageGuard>(
            *store, metrics, std::vector<std::filesystem::path>{state.recordings_dir(), state.store_file().parent_path()},
            cfg.server.min_free_bytes);
        storage->update_metrics();
        if (cfg.store.postgres) start_registry();  // one instance on the embedded store needs none
        DescriptorBudget::declare_metrics(metrics);
        descriptors = std::make_shared<DescriptorBudget>(metrics);  // listeners, store and log are open
        if (cfg.store.postgres) {
            // Before the orphans are closed: the recordings of a previous run are shipped first, so that
            // an instance that crashed makes its last checkpoints readable everywhere when it returns.
            cluster::RecordingShipper::declare_metrics(metrics);
            shipper = std::make_unique<cluster::RecordingShipper>(*store, metrics, cluster::RecordingShipper::Options{});
            shipper->adopt_existing(state.recordings_dir());
        }
        close_orphaned_sessions();
        if (pg_acceptor) {
            postgres::declare_metrics(metrics);
            std::shared_ptr<asio::ssl::context> tls;
            if (cfg.tls) tls = postgres::make_client_tls(*cfg.tls);
            pg = std::shared_ptr<postgres::Services>(new postgres::Services{
                cfg, *store, state.secrets_key(), *recordings, idp, metrics, tls, active_sessions, {}, cfg.listen.postgres_auth_timeout});
            pg->pool = postgres::make_backend_pool(&metrics);
            pg->storage = storage;
            pg->descriptors = descriptors;
            pg->shipper = shipper.get();
            if (cfg.store.postgres) {
                pg->cross_instance = postgres::Services::CrossInstanceCancel{
                    cfg.server.instance, crypto::hkdf_sha256(state.secrets_key(), "glassgate cancel tag v1", 32),
                    asio::make_strand(*pg->blocking)};
            }
        }
        if (ssh_acceptor) {
            auto pool = pg ? pg->blocking : std::make_shared<asio::thread_pool>(2);
            sshs = ssh::make_services(cfg, *store, state.secrets_key(), *recordings, idp, metrics, active_sessions, pool);
            sshs->storage = storage;
            sshs->descriptors = descriptors;
            sshs->shipper = shipper.get();
            if (cfg.store.postgres) sshs->approvals.share_through(store.get());
        }
        start_breakglass();
    }

    /// Break-glass authenticator, webhook notifier and the rotation worker (pending jobs rerun at start).
    void start_breakglass() {
        declare_alert_metrics(metrics);
        breakglass::declare_metrics(metrics);
        rotation::declare_metrics(metrics);
        Notifier::Options alert_opts;
        if (cfg.store.postgres) alert_opts.instance = cfg.server.instance;
        notifier = std::make_shared<Notifier>(asio::make_strand(io), metrics, alert_opts);
        auto pool = pg ? pg->blocking : std::make_shared<asio::thread_pool>(2);
        bg = std::make_shared<breakglass::Service>(cfg, *store, idp, metrics, notifier, pool);
        rotator = std::make_shared<rotation::Worker>(asio::make_strand(io), pool, cfg, *store, state.secrets_key(), metrics,
                                                     notifier);
        rotator->set_rotator(config::Protocol::ssh, ssh::backend_key_rotator());
        if (pg) {
            pg->breakglass = bg;
            rotator->set_keep_pids([p = pg.get()](const std::string&) { return p->cancels.backend_pids(); });
        }
        if (sshs) sshs->breakglass = bg;
        bg->set_on_rotation_queued([w = std::weak_ptr<rotation::Worker>(rotator)] {
            if (auto r = w.lock()) r->poke();
        });
        for (const auto& r : orphaned_breakglass) bg->recover_session(r, now());
    }

    /// A live admin socket means another serve owns this state; a dead one is left over from a crash.
    void refuse_if_running() {
        const auto& path = cfg.server.admin_socket;
        if (path.native().size() >= sizeof(sockaddr_un::sun_path)) {
            throw OperationalError("admin socket path " + path.string() + " is too long for a Unix socket (max " +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
        }
        std::error_code fec;
        if (std::filesystem::exists(path, fec)) {
            local_stream::socket probe(io);
            boost::system::error_code ec;
            probe.connect(local_stream::endpoint(path.string()), ec);
            if (!ec) throw OperationalError("another glassgate serve is running (admin socket " + path.string() + " answers)");
        }
    }

    void open_admin_socket() {
        const auto& path = cfg.server.admin_socket;
        std::error_code fec;
        std::filesystem::create_directories(path.parent_path(), fec);
        std::filesystem::remove(path, fec);  // refuse_if_running() found it dead
        boost::system::error_code ec;
        const mode_t old = ::umask(0077);
        admin.open(local_stream(), ec);
        if (!ec) admin.bind(local_stream::endpoint(path.string()), ec);
        ::umask(old);
        if (!ec) admin.listen(16, ec);
        if (ec) throw OperationalError("cannot create admin socket " + path.string() + ": " + ec.message());
    }

    /// What the recording of an interrupted session proves: read and verified up to its last
    /// checkpoint (a file cut by kill -9 reads up to its last whole event). Another instance's session
    /// is read from what that instance shipped into the store.
    std::pair<std::string, std::uint64_t> verify_interrupted_recording(const session::SessionRecord& r) const {
        if (r.recording.empty()) return {"no recording (the session had not started recording)", 0};
        session::RecordingReader reader(state.recording_key());
        std::string where;
        try {
            where = read_session_recording(state.recordings_dir(), *store, r,
                                           [&](std::string_view b) { reader.feed(as_bytes(b)); })
                        .where;
        } catch (const std::exception& e) {
            return {std::string("recording cannot be read: ") + e.what(), 0};
        }
        const auto rep = reader.finish();
        return {"recording (" + where + ") " + rep.summary(), rep.authenticated_events};
    }

    /// Sessions still open in the index whose instance stopped without closing them (crash, kill -9,
    /// power loss): each is closed as interrupted (proxy_restarted), its recording verified up to its
    /// last checkpoint, and session.end audited with outcome "interrupted". `instance`: only that
    /// instance's sessions (a shared store); nothing: all (the embedded store has one instance).
    /// Returns the break-glass sessions among them (their accounts are used, their rotations due).
    std::vector<session::SessionRecord> close_interrupted_sessions(const std::optional<std::string>& instance,
                                                                    const std::string& by, const std::string& cause) {
        std::vector<session::SessionRecord> breakglass;
        for (auto state_v : {session::State::authenticating, session::State::connecting, session::State::active,
                             session::State::closing}) {
            SessionFilter f;
            f.state = state_v;
            f.instance = instance;
            for (auto r : store->list_sessions(f)) {
                const auto [recording, authenticated] = verify_interrupted_recording(r);
                r.state = session::State::closed;
                r.close_reason = session::CloseReason::proxy_restarted;
                r.close_detail = "interrupted: " + by + " while this session was " +
                                 std::string(session::to_string(state_v)) + " (" + cause + "); " + recording;
                r.ended = now();
                if (r.auth == session::AuthMethod::breakglass) breakglass.push_back(r);
                session::AuditEvent ev{.time = now(), .type = "session.end", .session_id = r.id, .identity = r.identity,
                                       .target = r.target, .source = r.client_address, .outcome = "interrupted",
                                       .reason = "proxy_restarted: " + by + " while the session was open",
                                       .details = {{"auth", std::string(session::to_string(r.auth))},
                                                   {"state", std::string(session::to_string(state_v))},
                                                   {"instance", r.instance},
                                                   {"closed_by", cfg.server.instance},
                                                   {"recording", r.recording},
                                                   {"recording_check", recording},
                                                   {"authenticated_events", authenticated}}};
                store->save_session_and_audit(r, ev);
                spdlog::warn("session {}{} was {} when {}; closed as interrupted ({})", r.id,
                             r.instance.empty() ? "" : " of instance " + r.instance, session::to_string(state_v), by,
                             recording);
            }
        }
        return breakglass;
    }

    /// This instance's sessions left open by its previous run.
    void close_orphaned_sessions() {
        std::optional<std::string> mine;
        if (cfg.store.postgres) {
            mine = cfg.server.instance;  // the others' are theirs (or their reaper's)
            postgres::forget_cancel_keys(*store, cfg.server.instance);
        }
        orphaned_breakglass = close_interrupted_sessions(mine, "the proxy stopped", "crash or kill");
    }

    /// Registers this instance in the store and starts its heartbeat; a dead instance's sessions are
    /// closed here (docs/ha.md, "Instances").
    void start_registry() {
        cluster::Registry::declare_metrics(metrics);
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        cluster::InstanceInfo self;
        self.id = cfg.server.instance;
        self.host = host;
        self.state_dir = std::filesystem::absolute(state.root()).lexically_normal().string();
        self.version = GG_VERSION;
        self.pid = ::getpid();
        self.started = started;
        if (cfg.listen.postgres) {
            // Where the other instances relay cancel requests: a wildcard listener is reached by host name.
            auto a = *cfg.listen.postgres;
            if (a.host == "0.0.0.0" || a.host == "::" || a.host == "[::]" || a.host.empty()) a.host = self.host;
            self.postgres_listen = a.to_string();
        }
        cluster::Registry::Options opts;
        opts.dead_after = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.server.instance_timeout);
        registry = std::make_unique<cluster::Registry>(*store, metrics, std::move(self), opts);
        try {
            registry->join();
        } catch (const StoreError& e) {
            throw OperationalError(e.what());
        }
        storage->set_store_check([r = registry.get()]() -> std::optional<std::string> {
            if (r->store_reachable()) return std::nullopt;
            return r->last_error();
        });
    }

    void run_registry() {
        registry->start(
            [this] {
                cluster::Registry::Live l;
                if (idp) {
                    static constexpr const char* names[] = {"unknown", "healthy", "degraded", "unreachable"};
                    l.idp = names[static_cast<int>(idp->health().state)];
                }
                l.active_sessions = active_sessions.load();
                return l;
            },
            [this](const std::string& dead) {
                auto bgs = close_interrupted_sessions(dead, "instance " + dead + " stopped sending heartbeats",
                                                      "crash, kill or lost host");
                for (const auto& r : bgs) bg->recover_session(r, now());
                postgres::forget_cancel_keys(*store, dead);
                store->append_audit({.time = now(), .type = "instance.down", .session_id = {}, .identity = {},
                                     .target = {}, .source = {}, .outcome = "ok",
                                     .reason = "no heartbeat from instance " + dead + "; its open sessions were closed",
                                     .details = {{"instance", dead}, {"closed_by", cfg.server.instance},
                                                 {"breakglass_sessions", bgs.size()}}});
            });
    }

    asio::awaitable<void> accept_loop(tcp::acceptor& acc, std::string_view what) {
        for (;;) {
            // One strand per connection (both legs, timers and the watchdog of a session), or the
            // io_context itself when it runs on one thread.
            const auto conn_ex = single_io_thread ? asio::any_io_executor(io.get_executor())
                                                  : asio::any_io_executor(asio::make_strand(io));
            auto [ec, sock] = co_await acc.async_accept(conn_ex, asio::as_tuple(asio::use_awaitable));
            if (ec == asio::error::operation_aborted || stopping) co_return;
            if (ec) {
                spdlog::warn("{} accept failed: {}", what, ec.message());
                continue;
            }
            if (what == "postgres" && pg) {
                asio::co_spawn(conn_ex, postgres::handle_client(std::move(sock), pg), logging::LogEscaped{"postgres connection"});
                continue;
            }
            if (what == "ssh" && sshs) {
                asio::co_spawn(conn_ex, ssh::handle_client(std::move(sock), sshs), logging::LogEscaped{"ssh connection"});
                continue;
            }
            boost::system::error_code pec;
            auto peer = sock.remote_endpoint(pec);
            spdlog::warn("{} connection from {} closed: proxying over this protocol is not available in this version",
                         what, pec ? std::string("?") : peer.address().to_string() + ":" + std::to_string(peer.port()));
            sock.close(pec);
        }
    }

    asio::awaitable<void> admin_loop() {
        for (;;) {
            auto [ec, sock] = co_await admin.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec == asio::error::operation_aborted || stopping) co_return;
            if (ec) continue;
            asio::co_spawn(asio::make_strand(io), admin_client(std::move(sock)), logging::LogEscaped{"admin socket client"});
        }
    }

    /// Admin protocol: one JSON request per line, one JSON answer per line.
    asio::awaitable<void> admin_client(local_stream::socket sock) {
        std::string buf;
        for (;;) {
            auto [ec, n] = co_await asio::async_read_until(sock, asio::dynamic_buffer(buf, 64 * 1024), '\n',
                                                            asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            std::string line = buf.substr(0, n - 1);
            buf.erase(0, n);
            boost::json::object reply;
            boost::system::error_code jec;
            auto req = boost::json::parse(line, jec);
            const boost::json::string* cmd = nullptr;
            if (!jec && req.is_object()) {
                if (auto* c = req.as_object().if_contains("cmd"); c && c->is_string()) cmd = &c->as_string();
            }
            if (!cmd) {
                reply = {{"ok", false}, {"error", "expected {\"cmd\": ...}"}};
            } else if (*cmd == "ping") {
                reply = {{"ok", true}, {"version", GG_VERSION}, {"pid", ::getpid()},
                         {"started", session::format_utc(started)}};
            } else if (*cmd == "status") {
                reply = status_json();
            } else {
                reply = {{"ok", false}, {"error", "unknown command '" + std::string(*cmd) + "'"}};
            }
            std::string out = boost::json::serialize(reply) + "\n";
            auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
            (void)wn;
            if (wec) co_return;
        }
    }

    static std::string iso(std::chrono::system_clock::time_point t) {
        return session::format_utc(std::chrono::time_point_cast<std::chrono::microseconds>(t));
    }

    boost::json::object status_json() const {
        boost::json::object o{{"ok", true}, {"version", GG_VERSION}, {"pid", ::getpid()},
                              {"started", session::format_utc(started)},
                              {"active_sessions", active_sessions.load()}};
        if (idp) {
            auto h = idp->health();
            static constexpr const char* names[] = {"unknown", "healthy", "degraded", "unreachable"};
            boost::json::object i{{"issuer", idp->config().issuer},
                                  {"state", names[static_cast<int>(h.state)]},
                                  {"since", iso(h.since)},
                                  {"consecutive_failures", h.consecutive_failures},
                                  {"cached_keys", h.cached_keys}};
            if (h.last_probe_at) {
                i["last_probe"] = boost::json::object{{"at", iso(*h.last_probe_at)}, {"ok", h.last_probe_ok},
                                                      {"evidence", h.last_probe_evidence}};
            } else {
                i["last_probe"] = nullptr;
            }
            i["jwks_fetched_at"] = h.jwks_fetched_at ? boost::json::value(iso(*h.jwks_fetched_at)) : boost::json::value(nullptr);
            o["idp"] = std::move(i);
        } else {
            o["idp"] = nullptr;
        }
        const auto m = bg->mode(now());
        o["mode"] = m.name();
        o["mode_reason"] = m.reason();
        o["declaration"] = m.declaration ? boost::json::value(session::breakglass::to_json(*m.declaration))
                                         : boost::json::value(nullptr);
        boost::json::array pending;
        try {
            for (const auto& j : rotation::pending_jobs(*store)) pending.push_back(rotation::to_json(j, false));
        } catch (const std::exception& e) {
            spdlog::error("status: cannot list rotation jobs: {}", e.what());
        }
        o["rotation_pending"] = std::move(pending);
        o["instance"] = cfg.server.instance;
        if (shipper) {
            const auto sh = shipper->status();
            o["recordings_unshipped"] = boost::json::object{
                {"count", sh.unshipped}, {"failing", sh.failing}, {"failures", sh.failures}, {"last_error", sh.last_error}};
        }
        boost::json::array instances;
        try {
            for (const auto& i : cluster::list_instances(*store)) instances.push_back(cluster::to_json(i));
        } catch (const std::exception& e) {
            spdlog::error("status: cannot list instances: {}", e.what());
        }
        o["instances"] = std::move(instances);
        const auto b = store->backlog_status();
        o["store_backlog"] = boost::json::object{{"queued", b.queued},
                                                 {"audit_events", b.audit_events},
                                                 {"limit", b.limit},
                                                 {"write_failures", b.write_failures},
                                                 {"dropped", b.dropped},
                                                 {"last_error", b.last_error}};
        return o;
    }

    /// Admin HTTP: GET /metrics (Prometheus text) and GET /healthz.
    asio::awaitable<void> http_loop() {
        for (;;) {
            auto [ec, sock] = co_await http_acceptor->async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec == asio::error::operation_aborted || stopping) co_return;
            if (ec) continue;
            asio::co_spawn(asio::make_strand(io), http_client(std::move(sock)), logging::LogEscaped{"admin HTTP client"});
        }
    }

    asio::awaitable<void> http_client(tcp::socket sock) {
        namespace beast = boost::beast;
        namespace bhttp = beast::http;
        beast::tcp_stream stream(std::move(sock));
        beast::flat_buffer buf;
        for (;;) {
            bhttp::request_parser<bhttp::empty_body> parser;
            parser.header_limit(8192);
            stream.expires_after(std::chrono::seconds(10));
            auto [ec, n] = co_await bhttp::async_read(stream, buf, parser, asio::as_tuple(asio::use_awaitable));
            (void)n;
            if (ec) co_return;
            const auto& req = parser.get();
            bhttp::response<bhttp::string_body> res;
            res.version(req.version());
            res.keep_alive(req.keep_alive());
            const auto target = std::string_view(req.target().data(), req.target().size());
            if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
                res.result(bhttp::status::method_not_allowed);
                res.body() = "method not allowed\n";
            } else if (target == "/metrics") {
                res.result(bhttp::status::ok);
                res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
                if (storage) storage->update_metrics();
                res.body() = metrics.render();
            } else if (target == "/healthz") {
                res.result(bhttp::status::ok);
                res.set(bhttp::field::content_type, "text/plain");
                res.body() = "ok\n";
            } else {
                res.result(bhttp::status::not_found);
                res.body() = "not found\n";
            }
            res.prepare_payload();
            auto [wec, wn] = co_await bhttp::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            (void)wn;
            if (wec || !res.keep_alive()) co_return;
        }
    }

    void shutdown() {
        if (stopping) return;
        stopping = true;
        spdlog::info("stopping: no new connections");
        boost::system::error_code ec;
        if (pg_acceptor) pg_acceptor->close(ec);
        if (ssh_acceptor) ssh_acceptor->close(ec);
        admin.close(ec);
        if (http_acceptor) http_acceptor->close(ec);
        if (idp) idp->stop();
        if (bg) bg->stop();
        if (rotator) rotator->stop();
        if (notifier) notifier->stop();
        signals.cancel(ec);
        if (sshs) sshs->stopping = true;
        if (pg || sshs) {
            if (pg) {
                pg->stopping = true;
                postgres::stop_backend_pool(*pg->pool);
            }
            // Sessions get shutdown_grace to finish on their own, then are ended with a FATAL message.
            asio::co_spawn(control, [this]() -> asio::awaitable<void> {
                asio::steady_timer t(control);
                const auto until = std::chrono::steady_clock::now() + cfg.server.shutdown_grace;
                while (active_sessions.load() > 0 && std::chrono::steady_clock::now() < until) {
                    t.expires_after(std::chrono::milliseconds(100));
                    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                }
                if (active_sessions.load() > 0) {
                    spdlog::warn("ending {} session(s) still open after the shutdown grace period", active_sessions.load());
                    if (pg) pg->close_all("glassgate is shutting down");
                    if (sshs) sshs->close_all("glassgate is shutting down");
                }
            }, logging::LogEscaped{"shutdown"});
        }
    }
};

Server::Server(const config::Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Server::~Server() {
    if (impl_) {
        std::error_code ec;
        std::filesystem::remove(impl_->cfg.server.admin_socket, ec);
    }
}

int Server::run() {
    auto& d = *impl_;
    d.signals.async_wait([&d](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        spdlog::info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
        d.shutdown();
    });
    std::string listening;
    if (d.pg_acceptor) {
        asio::co_spawn(d.control, d.accept_loop(*d.pg_acceptor, "postgres"), logging::LogEscaped{"postgres listener"});
        listening += " postgres " + d.cfg.listen.postgres->to_string();
    }
    if (d.ssh_acceptor) {
        asio::co_spawn(d.control, d.accept_loop(*d.ssh_acceptor, "ssh"), logging::LogEscaped{"ssh listener"});
        listening += " ssh " + d.cfg.listen.ssh->to_string();
    }
    asio::co_spawn(d.control, d.admin_loop(), logging::LogEscaped{"admin socket"});
    if (d.http_acceptor) {
        asio::co_spawn(d.control, d.http_loop(), logging::LogEscaped{"admin HTTP listener"});
        listening += " admin-http " + d.cfg.admin.listen->to_string();
    }
    if (d.idp) d.idp->start();
    d.bg->start_mode_watch(d.control);
    d.rotator->start();
    if (d.registry) d.run_registry();
    if (d.shipper) d.shipper->start();

    boost::json::object details{{"version", GG_VERSION}, {"pid", ::getpid()}, {"config", d.cfg.source.string()}};
    d.store->append_audit({.time = now(), .type = "proxy.start", .session_id = {}, .identity = {}, .target = {},
                           .source = {}, .outcome = "ok", .reason = {}, .details = details});
    spdlog::info("glassgate {} serving:{} admin {} (state {})", GG_VERSION, listening, d.cfg.server.admin_socket.string(),
                 d.state.root().string());
    // Sessions are strands of their own, so the io_context may run on several threads; this version
    // runs one (GLASSGATE_IO_THREADS overrides it) until a use-after-free seen under several threads
    // in the PostgreSQL path is found. Blocking work (sealing) runs on a separate pool either way.
    unsigned threads = 1;
    if (const char* t = std::getenv("GLASSGATE_IO_THREADS"); t && *t) {
        threads = std::clamp(static_cast<unsigned>(std::strtoul(t, nullptr, 10)), 1u, 16u);
    }
    d.single_io_thread = threads == 1;
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&d] { d.io.run(); });
    d.io.run();
    for (auto& t : pool) t.join();
    d.recordings.reset();  // flushes and seals what is left
    if (d.shipper) d.shipper->stop();  // one last pass; the rest is shipped by the next start
    if (d.registry) d.registry->leave();
    d.store->append_audit({.time = now(), .type = "proxy.stop", .session_id = {}, .identity = {}, .target = {},
                           .source = {}, .outcome = "ok", .reason = {}, .details = {}});
    spdlog::info("stopped");
    return 0;
}

void Server::stop() {
    asio::post(impl_->control, [this] { impl_->shutdown(); });
}

}  // namespace gg::proxy
