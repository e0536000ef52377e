#pragma once
// Private to proxy/ssh: one proxied SSH connection. One coroutine on the connection's strand owns a
// non-blocking libssh server session (the client's leg) and, once the user is signed in, a
// non-blocking libssh client session (the backend's leg), and runs one step loop: a pass lets libssh
// process both sockets, handles messages (sign-in, channel opens, requests held until the backend
// answers), relays channel data within the peers' windows; only a pass with no progress waits.
//
// The class is split by role across files:
//   connection.cpp       the loop, one pass, message dispatch, ending and teardown
//   readiness.cpp        waiting on the sockets, a timer or a kick; letting libssh process
//   time_caps.cpp        login grace, backend connect timeout, time-cap warnings, the cap, idle timeout
//   sign_in.cpp          keyboard-interactive device-code sign-in, the approval cache, refusals, admit
//   breakglass_sign_in.cpp  ACCOUNT:TARGET emergency sign-in
//   backend_leg.cpp      the backend's credential, TCP connect, SSH handshake, pinned host key, auth
//   channel_requests.cpp channel opens and requests (pty, shell, exec, env, subsystem, ...)
//   channel_relay.cpp    channel data, EOF and close in OpenSSH's order, recording of channel data

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <exception>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../lifecycle/session_scope.hpp"
#include "channel_pair.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"
#include "glassgate/proxy/breakglass/breakglass.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/ssh/ssh_proxy.hpp"
#include "glassgate/session/time_cap.hpp"
#include "libssh_handle.hpp"

namespace gg::proxy::ssh {

/// libssh's listener state: glassgate's host key. ssh_bind_accept_fd mutates it: call it under `mu`.
struct Services::Bind {
    BindHandle bind;
    std::mutex mu;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    using steady = std::chrono::steady_clock;

    Connection(boost::asio::ip::tcp::socket sock, std::shared_ptr<Services> svc);
    ~Connection() { teardown(); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Serves the connection to its end (closed, sealed, torn down). Throws only on internal errors.
    boost::asio::awaitable<void> run();
    [[nodiscard]] const std::string& peer() const noexcept { return peer_; }

private:
    // --- connection.cpp ----------------------------------------------------------------------
    bool step();
    bool step_messages();
    void handle_message(MessageHandle m);
    void end(session::CloseReason why, std::string detail);
    void cut_all(session::CloseReason why, const std::string& message);
    bool record(session::EventKind kind, session::Direction dir, std::string_view bytes);
    void annotate(const std::string& text) {
        (void)record(session::EventKind::annotation, session::Direction::none, text);
    }
    void recording_failed();
    void audit(std::string type, std::string outcome, std::string reason, boost::json::object details = {});
    [[nodiscard]] bool client_gone() const;
    [[nodiscard]] bool backend_gone() const;
    void log_idle_channels();
    void teardown();

    // --- readiness.cpp -----------------------------------------------------------------------
    enum Wait { c_read, c_write, b_read, b_write, waits };
    void kick();
    void arm_one(boost::asio::posix::stream_descriptor& d, Wait w, boost::asio::posix::descriptor_base::wait_type type);
    void arm();
    bool ready_now();
    boost::asio::awaitable<void> wait(steady::time_point until);
    bool pump_sessions();
    void flush_sessions();

    // --- time_caps.cpp -----------------------------------------------------------------------
    /// The session's cap, warning and idle timeout: the break-glass grant's, else the target's.
    void set_time_limits();
    bool check_time(steady::time_point now);
    /// When the loop must look again at the latest, for the timers of the current phase.
    [[nodiscard]] steady::time_point next_deadline(steady::time_point until) const;

    // --- sign_in.cpp -------------------------------------------------------------------------
    void on_auth(MessageHandle m);
    void on_publickey(MessageHandle m);
    void on_kbd_start(MessageHandle m);
    void on_kbd_response(MessageHandle m);
    bool step_auth();
    bool finish_device_login();
    /// What to tell the client (logged, counted) when new sessions are refused: recording storage is
    /// full (StorageGuard) or the open-file limit is nearly used up (DescriptorBudget); nothing: admitted.
    std::optional<std::string> admission_refusal();
    void refuse_auth(MessageHandle m, const std::string& user_message, const std::string& log_reason,
                     bool counted = true);
    void admit(MessageHandle m, const std::string& identity, const std::vector<std::string>& groups,
               const std::string& method);
    void start_device_login();
    /// The completion handler of a check the sign-in spawned (device login, break-glass): on the
    /// connection's strand, stores the result — or `on_error` when the check threw, which is logged —
    /// in `slot` of the connection if it still exists, and kicks the loop.
    template <class T>
    auto deliver_to(std::optional<T> Connection::*slot, T on_error) {
        return boost::asio::bind_executor(
            ex_, [weak = weak_from_this(), slot, on_error = std::move(on_error)](std::exception_ptr e, T r) mutable {
                auto self = weak.lock();
                if (!self) return;
                if (e) {
                    logging::LogEscaped{"ssh sign-in check"}(e);
                    r = std::move(on_error);
                }
                (*self).*slot = std::move(r);
                self->kick();
            });
    }

    // --- breakglass_sign_in.cpp --------------------------------------------------------------
    void on_breakglass_start(MessageHandle m);
    void on_breakglass_response(MessageHandle m);
    bool finish_breakglass();

    // --- backend_leg.cpp ---------------------------------------------------------------------
    void start_backend();
    void finish_admit();
    void fail_backend(const std::string& why, const std::string& user_message);
    bool step_backend();

    // --- channel_requests.cpp ----------------------------------------------------------------
    void on_channel_open(MessageHandle m);
    void on_channel_request(MessageHandle m);
    bool start_request(ChannelPair& p, ssh_message m, bool& done);
    bool step_requests(ChannelPair& p);

    // --- channel_relay.cpp -------------------------------------------------------------------
    bool step_pair(ChannelPair& p);
    bool relay(ChannelPair& p);
    bool close_channels(ChannelPair& p, bool c_alive, bool b_alive);
    bool record_data(ChannelPair& p, bool sftp_stream, session::EventKind kind, session::Direction dir,
                     std::string_view bytes);
    ChannelPair* find_pair(ssh_channel c);
    static void on_exit_status(ssh_session, ssh_channel, int status, void* user);
    static void on_exit_signal(ssh_session, ssh_channel, const char* sig, int core, const char* msg, const char*,
                               void* user);
    static void on_backend_close(ssh_session, ssh_channel, void* user);
    static void on_client_close(ssh_session, ssh_channel, void* user);
    static void on_client_signal(ssh_session, ssh_channel, const char* sig, void* user);
    static void on_agent_request(ssh_session, ssh_channel, void* user);

    std::shared_ptr<Services> svc_;
    boost::asio::any_io_executor ex_;
    boost::asio::ip::tcp::socket sock_;
    std::string peer_;
    std::string peer_addr_;
    SessionScope scope_;

    // Sessions first: members are destroyed in reverse order, so the events, channels and messages
    // below go before the sessions they belong to (teardown() does it explicitly anyway).
    PeerSessionHandle srv_;
    PeerSessionHandle be_;

    // readiness
    boost::asio::steady_timer wake_;
    bool kicked_ = false;
    bool armed_[waits] = {};
    // Asio waits on duplicates of the sockets libssh owns: libssh closes its descriptor when the peer
    // goes away, and a reused descriptor number must never be deregistered from under another socket.
    std::optional<boost::asio::posix::stream_descriptor> cfd_;
    std::optional<boost::asio::posix::stream_descriptor> bfd_;
    SessionEvent srv_ev_;
    SessionEvent be_ev_;
    int ready_spins_ = 0;
    std::size_t c_unflushed_ = 0, b_unflushed_ = 0;

    // the connection's phase and end
    enum class Phase { kex, auth, open } phase_ = Phase::kex;
    bool ending_ = false;
    session::CloseReason reason_ = session::CloseReason::none;
    std::string detail_;
    steady::time_point grace_deadline_{};
    steady::time_point linger_deadline_ = steady::time_point::max();
    std::uint64_t closer_id_ = 0;

    // sign-in
    std::string login_user_;
    std::optional<gg::ssh::Login> login_;
    std::string login_problem_;
    const config::Target* target_ = nullptr;
    std::string identity_;
    std::string proven_key_fp_;  ///< a client key whose signature libssh verified
    enum class Kbd { none, waiting_prompt, prompted, bg_prompted, waiting_result, failing } kbd_ = Kbd::none;
    MessageHandle held_;       ///< the keyboard-interactive request waiting for a prompt or a result
    MessageHandle admit_msg_;  ///< the approved sign-in, answered once the backend is ready
    std::string admit_method_;
    std::string failing_reason_;
    bool device_started_ = false;
    std::optional<std::string> device_url_;
    std::string device_code_;
    std::optional<identity::DeviceLoginResult> device_result_;
    std::optional<breakglass::Decision> bg_decision_;
    std::optional<breakglass::Grant> grant_;  ///< the consumed emergency account of a break-glass session

    // time caps
    session::TimeLimits limits_;
    std::string cap_source_;
    std::size_t warnings_sent_ = 0;
    steady::time_point last_activity_ = steady::now();

    // backend
    enum class Be { none, resolving, tcp_ready, connecting, authenticating, ready, failed } be_state_ = Be::none;
    bool backend_ready_ = false;
    int backend_fd_ = -1;  ///< the backend socket, given to be_ (SSH_OPTIONS_FD); teardown() closes it
    bool be_connect_called_ = false;
    KeyHandle be_key_;
    std::string be_password_;
    std::string be_error_user_;  ///< what the user is told about a failed backend
    steady::time_point be_deadline_ = steady::time_point::max();

    // channels
    std::list<std::unique_ptr<ChannelPair>> pairs_;
    std::vector<std::string> sftp_events_;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
    bool recording_backed_up_ = false;
};

}  // namespace gg::proxy::ssh
