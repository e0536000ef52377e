#include "glassgate/proxy/ssh/ssh_proxy.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <openssl/crypto.h>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <list>

#include "glassgate/config/loader.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"
#include "glassgate/protocols/ssh/sftp.hpp"
#include "glassgate/proxy/breakglass/breakglass.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/session/policy.hpp"
#include "../lifecycle/session_scope.hpp"

// libssh 0.10 marks the message accessors for pty size and public keys deprecated in favour of
// server callbacks, which cannot hold a request while the backend answers it. The accessors are
// still the supported way with the message API.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace gg::proxy::ssh {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using session::CloseReason;
using session::Direction;
using session::EventKind;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;

struct Services::Bind {
    ssh_bind bind = nullptr;
    std::mutex mu;
    ~Bind() {
        if (bind) ssh_bind_free(bind);
    }
};

// ---------------------------------------------------------------------------------------------
// AuthThrottle / ApprovalCache

std::chrono::seconds AuthThrottle::wait_for(const std::string& source, steady::time_point now) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(source);
    if (it == entries_.end() || it->second.blocked_until <= now) return 0s;
    return std::chrono::duration_cast<std::chrono::seconds>(it->second.blocked_until - now) + 1s;
}

void AuthThrottle::failure(const std::string& source, steady::time_point now) {
    std::lock_guard lk(mu_);
    auto& e = entries_[source];
    if (now - e.last > 10min) e.failures = 0;  // an old streak is forgotten
    e.last = now;
    ++e.failures;
    if (e.failures >= max_) {
        const int extra = std::min(e.failures - max_, 8);
        const auto wait = std::min<std::chrono::seconds>(std::chrono::seconds(5) * (1 << extra), 300s);
        e.blocked_until = now + wait;
    }
    if (entries_.size() > 100000) entries_.clear();  // bounded under a distributed attack
}

void AuthThrottle::success(const std::string& source) {
    std::lock_guard lk(mu_);
    entries_.erase(source);
}

void ApprovalCache::put(const std::string& key_fingerprint, Entry e) {
    std::lock_guard lk(mu_);
    entries_[key_fingerprint] = std::move(e);
    if (entries_.size() > 100000) entries_.erase(entries_.begin());
}

std::optional<ApprovalCache::Entry> ApprovalCache::find(const std::string& key_fingerprint, steady::time_point now) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(key_fingerprint);
    if (it == entries_.end()) return std::nullopt;
    if (it->second.expires <= now) {
        entries_.erase(it);
        return std::nullopt;
    }
    return it->second;
}

// ---------------------------------------------------------------------------------------------
// Services

Services::Services(const config::Config& c, StateStore& s, Bytes key, RecordingService& r,
                   std::shared_ptr<identity::IdentityProvider> i, Metrics& m, std::atomic<std::uint64_t>& a,
                   std::shared_ptr<asio::thread_pool> b)
    : cfg(c), store(s), secrets_key(std::move(key)), recordings(r), idp(std::move(i)), metrics(m), active_sessions(a),
      blocking(std::move(b)), throttle(c.ssh.max_auth_failures), bind(std::make_unique<Bind>()) {}

Services::~Services() = default;

namespace {

std::string key_fingerprint(ssh_key key) {
    unsigned char* hash = nullptr;
    size_t len = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != 0) return {};
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    ssh_clean_pubkey_hash(&hash);
    std::string out = fp ? fp : "";
    ssh_string_free_char(fp);
    return out;
}

std::string public_key_line(ssh_key key) {
    char* b64 = nullptr;
    if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK || !b64) return {};
    std::string out = std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " + b64;
    ssh_string_free_char(b64);
    return out;
}

ssh_key load_or_create_host_key(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        std::filesystem::create_directories(path.parent_path(), ec);
        ssh_key key = nullptr;
        if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
            throw OperationalError("cannot generate an Ed25519 SSH host key");
        }
        const mode_t old = ::umask(0077);
        const int rc = ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, path.c_str());
        ::umask(old);
        ssh_key_free(key);
        if (rc != SSH_OK) throw OperationalError("cannot write the SSH host key " + path.string());
        ::chmod(path.c_str(), 0600);
        spdlog::info("ssh: generated a new Ed25519 host key in {}", path.string());
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw OperationalError("cannot read the SSH host key " + path.string());
    if ((st.st_mode & 077) != 0) {
        throw OperationalError("SSH host key " + path.string() + " is readable by group or others (chmod 600 it)");
    }
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK) {
        throw OperationalError("cannot load the SSH host key " + path.string() + " (expected an OpenSSH private key)");
    }
    return key;
}

}  // namespace

std::unique_ptr<Services> make_services(const config::Config& cfg, StateStore& store, Bytes secrets_key,
                                        RecordingService& recordings, std::shared_ptr<identity::IdentityProvider> idp,
                                        Metrics& metrics, std::atomic<std::uint64_t>& active_sessions,
                                        std::shared_ptr<asio::thread_pool> blocking) {
    auto svc = std::make_unique<Services>(cfg, store, std::move(secrets_key), recordings, std::move(idp), metrics,
                                          active_sessions, std::move(blocking));
    const auto path = cfg.ssh.host_key.value_or(cfg.server.state_dir / "ssh_host_ed25519_key");
    ssh_key key = load_or_create_host_key(path);
    svc->host_key_fingerprint = key_fingerprint(key);
    svc->bind->bind = ssh_bind_new();
    if (!svc->bind->bind) {
        ssh_key_free(key);
        throw OperationalError("cannot create the SSH listener state");
    }
    bool process_config = false;
    int verbosity = SSH_LOG_NOLOG;
    ssh_bind_options_set(svc->bind->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &process_config);
    ssh_bind_options_set(svc->bind->bind, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity);
    // The bind owns the key from here.
    if (ssh_bind_options_set(svc->bind->bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) != SSH_OK) {
        throw OperationalError("cannot use the SSH host key " + path.string() + ": " +
                               ssh_get_error(svc->bind->bind));
    }
    metrics.declare("glassgate_ssh_auth_total", Metrics::Type::counter, "SSH sign-in attempts by method and outcome.");
    spdlog::info("ssh: host key {} ({})", svc->host_key_fingerprint, path.string());
    return svc;
}

// ---------------------------------------------------------------------------------------------
// One proxied connection

namespace {

/// A byte queue with a read offset (compacted lazily): the pending data of one relay direction.
class Pending {
public:
    [[nodiscard]] std::size_t size() const noexcept { return buf_.size() - off_; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] const char* data() const noexcept { return buf_.data() + off_; }
    void append(const char* p, std::size_t n) {
        if (off_ > 0 && off_ >= buf_.size() / 2) {
            buf_.erase(0, off_);
            off_ = 0;
        }
        buf_.append(p, n);
    }
    void consume(std::size_t n) noexcept {
        off_ += n;
        if (off_ == buf_.size()) {
            buf_.clear();
            off_ = 0;
        }
    }

private:
    std::string buf_;
    std::size_t off_ = 0;
};

constexpr std::size_t pending_cap = 256 * 1024;   // per direction, before we stop reading the source
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t unflushed_cap = 1u << 20;   // bytes handed to libssh while its socket is backed up
constexpr const char* backend_ciphers =
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";

enum class ChannelKind { session, direct_tcpip };
enum class Use { none, shell, exec, subsystem };

struct Pair {
    ChannelKind kind = ChannelKind::session;
    ssh_channel c = nullptr;  ///< the client's channel (server side)
    ssh_channel b = nullptr;  ///< the backend's channel (client side)
    bool b_open = false;
    bool b_opening = false;
    bool b_failed = false;
    std::string fwd_host;
    int fwd_port = 0;
    std::string orig_host;
    int orig_port = 0;
    std::deque<ssh_message> requests;  ///< client requests waiting for the backend, in order
    bool request_in_flight = false;
    bool pty = false;
    Use use = Use::none;
    std::deque<std::string> signals;
    Pending to_client, to_client_err, to_backend;
    bool c_eof_sent = false;  ///< EOF sent to the client
    bool b_eof_sent = false;  ///< EOF sent to the backend
    bool c_closed = false;    ///< we closed the client channel
    bool b_closed = false;    ///< we closed the backend channel
    bool c_remote_closed = false;  ///< the client sent CHANNEL_CLOSE
    bool b_remote_closed = false;  ///< the backend sent CHANNEL_CLOSE (libssh may keep the channel
                                   ///< "open" while data is buffered: the callback is the reliable sign)
    bool cutting = false;     ///< glassgate ends this channel (time cap, backend gone, shutdown)
    std::string cut_message;
    std::optional<int> exit_status;
    std::optional<session::ExitSignal> exit_signal;
    std::unique_ptr<gg::ssh::SftpObserver> sftp;  ///< set on sftp channels: operations are recorded, not bytes
    bool sftp_raw = false;                          ///< record the raw bytes too (record_sftp_contents, or unparseable)
    bool exit_sent = false;
    ssh_channel_callbacks_struct c_cb{};
    ssh_channel_callbacks_struct b_cb{};
    void* owner = nullptr;
};

bool allowed(const config::Target& t, const std::string& user, const std::vector<std::string>& groups) {
    return session::allow_list_admits(t.allow, user, groups);
}

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(tcp::socket sock, std::shared_ptr<Services> svc)
        : svc_(std::move(svc)), ex_(sock.get_executor()), sock_(std::move(sock)), wake_(ex_),
          scope_(SessionDeps{svc_->store, svc_->recordings, svc_->metrics, svc_->active_sessions, *svc_->blocking},
                 session::Protocol::ssh, peer_of(sock_)) {
        boost::system::error_code ec;
        auto ep = sock_.remote_endpoint(ec);
        peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
        peer_addr_ = ec ? "?" : ep.address().to_string();
        sock_.set_option(tcp::no_delay(true), ec);
    }
    ~Connection() { teardown(); }

    asio::awaitable<void> run();

private:
    static std::string peer_of(tcp::socket& s) {
        boost::system::error_code ec;
        auto ep = s.remote_endpoint(ec);
        return ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    }

    // --- readiness ---------------------------------------------------------------------------
    enum Wait { c_read, c_write, b_read, b_write, waits };
    void kick() {
        kicked_ = true;
        wake_.cancel();
    }
    void arm_one(asio::posix::stream_descriptor& d, Wait w, asio::posix::descriptor_base::wait_type type) {
        if (armed_[w]) return;
        armed_[w] = true;
        d.async_wait(type, asio::bind_executor(ex_, [self = shared_from_this(), w](const boost::system::error_code& ec) {
                         self->armed_[w] = false;
                         if (ec != asio::error::operation_aborted) self->kick();
                     }));
    }
    void arm() {
        if (cfd_) {
            arm_one(*cfd_, c_read, asio::posix::descriptor_base::wait_read);
            if (srv_ && (ssh_get_poll_flags(srv_) & SSH_WRITE_PENDING)) {
                arm_one(*cfd_, c_write, asio::posix::descriptor_base::wait_write);
            }
        }
        if (bfd_) {
            arm_one(*bfd_, b_read, asio::posix::descriptor_base::wait_read);
            if (be_ && (ssh_get_poll_flags(be_) & SSH_WRITE_PENDING)) {
                arm_one(*bfd_, b_write, asio::posix::descriptor_base::wait_write);
            }
        }
    }
    /// A level-triggered look at both sockets after arming: data that arrived before the waits were
    /// armed (and that libssh has not read yet) must not wait for a next edge that may never come.
    bool ready_now() {
        pollfd p[2]{};
        nfds_t n = 0;
        if (cfd_) {
            p[n].fd = cfd_->native_handle();
            p[n].events = static_cast<short>(POLLIN | ((ssh_get_poll_flags(srv_) & SSH_WRITE_PENDING) ? POLLOUT : 0));
            ++n;
        }
        if (bfd_ && be_) {
            p[n].fd = bfd_->native_handle();
            p[n].events = static_cast<short>(POLLIN | ((ssh_get_poll_flags(be_) & SSH_WRITE_PENDING) ? POLLOUT : 0));
            ++n;
        }
        if (n == 0 || ::poll(p, n, 0) <= 0) return false;
        for (nfds_t i = 0; i < n; ++i) {
            if (p[i].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)) return true;
        }
        return false;
    }
    /// Suspends until a socket is ready, a kick or `until`. A socket that stays ready while passes make
    /// no progress (libssh holding something back) gets a short sleep instead of a busy loop.
    asio::awaitable<void> wait(steady::time_point until) {
        arm();
        const bool ready = !kicked_ && ready_now();
        if (!kicked_ && (!ready || ++ready_spins_ > 4)) {
            if (ready) until = std::min(until, steady::now() + 2ms);
            wake_.expires_at(until);
            (void)co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        kicked_ = false;
    }
    /// Lets libssh read and write whatever its sockets have (incoming packets end up in channel
    /// buffers bounded by the windows we advertise). True if it processed anything.
    bool pump_sessions() {
        bool any = false;
        for (auto [ev, s] : {std::pair{&srv_ev_, srv_}, std::pair{&be_ev_, be_}}) {
            if (!s) continue;
            if (!*ev) {
                *ev = ssh_event_new();
                if (*ev && ssh_event_add_session(*ev, s) != SSH_OK) {  // fails until the session was polled once
                    ssh_event_free(*ev);
                    *ev = nullptr;
                }
                if (!*ev) continue;
            }
            for (int i = 0; i < 16 && ssh_event_dopoll(*ev, 0) == SSH_OK; ++i) any = true;
        }
        return any;
    }

    // --- the state machine -------------------------------------------------------------------
    bool step();
    bool step_messages();
    void handle_message(ssh_message m);
    void on_auth(ssh_message m);
    void on_publickey(ssh_message m);
    void on_kbd_start(ssh_message m);
    void on_kbd_response(ssh_message m);
    bool step_auth();
    void refuse_auth(ssh_message m, const std::string& user_message, const std::string& log_reason, bool counted = true);
    void on_breakglass_start(ssh_message m);
    void on_breakglass_response(ssh_message m);
    void finish_admit();
    void admit(ssh_message m, const std::string& identity, const std::vector<std::string>& groups,
               const std::string& method);
    void start_device_login();
    void on_channel_open(ssh_message m);
    void on_channel_request(ssh_message m);
    bool step_backend();
    bool step_pair(Pair& p);
    bool start_request(Pair& p, ssh_message m, bool& done);
    bool relay(Pair& p);
    bool check_time(steady::time_point now);
    void fail_backend(const std::string& why, const std::string& user_message);
    void cut_all(CloseReason why, const std::string& message);
    void end(CloseReason why, std::string detail) {
        if (reason_ == CloseReason::none) {
            reason_ = why;
            detail_ = std::move(detail);
        }
        ending_ = true;
    }
    bool record(EventKind kind, Direction dir, std::string_view bytes) {
        if (!scope_.opened()) return true;
        if (scope_.record(kind, dir, as_bytes(bytes))) return true;
        recording_failed();
        return false;
    }
    void annotate(const std::string& text) { (void)record(EventKind::annotation, Direction::none, text); }
    /// Channel data: on SFTP channels the file operations (and the bytes only when configured or
    /// when the stream cannot be parsed), elsewhere the bytes.
    bool record_data(Pair& p, bool sftp_stream, EventKind kind, Direction dir, std::string_view bytes) {
        if (p.sftp && sftp_stream) {
            if (!p.sftp->failed()) {
                sftp_events_.clear();
                if (dir == Direction::client_to_server) {
                    p.sftp->client_bytes(as_bytes(bytes), sftp_events_);
                } else {
                    p.sftp->server_bytes(as_bytes(bytes), sftp_events_);
                }
                for (const auto& e : sftp_events_) {
                    if (!record(EventKind::sftp, dir, e)) return false;
                }
                if (p.sftp->failed()) {
                    annotate("SFTP stream not parseable (" + p.sftp->failure() + "): raw bytes recorded from here");
                    p.sftp_raw = true;
                }
            }
            if (!p.sftp_raw) return true;
        }
        return record(kind, dir, bytes);
    }
    void recording_failed() {
        if (reason_ != CloseReason::none && reason_ != CloseReason::recording_failed) return;
        cut_all(CloseReason::recording_failed, "glassgate: recording failed, so the session is ended");
        end(CloseReason::recording_failed, "recording failed: " + scope_.recording_failure());
    }
    [[nodiscard]] bool client_gone() const {
        return srv_ && (ssh_get_status(srv_) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
    }
    [[nodiscard]] bool backend_gone() const {
        return be_ && backend_ready_ && (ssh_get_status(be_) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
    }
    Pair* find_pair(ssh_channel c) {
        for (auto& p : pairs_) {
            if (p->c == c) return p.get();
        }
        return nullptr;
    }
    void audit(std::string type, std::string outcome, std::string reason, boost::json::object details = {}) {
        if (scope_.opened()) {
            scope_.audit(std::move(type), std::move(outcome), std::move(reason), std::move(details));
            return;
        }
        write_audit(svc_->store, {{}, identity_, login_ ? login_->target : std::string(), peer_}, std::move(type),
                    std::move(outcome), std::move(reason), std::move(details));
    }
    void teardown();

    static void on_exit_status(ssh_session, ssh_channel, int status, void* user) {
        static_cast<Pair*>(user)->exit_status = status;
    }
    static void on_exit_signal(ssh_session, ssh_channel, const char* sig, int core, const char* msg, const char*,
                               void* user) {
        static_cast<Pair*>(user)->exit_signal = session::ExitSignal{sig ? sig : "", core != 0, msg ? msg : ""};
    }
    static void detach_callbacks(Pair& p) {
        if (p.c) ssh_remove_channel_callbacks(p.c, &p.c_cb);
        if (p.b) ssh_remove_channel_callbacks(p.b, &p.b_cb);
    }
    static void on_backend_close(ssh_session, ssh_channel, void* user) { static_cast<Pair*>(user)->b_remote_closed = true; }
    static void on_client_close(ssh_session, ssh_channel, void* user) { static_cast<Pair*>(user)->c_remote_closed = true; }
    static void on_client_signal(ssh_session, ssh_channel, const char* sig, void* user) {
        auto* p = static_cast<Pair*>(user);
        if (sig && p->signals.size() < 64) p->signals.emplace_back(sig);
    }
    static void on_agent_request(ssh_session, ssh_channel, void* user) {
        auto* p = static_cast<Pair*>(user);
        static_cast<Connection*>(p->owner)->annotate("agent forwarding request refused");
    }

    std::shared_ptr<Services> svc_;
    asio::any_io_executor ex_;
    tcp::socket sock_;
    asio::steady_timer wake_;
    bool kicked_ = false;
    bool armed_[waits] = {};
    // Asio waits on duplicates of the sockets libssh owns: libssh closes its descriptor when the peer
    // goes away, and a reused descriptor number must never be deregistered from under another socket.
    std::optional<asio::posix::stream_descriptor> cfd_;
    std::optional<asio::posix::stream_descriptor> bfd_;
    ssh_session srv_ = nullptr;
    ssh_session be_ = nullptr;
    ssh_event srv_ev_ = nullptr;
    ssh_event be_ev_ = nullptr;
    int ready_spins_ = 0;
    std::string peer_;
    std::string peer_addr_;
    SessionScope scope_;

    enum class Phase { kex, auth, open } phase_ = Phase::kex;
    bool ending_ = false;
    CloseReason reason_ = CloseReason::none;
    std::string detail_;
    steady::time_point grace_deadline_{};
    steady::time_point linger_deadline_ = steady::time_point::max();

    // authentication
    std::string login_user_;
    std::optional<gg::ssh::Login> login_;
    std::string login_problem_;
    const config::Target* target_ = nullptr;
    std::string identity_;
    std::string proven_key_fp_;  ///< a client key whose signature libssh verified
    enum class Kbd { none, waiting_prompt, prompted, bg_prompted, waiting_result, failing } kbd_ = Kbd::none;
    ssh_message admit_msg_ = nullptr;  ///< the approved sign-in, answered once the backend is ready
    std::string admit_method_;
    std::optional<breakglass::Decision> bg_decision_;
    std::optional<breakglass::Grant> grant_;  ///< the consumed emergency account of a break-glass session
    std::optional<std::chrono::milliseconds> cap_;
    std::chrono::milliseconds warn_{std::chrono::minutes(5)};
    std::string cap_source_;
    ssh_message held_ = nullptr;
    bool device_started_ = false;
    std::optional<std::string> device_url_;
    std::string device_code_;
    std::optional<identity::DeviceLoginResult> device_result_;
    std::string failing_reason_;

    // backend
    enum class Be { none, resolving, tcp_ready, connecting, authenticating, ready, failed } be_state_ = Be::none;
    bool backend_ready_ = false;
    int backend_fd_ = -1;
    bool be_connect_called_ = false;
    ssh_key be_key_ = nullptr;
    std::string be_password_;
    std::string be_error_user_;  ///< what the user is told about a failed backend
    steady::time_point be_deadline_ = steady::time_point::max();
    std::size_t c_unflushed_ = 0, b_unflushed_ = 0;

    std::list<std::unique_ptr<Pair>> pairs_;
    std::vector<std::string> sftp_events_;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
    steady::time_point last_activity_ = steady::now();
    std::optional<steady::time_point> deadline_;
    std::vector<std::pair<steady::time_point, std::string>> warnings_;
    std::size_t next_warning_ = 0;
    bool recording_backed_up_ = false;
    std::uint64_t closer_id_ = 0;
};

// --- run -------------------------------------------------------------------------------------

asio::awaitable<void> Connection::run() {
    svc_->metrics.inc("glassgate_connections_total", {{"protocol", "ssh"}});
    srv_ = ssh_new();
    if (!srv_) co_return;
    const int fd = sock_.release();
    int rc;
    {
        std::lock_guard lk(svc_->bind->mu);  // ssh_bind_accept_fd mutates the shared bind
        rc = ssh_bind_accept_fd(svc_->bind->bind, srv_, fd);
    }
    if (rc != SSH_OK) {
        spdlog::error("ssh {}: cannot start the SSH session: {}", peer_, ssh_get_error(svc_->bind->bind));
        ::close(fd);
        ssh_free(srv_);
        srv_ = nullptr;
        co_return;
    }
    ssh_set_blocking(srv_, 0);
    cfd_.emplace(ex_, ::dup(fd));
    grace_deadline_ = steady::now() + svc_->cfg.ssh.login_grace;
    {
        std::weak_ptr<Connection> weak = shared_from_this();
        closer_id_ = svc_->closers.add([weak, ex = ex_](std::string why) {
            asio::post(ex, [weak, why] {
                if (auto self = weak.lock()) {
                    self->cut_all(CloseReason::shutdown, "glassgate: " + why);
                    self->end(CloseReason::shutdown, why);
                    self->kick();
                }
            });
        });
    }

    int spins = 0;
    for (;;) {
        const bool progress = step();
        if (ending_ && steady::now() >= linger_deadline_) break;
        if (progress) {
            ready_spins_ = 0;
            if (++spins >= 64) {
                spins = 0;
                co_await asio::post(ex_, asio::use_awaitable);  // let other connections run
            }
            continue;
        }
        spins = 0;
        auto until = steady::now() + 1s;
        if (recording_backed_up_) {  // the writer does not wake us: look again soon
            recording_backed_up_ = false;
            until = steady::now() + 5ms;
        }
        if (ending_) until = std::min(until, linger_deadline_);
        if (phase_ != Phase::open && kbd_ == Kbd::none) until = std::min(until, grace_deadline_);
        until = std::min(until, be_deadline_);
        if (deadline_) until = std::min(until, *deadline_);
        if (next_warning_ < warnings_.size()) until = std::min(until, warnings_[next_warning_].first);
        if (target_ && target_->idle_timeout && phase_ == Phase::open) {
            until = std::min(until, last_activity_ + *target_->idle_timeout);
        }
        const auto slept_from = steady::now();
        co_await wait(until);
        if (scope_.opened() && steady::now() - slept_from >= 900ms && scope_.log().should_log(spdlog::level::trace)) {
            for (const auto& p : pairs_) {
                scope_.log().trace(
                    "idle channel: b_open={} c_closed={} c_rclosed={} c_isclosed={} b_closed={} b_rclosed={} b_isclosed={} "
                    "b_eof={} c_eof={} out={} err={} in={} eof_sent c={} b={} exit={} reqs={} poll={}/{} flags={:#x}/{:#x}",
                    p->b_open, p->c_closed, p->c_remote_closed, ssh_channel_is_closed(p->c), p->b_closed, p->b_remote_closed,
                    p->b ? ssh_channel_is_closed(p->b) : -1, p->b ? ssh_channel_is_eof(p->b) : -1, ssh_channel_is_eof(p->c),
                    p->to_client.size(), p->to_client_err.size(), p->to_backend.size(), p->c_eof_sent, p->b_eof_sent,
                    p->exit_status.value_or(-1), p->requests.size(), p->b ? ssh_channel_poll(p->b, 0) : -9,
                    p->b ? ssh_channel_poll(p->b, 1) : -9, ssh_get_poll_flags(srv_), be_ ? ssh_get_poll_flags(be_) : 0);
            }
        }
    }
    svc_->closers.remove(closer_id_);
    const auto why = reason_ == CloseReason::none ? CloseReason::client_disconnect : reason_;
    if (scope_.opened()) {
        co_await scope_.close(why, detail_, bytes_in_, bytes_out_);
    }
    if (grant_) {
        svc_->breakglass->session_closed(*grant_, session::to_string(why), session::TimePoint(
            std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now())));
    }
    teardown();
}

void Connection::teardown() {
    // Asio's duplicates first (closing them cancels the waits), then libssh's sessions.
    boost::system::error_code ec;
    if (cfd_) {
        cfd_->close(ec);
        cfd_.reset();
    }
    if (bfd_) {
        bfd_->close(ec);
        bfd_.reset();
    }
    if (srv_ev_) {
        if (srv_) ssh_event_remove_session(srv_ev_, srv_);
        ssh_event_free(srv_ev_);
        srv_ev_ = nullptr;
    }
    if (be_ev_) {
        if (be_) ssh_event_remove_session(be_ev_, be_);
        ssh_event_free(be_ev_);
        be_ev_ = nullptr;
    }
    if (held_) {
        ssh_message_free(held_);
        held_ = nullptr;
    }
    if (admit_msg_) {
        ssh_message_free(admit_msg_);
        admit_msg_ = nullptr;
    }
    for (auto& p : pairs_) {
        for (auto* m : p->requests) ssh_message_free(m);
        p->requests.clear();
        detach_callbacks(*p);
    }
    pairs_.clear();  // channels are freed with their sessions
    if (be_) {
        ssh_disconnect(be_);
        ssh_free(be_);
        be_ = nullptr;
    } else if (backend_fd_ >= 0) {
        ::close(backend_fd_);
    }
    backend_fd_ = -1;
    if (srv_) {
        ssh_disconnect(srv_);
        ssh_free(srv_);
        srv_ = nullptr;
    }
    if (be_key_) {
        ssh_key_free(be_key_);
        be_key_ = nullptr;
    }
}

// --- one pass --------------------------------------------------------------------------------

bool Connection::step() {
    bool progress = false;
    const auto now = steady::now();
    if (check_time(now)) progress = true;
    if (phase_ == Phase::kex) {
        const int rc = ssh_handle_key_exchange(srv_);
        if (rc == SSH_OK) {
            phase_ = Phase::auth;
            ssh_set_auth_methods(srv_, SSH_AUTH_METHOD_INTERACTIVE | SSH_AUTH_METHOD_PUBLICKEY);
            progress = true;
        } else if (rc == SSH_ERROR) {
            spdlog::info("ssh {}: key exchange failed: {}", peer_, ssh_get_error(srv_));
            end(CloseReason::protocol_error, "key exchange failed");
            linger_deadline_ = now;
            return false;
        } else {
            return progress;
        }
    }
    if (pump_sessions()) progress = true;
    if (step_messages()) progress = true;
    if (phase_ == Phase::auth && step_auth()) progress = true;
    if (step_backend()) progress = true;
    for (auto it = pairs_.begin(); it != pairs_.end();) {
        Pair& p = **it;
        if (step_pair(p)) progress = true;
        const bool c_done = p.c_closed || p.c_remote_closed || ssh_channel_is_closed(p.c);
        const bool b_done = !p.b || p.b_closed || p.b_remote_closed || ssh_channel_is_closed(p.b) || p.b_failed;
        if (c_done && b_done && p.to_client.empty() && p.to_client_err.empty()) {
            for (auto* m : p.requests) ssh_message_free(m);
            p.requests.clear();
            // libssh keeps a locally freed channel until the peer's close arrives and then runs its
            // callbacks: they must not point at the Pair any more.
            detach_callbacks(p);
            if (p.b) ssh_channel_free(p.b);
            ssh_channel_free(p.c);
            it = pairs_.erase(it);
            progress = true;
        } else {
            ++it;
        }
    }
    // Flush what libssh still holds for either socket.
    if (srv_ && (ssh_get_poll_flags(srv_) & SSH_WRITE_PENDING)) {
        (void)ssh_blocking_flush(srv_, 0);
    }
    if (srv_ && !(ssh_get_poll_flags(srv_) & SSH_WRITE_PENDING)) c_unflushed_ = 0;
    if (be_ && be_state_ != Be::connecting) {
        if (ssh_get_poll_flags(be_) & SSH_WRITE_PENDING) (void)ssh_blocking_flush(be_, 0);
        if (!(ssh_get_poll_flags(be_) & SSH_WRITE_PENDING)) b_unflushed_ = 0;
    }
    if (client_gone()) {
        const std::string why = ssh_get_error(srv_);
        if (reason_ == CloseReason::none && scope_.opened() && why.find("SSH_MSG_DISCONNECT") == std::string::npos) {
            scope_.log().info("client connection lost: {}", why);
        }
        end(CloseReason::client_disconnect, why.find("SSH_MSG_DISCONNECT") != std::string::npos
                                                ? "client closed the connection"
                                                : "client connection lost: " + why);
        linger_deadline_ = now;
    } else if (backend_gone() && reason_ == CloseReason::none) {
        cut_all(CloseReason::backend_disconnect, "glassgate: the connection to " + target_->name + " was lost");
        end(CloseReason::backend_disconnect, "backend closed the connection");
    }
    if (ending_ && linger_deadline_ == steady::time_point::max()) linger_deadline_ = now + 3s;
    // Ending: done once every channel is gone and the client's output is flushed.
    if (ending_ && pairs_.empty() && srv_ && !(ssh_get_poll_flags(srv_) & SSH_WRITE_PENDING)) {
        linger_deadline_ = std::min(linger_deadline_, now);
    }
    return progress;
}

bool Connection::step_messages() {
    bool progress = false;
    for (int i = 0; i < 32; ++i) {
        ssh_message m = ssh_message_get(srv_);
        if (!m) break;
        progress = true;
        handle_message(m);
    }
    return progress;
}

void Connection::handle_message(ssh_message m) {
    const int type = ssh_message_type(m);
    if (type == SSH_REQUEST_AUTH && phase_ == Phase::auth && !ending_) {
        on_auth(m);
        return;
    }
    if (type == SSH_REQUEST_CHANNEL_OPEN && phase_ == Phase::open && !ending_) {
        on_channel_open(m);
        return;
    }
    if (type == SSH_REQUEST_CHANNEL && phase_ == Phase::open) {
        on_channel_request(m);
        return;
    }
    if (type == SSH_REQUEST_GLOBAL && phase_ == Phase::open) {
        annotate("global request refused (remote port forwarding is not available)");
    }
    ssh_message_reply_default(m);
    ssh_message_free(m);
}

// --- authentication --------------------------------------------------------------------------

void Connection::on_auth(ssh_message m) {
    const char* user = ssh_message_auth_user(m);
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
        ssh_message_reply_default(m);
        ssh_message_free(m);
        return;
    }
    const int sub = ssh_message_subtype(m);
    if (sub == SSH_AUTH_METHOD_PUBLICKEY) {
        on_publickey(m);
        return;
    }
    if (sub == SSH_AUTH_METHOD_INTERACTIVE) {
        if (ssh_message_auth_kbdint_is_response(m)) {
            on_kbd_response(m);
        } else {
            on_kbd_start(m);
        }
        return;
    }
    ssh_message_reply_default(m);
    ssh_message_free(m);
}

void Connection::on_publickey(ssh_message m) {
    // A key only counts once libssh has verified its signature: a public key alone proves nothing.
    if (!svc_->cfg.ssh.sso_cache || !target_ || !svc_->idp) {
        ssh_message_reply_default(m);
        ssh_message_free(m);
        return;
    }
    const auto state = ssh_message_auth_publickey_state(m);
    if (state == SSH_PUBLICKEY_STATE_NONE) {
        ssh_message_auth_reply_pk_ok_simple(m);
        ssh_message_free(m);
        return;
    }
    if (state == SSH_PUBLICKEY_STATE_VALID) {
        const auto fp = key_fingerprint(ssh_message_auth_pubkey(m));
        if (proven_key_fp_.empty()) proven_key_fp_ = fp;
        if (auto e = svc_->approvals.find(fp + "\n" + target_->name, steady::now())) {
            if ((login_->hint.empty() || login_->hint == e->identity) && allowed(*target_, e->identity, e->groups)) {
                admit(m, e->identity, e->groups, "sso-cache");
                return;
            }
        }
    }
    ssh_message_reply_default(m);
    ssh_message_free(m);
}

void Connection::refuse_auth(ssh_message m, const std::string& user_message, const std::string& log_reason,
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
    ssh_message_auth_interactive_request(m, "glassgate", "", 1, prompts, echo);
    ssh_message_free(m);
    kbd_ = Kbd::failing;
    failing_reason_ = log_reason;
}

void Connection::on_kbd_start(ssh_message m) {
    if (kbd_ == Kbd::failing) {  // a client retrying after a refusal gets the refusal
        ssh_message_reply_default(m);
        ssh_message_free(m);
        end(CloseReason::auth_failed, failing_reason_);
        return;
    }
    if (kbd_ != Kbd::none) {  // a restarted exchange while one is running: answer the newest
        if (held_) ssh_message_free(held_);
        held_ = m;
        if (kbd_ == Kbd::prompted || kbd_ == Kbd::waiting_result) kbd_ = Kbd::waiting_prompt;
        return;
    }
    if (const auto wait = svc_->throttle.wait_for(peer_addr_, steady::now()); wait > 0s) {
        refuse_auth(m, "too many failed sign-ins from " + peer_addr_ + "; try again in " + std::to_string(wait.count()) + "s",
                    "source throttled after repeated failures");
        return;
    }
    if (!login_) {
        refuse_auth(m, login_problem_, "bad login name \"" + login_user_ + "\"");
        return;
    }
    if (!target_) {
        refuse_auth(m, "there is no SSH target \"" + login_->target + "\" on this proxy", "unknown target");
        return;
    }
    if (!login_->hint.empty() && svc_->breakglass && svc_->breakglass->is_account(login_->hint)) {
        on_breakglass_start(m);
        return;
    }
    if (!svc_->idp) {
        refuse_auth(m, "single sign-on is not configured on this proxy", "no [idp] configured");
        return;
    }
    held_ = m;
    kbd_ = Kbd::waiting_prompt;
    start_device_login();
}

void Connection::on_breakglass_start(ssh_message m) {
    // Emergency access: ACCOUNT:TARGET. Passphrase (not echoed) and reason in one exchange.
    const std::string p1 = "glassgate emergency access: passphrase for " + login_->hint + ": ";
    const std::string p2 = "Reason (incident or ticket): ";
    const char* prompts[] = {p1.c_str(), p2.c_str()};
    char echo[] = {0, 1};
    ssh_message_auth_interactive_request(
        m, "glassgate emergency access",
        ("Emergency access to " + target_->name + " is recorded in full, time-limited and alerted.").c_str(), 2,
        prompts, echo);
    ssh_message_free(m);
    kbd_ = Kbd::bg_prompted;
}

void Connection::on_breakglass_response(ssh_message m) {
    const int n = ssh_userauth_kbdint_getnanswers(srv_);
    const char* pass = n >= 1 ? ssh_userauth_kbdint_getanswer(srv_, 0) : nullptr;
    const char* why = n >= 2 ? ssh_userauth_kbdint_getanswer(srv_, 1) : nullptr;
    held_ = m;
    kbd_ = Kbd::waiting_result;
    std::weak_ptr<Connection> weak = shared_from_this();
    auto attempt = std::make_shared<breakglass::Attempt>(breakglass::Attempt{
        .account = login_->hint, .passphrase = Secret(std::string(pass ? pass : "")), .reason = why ? why : "",
        .target = target_->name, .source = peer_, .session_id = scope_.reserve_id(), .protocol = "ssh"});
    auto bg = svc_->breakglass;
    asio::co_spawn(
        ex_,
        [bg, attempt]() -> asio::awaitable<breakglass::Decision> { co_return co_await bg->authenticate(*attempt); },
        asio::bind_executor(ex_, [weak](std::exception_ptr e, breakglass::Decision d) {
            auto self = weak.lock();
            if (!self) return;
            if (e) {
                d = {};
                d.public_message = "emergency sign-in failed";
                d.log_reason = "break-glass check failed with an internal error";
            }
            self->bg_decision_ = std::move(d);
            self->kick();
        }));
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
    asio::co_spawn(ex_, svc_->idp->device_login(std::move(show)),
                   asio::bind_executor(ex_, [weak](std::exception_ptr e, identity::DeviceLoginResult r) {
                       auto self = weak.lock();
                       if (!self) return;
                       if (e) {
                           r = {};
                           r.reason = "device sign-in failed with an internal error";
                           r.public_message = "sign-in failed";
                       }
                       self->device_result_ = std::move(r);
                       self->kick();
                   }));
}

void Connection::on_kbd_response(ssh_message m) {
    if (kbd_ == Kbd::failing) {
        ssh_message_reply_default(m);
        ssh_message_free(m);
        end(CloseReason::auth_failed, failing_reason_);
        return;
    }
    if (kbd_ == Kbd::bg_prompted) {
        on_breakglass_response(m);
        return;
    }
    if (kbd_ != Kbd::prompted) {
        ssh_message_reply_default(m);
        ssh_message_free(m);
        return;
    }
    if (held_) ssh_message_free(held_);
    held_ = m;
    kbd_ = Kbd::waiting_result;
}

bool Connection::step_auth() {
    if (kbd_ == Kbd::waiting_prompt && held_ && (device_url_ || device_result_)) {
        if (!device_url_) {  // the IdP failed before there was anything to show
            auto* m = std::exchange(held_, nullptr);
            refuse_auth(m, "sign-in failed: " + device_result_->public_message,
                        "device sign-in failed: " + device_result_->reason);
            return true;
        }
        const std::string instruction =
            "Sign in to glassgate: open " + *device_url_ + " and confirm the code " + device_code_ + ".";
        const std::string prompt = "glassgate: open " + *device_url_ + " (code " + device_code_ +
                                   "), approve, then press Enter: ";
        const char* prompts[] = {prompt.c_str()};
        char echo[] = {1};
        ssh_message_auth_interactive_request(held_, "glassgate sign-in", instruction.c_str(), 1, prompts, echo);
        ssh_message_free(held_);
        held_ = nullptr;
        kbd_ = Kbd::prompted;
        return true;
    }
    if (kbd_ == Kbd::waiting_result && held_ && bg_decision_) {
        auto* m = std::exchange(held_, nullptr);
        auto d = std::move(*bg_decision_);
        bg_decision_.reset();
        if (!d.ok()) {
            // The break-glass service has audited and alerted the refusal itself.
            svc_->throttle.failure(peer_addr_, steady::now());
            refuse_auth(m, d.public_message, "break-glass: " + d.log_reason, false);
            return true;
        }
        grant_ = std::move(d.grant);
        cap_ = grant_->max_session;
        warn_ = grant_->warn_before;
        cap_source_ = "emergency access limit of rule \"" + grant_->rule_name + "\"";
        admit(m, login_->hint, {}, "breakglass");
        return true;
    }
    if (kbd_ == Kbd::waiting_result && held_ && device_result_) {
        auto* m = std::exchange(held_, nullptr);
        auto res = std::move(*device_result_);
        device_result_.reset();
        if (!res.identity) {
            refuse_auth(m, "sign-in failed: " + res.public_message, "device sign-in failed: " + res.reason);
            return true;
        }
        identity_ = res.identity->username;
        if (!login_->hint.empty() && login_->hint != identity_) {
            refuse_auth(m, "you signed in as \"" + identity_ + "\", not \"" + login_->hint + "\"",
                        "identity does not match the login name's hint \"" + login_->hint + "\"");
            return true;
        }
        if (!allowed(*target_, identity_, res.identity->groups)) {
            refuse_auth(m, "\"" + identity_ + "\" is not allowed to use target \"" + target_->name + "\"",
                        "not in the target's allow list");
            return true;
        }
        if (svc_->cfg.ssh.sso_cache && !proven_key_fp_.empty()) {
            svc_->approvals.put(proven_key_fp_ + "\n" + target_->name,
                                {identity_, res.identity->groups, steady::now() + *svc_->cfg.ssh.sso_cache});
        }
        admit(m, identity_, res.identity->groups, "device");
        return true;
    }
    return false;
}

void Connection::admit(ssh_message m, const std::string& identity, const std::vector<std::string>& groups,
                       const std::string& method) {
    identity_ = identity;
    if (!grant_) {
        cap_ = target_->max_session;
        warn_ = target_->warn_before.value_or(5min);
        cap_source_ = "time limit of target \"" + target_->name + "\"";
    }
    SessionScope::Open o;
    o.identity = identity_;
    o.method = grant_ ? session::AuthMethod::breakglass : session::AuthMethod::sso;
    o.auth_detail = method;
    o.target = target_->name;
    if (grant_) o.reason = grant_->reason;
    if (cap_) o.cap = std::chrono::duration_cast<std::chrono::microseconds>(*cap_);
    o.extra = {{"login", login_user_}, {"backend_user", target_->backend_user}};
    if (!groups.empty()) o.extra["groups"] = boost::json::array(groups.begin(), groups.end());
    if (grant_) o.extra["rule"] = grant_->rule_name;
    if (!scope_.open(o)) {
        if (grant_) svc_->breakglass->session_closed(*grant_, "recording_failed", session::TimePoint(
            std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now())));
        refuse_auth(m, "glassgate cannot record this session, so it is refused", "recording unavailable");
        return;
    }
    svc_->metrics.inc("glassgate_ssh_auth_total", {{"method", method}, {"outcome", "ok"}});
    svc_->metrics.inc("glassgate_auth_total", {{"method", "ssh-" + method}, {"outcome", "ok"}});
    svc_->throttle.success(peer_addr_);
    // The sign-in is answered once the backend is ready, so that a backend problem reaches the user
    // as a clear message in the prompt instead of a failed channel.
    admit_msg_ = m;
    admit_method_ = method;
    kbd_ = Kbd::none;
    grace_deadline_ = steady::time_point::max();
    scope_.log().info("ssh session: {} ({}) -> {} as {} from {}", identity_, method, target_->name,
                      target_->backend_user, peer_);
    // The cap and its warnings count from the start of the session.
    const auto t0 = scope_.started();
    if (cap_) {
        deadline_ = t0 + *cap_;
        const auto warn = warn_;
        if (warn > 0ms && warn < *cap_) warnings_.emplace_back(*deadline_ - warn, config::format_duration(warn));
        if (1min < *cap_ && warn != 1min) warnings_.emplace_back(*deadline_ - 1min, "1m");
        std::sort(warnings_.begin(), warnings_.end());
    }
    last_activity_ = steady::now();

    // The backend leg starts now, while the client opens its channel.
    std::optional<Secret> secret;
    try {
        secret = SecretStore(svc_->store, svc_->secrets_key).get(target_->name);
    } catch (const std::exception& e) {
        scope_.log().error("cannot read the secret for {}: {}", target_->name, e.what());
    }
    if (!secret) {
        fail_backend("no credential is stored for target " + target_->name + " (glassgate secret set " + target_->name + ")",
                     "glassgate has no credential for " + target_->name);
        return;
    }
    const auto text = secret->reveal();
    if (text.find("PRIVATE KEY-----") != std::string_view::npos) {
        const std::string pem(text);
        if (ssh_pki_import_privkey_base64(pem.c_str(), nullptr, nullptr, nullptr, &be_key_) != SSH_OK) {
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
            }
            auto self = weak.lock();
            if (!self) co_return;
            if (!error.empty()) {
                self->fail_backend(error, "glassgate cannot reach " + self->target_->name + " (" + error + ")");
            } else if (self->be_state_ == Be::resolving) {
                boost::system::error_code ec;
                s.set_option(tcp::no_delay(true), ec);
                self->backend_fd_ = s.release();
                self->be_state_ = Be::tcp_ready;
            }
            self->kick();
        },
        boost::asio::detached);
}

// --- the backend leg -------------------------------------------------------------------------

void Connection::finish_admit() {
    ssh_message_auth_reply_success(admit_msg_, 0);
    ssh_message_free(admit_msg_);
    admit_msg_ = nullptr;
    phase_ = Phase::open;
}

void Connection::fail_backend(const std::string& why, const std::string& user_message) {
    if (be_state_ == Be::failed) return;
    be_state_ = Be::failed;
    be_deadline_ = steady::time_point::max();
    be_error_user_ = "glassgate: " + user_message;
    if (admit_msg_) {
        auto* m = std::exchange(admit_msg_, nullptr);
        refuse_auth(m, user_message, "backend unavailable: " + why, false);
    }
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
        be_ = ssh_new();
        if (!be_) {
            fail_backend("cannot create an SSH client session", "glassgate cannot reach " + target_->name);
            return true;
        }
        bool process_config = false;
        int verbosity = SSH_LOG_NOLOG;
        const auto pinned = gg::ssh::parse_public_key_line(target_->host_key);
        const auto algos = gg::ssh::hostkey_algorithms_for(pinned ? pinned->type : "ssh-ed25519");
        const unsigned int port = target_->address.port;
        ssh_options_set(be_, SSH_OPTIONS_PROCESS_CONFIG, &process_config);
        ssh_options_set(be_, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
        ssh_options_set(be_, SSH_OPTIONS_HOST, target_->address.host.c_str());
        ssh_options_set(be_, SSH_OPTIONS_PORT, &port);
        ssh_options_set(be_, SSH_OPTIONS_USER, target_->backend_user.c_str());
        ssh_options_set(be_, SSH_OPTIONS_HOSTKEYS, algos.c_str());
        // AES-GCM first on the leg glassgate chooses: with AES-NI it costs a fraction of ChaCha20.
        ssh_options_set(be_, SSH_OPTIONS_CIPHERS_C_S, backend_ciphers);
        ssh_options_set(be_, SSH_OPTIONS_CIPHERS_S_C, backend_ciphers);
        ssh_options_set(be_, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
        ssh_options_set(be_, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
        ssh_options_set(be_, SSH_OPTIONS_FD, &backend_fd_);
        ssh_set_blocking(be_, 0);
        bfd_.emplace(ex_, ::dup(backend_fd_));
        be_state_ = Be::connecting;
    }
    if (be_state_ == Be::connecting) {
        const int rc = ssh_connect(be_);
        if (!be_connect_called_) {
            // ssh_connect with SSH_OPTIONS_FD makes the socket blocking again.
            be_connect_called_ = true;
            ::fcntl(backend_fd_, F_SETFL, ::fcntl(backend_fd_, F_GETFL) | O_NONBLOCK);
        }
        if (rc == SSH_AGAIN) return false;
        if (rc != SSH_OK) {
            fail_backend(std::string("SSH handshake with the backend failed: ") + ssh_get_error(be_),
                         "glassgate cannot reach " + target_->name);
            return true;
        }
        // The pinned host key, never trust on first use.
        ssh_key key = nullptr;
        std::string presented;
        if (ssh_get_server_publickey(be_, &key) == SSH_OK) {
            presented = public_key_line(key);
            ssh_key_free(key);
        }
        const auto want = gg::ssh::parse_public_key_line(target_->host_key);
        const auto got = gg::ssh::parse_public_key_line(presented);
        if (!want || !got || !(*want == *got)) {
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
        const int rc = be_key_ ? ssh_userauth_publickey(be_, nullptr, be_key_)
                               : ssh_userauth_password(be_, nullptr, be_password_.c_str());
        if (rc == SSH_AUTH_AGAIN) return false;
        if (rc != SSH_AUTH_SUCCESS) {
            fail_backend("the backend refused glassgate's credential for " + target_->backend_user + ": " +
                             ssh_get_error(be_),
                         target_->name + " refused glassgate's credential (tell the operators)");
            return true;
        }
        be_state_ = Be::ready;
        backend_ready_ = true;
        be_deadline_ = steady::time_point::max();
        OPENSSL_cleanse(be_password_.data(), be_password_.size());
        be_password_.clear();
        scope_.activate();
        annotate("connected to " + target_->address.to_string() + " as " + target_->backend_user);
        if (admit_msg_) finish_admit();
        return true;
    }
    return false;
}

// --- channels --------------------------------------------------------------------------------

void Connection::on_channel_open(ssh_message m) {
    const int sub = ssh_message_subtype(m);
    gg::ssh::ChannelType type = gg::ssh::ChannelType::other;
    if (sub == SSH_CHANNEL_SESSION) type = gg::ssh::ChannelType::session;
    if (sub == SSH_CHANNEL_DIRECT_TCPIP) type = gg::ssh::ChannelType::direct_tcpip;
    if (sub == SSH_CHANNEL_FORWARDED_TCPIP) type = gg::ssh::ChannelType::forwarded_tcpip;
    if (sub == SSH_CHANNEL_X11) type = gg::ssh::ChannelType::x11;
    const auto d = gg::ssh::decide_channel_open(type, target_->allow_port_forwarding);
    if (!d.accept || pairs_.size() >= 16) {
        const std::string why = d.accept ? "too many channels" : d.message;
        annotate("channel open refused: " + why);
        audit("ssh.channel_refused", "denied", why);
        ssh_message_reply_default(m);
        ssh_message_free(m);
        return;
    }
    auto p = std::make_unique<Pair>();
    p->owner = this;
    if (type == gg::ssh::ChannelType::direct_tcpip) {
        p->kind = ChannelKind::direct_tcpip;
        p->fwd_host = ssh_message_channel_request_open_destination(m);
        p->fwd_port = ssh_message_channel_request_open_destination_port(m);
        p->orig_host = ssh_message_channel_request_open_originator(m);
        p->orig_port = ssh_message_channel_request_open_originator_port(m);
        annotate("port forwarding to " + p->fwd_host + ":" + std::to_string(p->fwd_port));
    }
    p->c = ssh_message_channel_request_open_reply_accept(m);
    ssh_message_free(m);
    if (!p->c) return;
    ssh_callbacks_init(&p->c_cb);
    p->c_cb.userdata = p.get();
    p->c_cb.channel_signal_function = &Connection::on_client_signal;
    p->c_cb.channel_auth_agent_req_function = &Connection::on_agent_request;
    p->c_cb.channel_close_function = &Connection::on_client_close;
    ssh_set_channel_callbacks(p->c, &p->c_cb);
    if (be_state_ == Be::failed) {
        p->cutting = true;
        p->cut_message = be_error_user_;
        p->b_failed = true;
    }
    pairs_.push_back(std::move(p));
}

void Connection::on_channel_request(ssh_message m) {
    Pair* p = find_pair(ssh_message_channel_request_channel(m));
    if (!p || p->cutting) {
        ssh_message_reply_default(m);
        ssh_message_free(m);
        return;
    }
    p->requests.push_back(m);
}

/// Starts (or continues) relaying one client request on the backend channel. Returns progress;
/// sets `done` once the request has been answered.
bool Connection::start_request(Pair& p, ssh_message m, bool& done) {
    done = false;
    const int sub = ssh_message_subtype(m);
    auto reply = [&](bool ok) {
        if (ok) {
            ssh_message_channel_request_reply_success(m);
        } else {
            ssh_message_reply_default(m);
        }
        done = true;
        return true;
    };
    auto finish = [&](int rc) {
        if (rc == SSH_AGAIN) return false;
        return reply(rc == SSH_OK);
    };
    gg::ssh::RequestPolicy policy{svc_->cfg.ssh.env_allow, true};
    auto refuse = [&](const std::string& message) {
        annotate("request refused: " + message);
        audit("ssh.request_refused", "denied", message);
        return reply(false);
    };
    switch (sub) {
        case SSH_CHANNEL_REQUEST_PTY: {
            const std::string term = ssh_message_channel_request_pty_term(m) ? ssh_message_channel_request_pty_term(m) : "xterm";
            const int cols = ssh_message_channel_request_pty_width(m);
            const int rows = ssh_message_channel_request_pty_height(m);
            if (!p.request_in_flight) {
                auto sz = session::encode_resize({static_cast<std::uint32_t>(std::max(cols, 0)), static_cast<std::uint32_t>(std::max(rows, 0))});
                if (!record(EventKind::resize, Direction::client_to_server, as_chars(sz))) return reply(false);
                p.pty = true;
            }
            return finish(ssh_channel_request_pty_size(p.b, term.c_str(), cols, rows));
        }
        case SSH_CHANNEL_REQUEST_WINDOW_CHANGE: {
            const int cols = ssh_message_channel_request_pty_width(m);
            const int rows = ssh_message_channel_request_pty_height(m);
            auto sz = session::encode_resize({static_cast<std::uint32_t>(std::max(cols, 0)), static_cast<std::uint32_t>(std::max(rows, 0))});
            if (!record(EventKind::resize, Direction::client_to_server, as_chars(sz))) return reply(false);
            return reply(ssh_channel_change_pty_size(p.b, cols, rows) == SSH_OK);
        }
        case SSH_CHANNEL_REQUEST_SHELL:
            if (!p.request_in_flight) {
                p.use = Use::shell;
                annotate("shell");
            }
            return finish(ssh_channel_request_shell(p.b));
        case SSH_CHANNEL_REQUEST_EXEC: {
            const char* cmd = ssh_message_channel_request_command(m);
            if (!p.request_in_flight) {
                p.use = Use::exec;
                if (!record(EventKind::exec, Direction::client_to_server, cmd ? cmd : "")) return reply(false);
            }
            return finish(ssh_channel_request_exec(p.b, cmd ? cmd : ""));
        }
        case SSH_CHANNEL_REQUEST_ENV: {
            const char* name = ssh_message_channel_request_env_name(m);
            const char* value = ssh_message_channel_request_env_value(m);
            const std::string n = name ? name : "";
            const std::string v = value ? value : "";
            if (!p.request_in_flight) {
                const auto d = gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::env, n, policy);
                if (!d.relay) return refuse(d.message);
                auto env = session::encode_env(n, v);
                if (!record(EventKind::env, Direction::client_to_server, as_chars(env))) return reply(false);
            }
            return finish(ssh_channel_request_env(p.b, n.c_str(), v.c_str()));
        }
        case SSH_CHANNEL_REQUEST_SUBSYSTEM: {
            const char* name = ssh_message_channel_request_subsystem(m);
            const std::string n = name ? name : "";
            if (!p.request_in_flight) {
                const auto d = gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::subsystem, n, policy);
                if (!d.relay) return refuse(d.message);
                p.use = Use::subsystem;
                if (!record(EventKind::subsystem, Direction::client_to_server, n)) return reply(false);
                if (n == "sftp") {
                    p.sftp = std::make_unique<gg::ssh::SftpObserver>();
                    p.sftp_raw = target_->record_sftp_contents;
                }
            }
            return finish(ssh_channel_request_subsystem(p.b, n.c_str()));
        }
        case SSH_CHANNEL_REQUEST_X11:
            return refuse(gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::x11_req, "x11-req", policy).message);
        default:
            return refuse(gg::ssh::decide_channel_request(gg::ssh::ChannelRequest::other, "unknown", policy).message);
    }
}

bool Connection::step_pair(Pair& p) {
    bool progress = false;
    // Open the backend's side of the channel once the backend is ready.
    if (!p.b && backend_ready_ && !p.cutting) {
        p.b = ssh_channel_new(be_);
        if (!p.b) {
            fail_backend("cannot create a backend channel", "glassgate lost the connection to " + target_->name);
            return true;
        }
        ssh_callbacks_init(&p.b_cb);
        p.b_cb.userdata = &p;
        p.b_cb.channel_exit_status_function = &Connection::on_exit_status;
        p.b_cb.channel_exit_signal_function = &Connection::on_exit_signal;
        p.b_cb.channel_close_function = &Connection::on_backend_close;
        ssh_set_channel_callbacks(p.b, &p.b_cb);
        p.b_opening = true;
        progress = true;
    }
    if (p.b_opening) {
        const int rc = p.kind == ChannelKind::session
                           ? ssh_channel_open_session(p.b)
                           : ssh_channel_open_forward(p.b, p.fwd_host.c_str(), p.fwd_port, p.orig_host.c_str(), p.orig_port);
        if (rc == SSH_OK) {
            p.b_opening = false;
            p.b_open = true;
            progress = true;
        } else if (rc != SSH_AGAIN) {
            p.b_opening = false;
            p.b_failed = true;
            const std::string why = std::string("the backend refused to open a channel: ") + ssh_get_error(be_);
            annotate(why);
            p.cutting = true;
            p.cut_message = "glassgate: " + target_->name + " refused the channel";
            progress = true;
        }
    }
    // Client requests, one at a time, each answered with the backend's answer.
    if (p.b_open && !p.cutting) {
        while (!p.requests.empty()) {
            bool done = false;
            if (start_request(p, p.requests.front(), done)) progress = true;
            if (!done) {
                p.request_in_flight = true;
                break;
            }
            ssh_message_free(p.requests.front());
            p.requests.pop_front();
            p.request_in_flight = false;
            progress = true;
        }
        while (!p.signals.empty()) {
            annotate("signal " + p.signals.front());
            ssh_channel_request_send_signal(p.b, p.signals.front().c_str());
            p.signals.pop_front();
            progress = true;
        }
    }
    if (relay(p)) progress = true;
    return progress;
}

bool Connection::relay(Pair& p) {
    bool progress = false;
    char tmp[read_chunk];
    const bool c_alive = !p.c_closed && !p.c_remote_closed && !ssh_channel_is_closed(p.c);
    const bool b_alive = p.b_open && !p.b_closed && !p.b_remote_closed && !ssh_channel_is_closed(p.b);
    // While the recording writer is behind, stop reading (back-pressure) rather than lose events.
    if (scope_.buffered() > svc_->cfg.server.recording_buffer_bytes / 2) {
        recording_backed_up_ = true;
        return false;
    }
    // Writes: never more than the peer's window, never more while the socket is backed up.
    auto write_some = [&](ssh_channel ch, bool is_err, const char* data, std::size_t len, std::size_t& unflushed,
                          ssh_session s) {
        std::size_t done = 0;
        while (done < len) {
            if (unflushed >= unflushed_cap && (ssh_get_poll_flags(s) & SSH_WRITE_PENDING)) break;
            const auto window = static_cast<std::size_t>(ssh_channel_window_size(ch));
            const auto n = std::min({len - done, window, read_chunk});
            if (n == 0) break;
            const int w = is_err ? ssh_channel_write_stderr(ch, data + done, static_cast<std::uint32_t>(n))
                                 : ssh_channel_write(ch, data + done, static_cast<std::uint32_t>(n));
            if (w <= 0) break;
            done += static_cast<std::size_t>(w);
            unflushed += static_cast<std::size_t>(w);
            progress = true;
        }
        return done;
    };
    auto write_out = [&](Pending& q, ssh_channel ch, bool is_err, std::size_t& unflushed, ssh_session s) {
        const auto n = write_some(ch, is_err, q.data(), q.size(), unflushed, s);
        q.consume(n);
        return n;
    };
    // Data read goes straight to the other side when nothing is queued there (no copy), the rest
    // waits in the bounded queue.
    auto forward = [&](Pending& q, ssh_channel ch, bool is_err, bool alive, std::size_t& unflushed, ssh_session s,
                       std::uint64_t& counter, const char* data, std::size_t len) {
        std::size_t done = 0;
        if (alive && q.empty()) done = write_some(ch, is_err, data, len, unflushed, s);
        counter += done;
        if (done < len) q.append(data + done, len - done);
    };

    // backend -> client (stdout, then stderr); what the backend sent before closing is still read.
    if (p.b_open && !p.b_closed && !p.cutting) {
        for (int is_err = 0; is_err < 2; ++is_err) {
            Pending& q = is_err ? p.to_client_err : p.to_client;
            while (q.size() < pending_cap) {
                const int n = ssh_channel_read_nonblocking(p.b, tmp, static_cast<std::uint32_t>(read_chunk), is_err);
                if (n <= 0) break;
                const auto len = static_cast<std::size_t>(n);
                if (!record_data(p, !is_err, is_err ? EventKind::term_stderr : EventKind::term_output,
                                 Direction::server_to_client, std::string_view(tmp, len))) {
                    return true;
                }
                forward(q, p.c, is_err != 0, c_alive && !p.c_eof_sent, c_unflushed_, srv_, bytes_out_, tmp, len);
                last_activity_ = steady::now();
                progress = true;
            }
        }
    }
    // client -> backend
    if (c_alive && (b_alive || !p.b_open) && !p.cutting) {
        while (p.b_open && p.to_backend.size() < pending_cap) {
            const int n = ssh_channel_read_nonblocking(p.c, tmp, static_cast<std::uint32_t>(read_chunk), 0);
            if (n <= 0) break;
            const auto len = static_cast<std::size_t>(n);
            if (!record_data(p, true, EventKind::term_input, Direction::client_to_server, std::string_view(tmp, len))) {
                return true;
            }
            forward(p.to_backend, p.b, false, b_alive && !p.b_eof_sent, b_unflushed_, be_, bytes_in_, tmp, len);
            last_activity_ = steady::now();
            progress = true;
        }
    }
    if (c_alive) {
        bytes_out_ += write_out(p.to_client, p.c, false, c_unflushed_, srv_);
        bytes_out_ += write_out(p.to_client_err, p.c, true, c_unflushed_, srv_);
    } else {
        p.to_client = {};
        p.to_client_err = {};
    }
    if (b_alive) bytes_in_ += write_out(p.to_backend, p.b, false, b_unflushed_, be_);

    // EOF and close, in OpenSSH's order: data, EOF, exit status, close.
    if (b_alive && !p.b_eof_sent && p.to_backend.empty() && (ssh_channel_is_eof(p.c) || !c_alive)) {
        ssh_channel_send_eof(p.b);
        p.b_eof_sent = true;
        progress = true;
    }
    const bool b_finished = p.b_failed || (p.b_open && (p.b_remote_closed || ssh_channel_is_closed(p.b) || p.b_closed) &&
                                           ssh_channel_poll(p.b, 0) <= 0 && ssh_channel_poll(p.b, 1) <= 0);
    const bool b_eof = p.b_open && (ssh_channel_is_eof(p.b) || p.b_remote_closed || ssh_channel_is_closed(p.b));
    if (c_alive && !p.c_eof_sent && !p.cutting && b_eof && p.to_client.empty() && p.to_client_err.empty() &&
        ssh_channel_poll(p.b, 0) <= 0 && ssh_channel_poll(p.b, 1) <= 0) {
        ssh_channel_send_eof(p.c);
        p.c_eof_sent = true;
        progress = true;
    }
    if (c_alive && p.cutting && !p.c_closed) {
        // glassgate ends the channel: the message, then exit-signal, EOF, close.
        if (!p.cut_message.empty()) {
            const std::string text = p.pty ? "\r\n" + p.cut_message + "\r\n" : p.cut_message + "\n";
            if (p.pty) {
                p.to_client.append(text.data(), text.size());
            } else {
                p.to_client_err.append(text.data(), text.size());
            }
            p.cut_message.clear();
            progress = true;
        }
        if (p.to_client.empty() && p.to_client_err.empty()) {
            if (!p.exit_sent && p.kind == ChannelKind::session) {
                ssh_channel_request_send_exit_signal(p.c, "TERM", 0, "glassgate ended the session", "");
                p.exit_sent = true;
            }
            if (!p.c_eof_sent) ssh_channel_send_eof(p.c);
            p.c_eof_sent = true;
            ssh_channel_close(p.c);
            p.c_closed = true;
            if (b_alive) {
                ssh_channel_close(p.b);
                p.b_closed = true;
            }
            progress = true;
        }
    } else if (c_alive && b_finished && p.to_client.empty() && p.to_client_err.empty()) {
        if (!p.exit_sent) {
            if (p.exit_status) {
                auto es = session::encode_exit_status(static_cast<std::uint32_t>(*p.exit_status));
                (void)record(EventKind::exit_status, Direction::server_to_client, as_chars(es));
                ssh_channel_request_send_exit_status(p.c, *p.exit_status);
            } else if (p.exit_signal) {
                auto es = session::encode_exit_signal(*p.exit_signal);
                (void)record(EventKind::exit_signal, Direction::server_to_client, as_chars(es));
                ssh_channel_request_send_exit_signal(p.c, p.exit_signal->signal.c_str(), p.exit_signal->core_dumped ? 1 : 0,
                                                     p.exit_signal->message.c_str(), "");
            }
            p.exit_sent = true;
        }
        if (!p.c_eof_sent) ssh_channel_send_eof(p.c);
        p.c_eof_sent = true;
        ssh_channel_close(p.c);
        p.c_closed = true;
        progress = true;
    }
    if (!c_alive && b_alive) {
        ssh_channel_close(p.b);
        p.b_closed = true;
        progress = true;
    }
    return progress;
}

void Connection::cut_all(CloseReason why, const std::string& message) {
    (void)why;
    for (auto& p : pairs_) {
        if (p->cutting) continue;
        p->cutting = true;
        p->cut_message = message;
        for (auto* m : p->requests) {
            ssh_message_reply_default(m);
            ssh_message_free(m);
        }
        p->requests.clear();
    }
    kick();
}

bool Connection::check_time(steady::time_point now) {
    if (ending_) return false;
    if (now >= be_deadline_) {
        fail_backend("timed out connecting to " + target_->address.to_string(),
                     "glassgate cannot reach " + target_->name + " (timed out)");
        return true;
    }
    if (phase_ != Phase::open) {
        if (kbd_ == Kbd::none && now >= grace_deadline_) {
            spdlog::info("ssh {}: no sign-in within {}; closing", peer_, config::format_duration(svc_->cfg.ssh.login_grace));
            audit("auth.timeout", "denied", "no sign-in within the login grace time", {{"protocol", "ssh"}});
            end(CloseReason::auth_failed, "login grace time exceeded");
            linger_deadline_ = now;
            return true;
        }
        return false;
    }
    if (next_warning_ < warnings_.size() && now >= warnings_[next_warning_].first) {
        const std::string text = "glassgate: this session ends in " + warnings_[next_warning_].second + " (" +
                                 cap_source_ + ")";
        ++next_warning_;
        annotate("time-cap warning sent: " + text);
        for (auto& p : pairs_) {
            if (p->cutting || p->kind != ChannelKind::session || p->use == Use::subsystem) continue;
            const std::string line = p->pty ? "\r\n" + text + "\r\n" : text + "\n";
            if (p->pty) {
                p->to_client.append(line.data(), line.size());
            } else {
                p->to_client_err.append(line.data(), line.size());
            }
        }
        return true;
    }
    if (deadline_ && now >= *deadline_) {
        annotate("time cap reached: session ended");
        cut_all(CloseReason::time_cap, "glassgate: session time limit reached (" + cap_source_ + ": " +
                                           config::format_duration(*cap_) + ")");
        end(CloseReason::time_cap, "session time limit (" + config::format_duration(*cap_) + ") reached");
        deadline_.reset();
        return true;
    }
    if (target_->idle_timeout && now >= last_activity_ + *target_->idle_timeout) {
        annotate("idle timeout: session ended");
        cut_all(CloseReason::idle_timeout, "glassgate: session idle for " + config::format_duration(*target_->idle_timeout) +
                                               "; closed");
        end(CloseReason::idle_timeout, "idle for " + config::format_duration(*target_->idle_timeout));
        return true;
    }
    return false;
}

}  // namespace

asio::awaitable<void> handle_client(tcp::socket sock, std::shared_ptr<Services> svc) {
    try {
        auto c = std::make_shared<Connection>(std::move(sock), std::move(svc));
        co_await c->run();
    } catch (const std::exception& e) {
        spdlog::error("ssh: connection ended by an internal error: {}", e.what());
    }
}

std::string fetch_host_key(const config::Target& target, std::chrono::milliseconds timeout) {
    ssh_session s = ssh_new();
    if (!s) throw OperationalError("cannot create an SSH session");
    bool process_config = false;
    int verbosity = SSH_LOG_NOLOG;
    long secs = std::max<long>(1, static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    const unsigned int port = target.address.port;
    ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &process_config);
    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    ssh_options_set(s, SSH_OPTIONS_HOST, target.address.host.c_str());
    ssh_options_set(s, SSH_OPTIONS_PORT, &port);
    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &secs);
    ssh_options_set(s, SSH_OPTIONS_HOSTKEYS, "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256");
    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    if (ssh_connect(s) != SSH_OK) {
        std::string err = ssh_get_error(s);
        ssh_free(s);
        throw OperationalError("cannot connect to " + target.address.to_string() + ": " + err);
    }
    ssh_key key = nullptr;
    std::string line;
    if (ssh_get_server_publickey(s, &key) == SSH_OK) {
        line = public_key_line(key);
        ssh_key_free(key);
    }
    ssh_disconnect(s);
    ssh_free(s);
    if (line.empty()) throw OperationalError("the target presented no usable host key");
    return line;
}

}  // namespace gg::proxy::ssh
