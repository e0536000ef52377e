#include "glassgate/session/session.hpp"

#include <array>
#include <utility>

#include <boost/json/object.hpp>

namespace gg::session {
namespace {

template <typename E, std::size_t N>
std::optional<E> from_table(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view s) noexcept {
    for (const auto& [e, name] : table) {
        if (name == s) return e;
    }
    return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view to_table(const std::array<std::pair<E, std::string_view>, N>& table, E e) noexcept {
    for (const auto& [v, name] : table) {
        if (v == e) return name;
    }
    return "unknown";
}

constexpr std::array<std::pair<Protocol, std::string_view>, 2> protocol_names{{
    {Protocol::postgres, "postgres"}, {Protocol::ssh, "ssh"}}};
constexpr std::array<std::pair<AuthMethod, std::string_view>, 3> auth_names{{
    {AuthMethod::none, "none"}, {AuthMethod::sso, "sso"}, {AuthMethod::breakglass, "breakglass"}}};
constexpr std::array<std::pair<State, std::string_view>, 5> state_names{{{State::authenticating, "authenticating"},
                                                                          {State::connecting, "connecting"},
                                                                          {State::active, "active"},
                                                                          {State::closing, "closing"},
                                                                          {State::closed, "closed"}}};
constexpr std::array<std::pair<CloseReason, std::string_view>, 14> close_names{{
    {CloseReason::none, "none"},
    {CloseReason::client_disconnect, "client_disconnect"},
    {CloseReason::backend_disconnect, "backend_disconnect"},
    {CloseReason::time_cap, "time_cap"},
    {CloseReason::idle_timeout, "idle_timeout"},
    {CloseReason::auth_failed, "auth_failed"},
    {CloseReason::denied, "denied"},
    {CloseReason::backend_error, "backend_error"},
    {CloseReason::recording_failed, "recording_failed"},
    {CloseReason::protocol_error, "protocol_error"},
    {CloseReason::shutdown, "shutdown"},
    {CloseReason::admin_kill, "admin_kill"},
    {CloseReason::internal_error, "internal_error"},
    {CloseReason::proxy_restarted, "proxy_restarted"},
}};

constexpr std::string_view crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

std::int64_t to_us(TimePoint t) { return t.time_since_epoch().count(); }

}  // namespace

std::string_view to_string(Protocol p) noexcept { return to_table(protocol_names, p); }
std::string_view to_string(AuthMethod a) noexcept { return to_table(auth_names, a); }
std::string_view to_string(State s) noexcept { return to_table(state_names, s); }
std::string_view to_string(CloseReason r) noexcept { return to_table(close_names, r); }
std::optional<Protocol> protocol_from_string(std::string_view s) noexcept { return from_table(protocol_names, s); }
std::optional<AuthMethod> auth_method_from_string(std::string_view s) noexcept { return from_table(auth_names, s); }
std::optional<State> state_from_string(std::string_view s) noexcept { return from_table(state_names, s); }
std::optional<CloseReason> close_reason_from_string(std::string_view s) noexcept {
    return from_table(close_names, s);
}

std::string make_session_id(TimePoint now, const std::uint8_t (&random10)[10]) {
    // 128 bits: 48-bit milliseconds since the epoch, then 80 random bits; 26 base32 digits
    // (the first digit carries only 3 bits, so it is 0-7 until the year 10889).
    const auto ms = static_cast<std::uint64_t>(to_us(now) / 1000) & 0xFFFF'FFFF'FFFFull;
    std::array<std::uint8_t, 16> bits{};
    for (int i = 0; i < 6; ++i) bits[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
    for (int i = 0; i < 10; ++i) bits[static_cast<std::size_t>(6 + i)] = random10[i];
    std::string out(26, '0');
    // Take 5 bits at a time from a 130-bit big-endian number (two leading zero bits).
    for (int d = 0; d < 26; ++d) {
        int bit = d * 5 - 2;  // position of the digit's first bit in the 128-bit value
        unsigned v = 0;
        for (int b = 0; b < 5; ++b, ++bit) {
            v <<= 1;
            if (bit >= 0) v |= (bits[static_cast<std::size_t>(bit / 8)] >> (7 - bit % 8)) & 1u;
        }
        out[static_cast<std::size_t>(d)] = crockford[v];
    }
    return out;
}

bool is_valid_session_id(std::string_view id) noexcept {
    if (id.size() != 26 || id[0] > '7') return false;
    for (char c : id) {
        if (crockford.find(c) == std::string_view::npos) return false;
    }
    return true;
}

boost::json::object to_json(const SessionRecord& r) {
    boost::json::object o;
    o["id"] = r.id;
    o["protocol"] = to_string(r.protocol);
    o["identity"] = r.identity;
    o["auth"] = to_string(r.auth);
    o["target"] = r.target;
    o["client_address"] = r.client_address;
    o["reason"] = r.reason;
    o["state"] = to_string(r.state);
    o["started_us"] = to_us(r.started);
    o["deadline_us"] = r.deadline ? boost::json::value(to_us(*r.deadline)) : boost::json::value(nullptr);
    o["ended_us"] = r.ended ? boost::json::value(to_us(*r.ended)) : boost::json::value(nullptr);
    o["bytes_client_to_server"] = r.bytes_client_to_server;
    o["bytes_server_to_client"] = r.bytes_server_to_client;
    o["close_reason"] = to_string(r.close_reason);
    o["close_detail"] = r.close_detail;
    o["recording"] = r.recording;
    o["sealed_events"] = r.sealed_events ? boost::json::value(*r.sealed_events) : boost::json::value(nullptr);
    o["sealed_chain_hash"] = r.sealed_chain_hash;
    o["instance"] = r.instance;
    return o;
}

Session::Session(std::string id, Protocol protocol, std::string client_address, TimePoint now) {
    rec_.id = std::move(id);
    rec_.protocol = protocol;
    rec_.client_address = std::move(client_address);
    rec_.started = now;
}

Transition Session::move(State from, State to) {
    if (rec_.state != from) {
        return {false, std::string("cannot go from ") + std::string(to_string(rec_.state)) + " to " +
                           std::string(to_string(to)) + " (expected " + std::string(to_string(from)) + ")"};
    }
    rec_.state = to;
    return {};
}

Transition Session::authorize(std::string identity, AuthMethod method, std::string target,
                              std::optional<std::chrono::microseconds> max_session, std::string reason) {
    if (method == AuthMethod::none) return {false, "an authorized session needs an authentication method"};
    if (identity.empty()) return {false, "an authorized session needs an identity"};
    if (max_session && max_session->count() <= 0) return {false, "max_session must be positive"};
    auto t = move(State::authenticating, State::connecting);
    if (!t) return t;
    rec_.identity = std::move(identity);
    rec_.auth = method;
    rec_.target = std::move(target);
    rec_.reason = std::move(reason);
    if (max_session) rec_.deadline = rec_.started + *max_session;
    return t;
}

Transition Session::activate() { return move(State::connecting, State::active); }

Transition Session::begin_close(CloseReason why, std::string detail) {
    if (why == CloseReason::none) return {false, "a close needs a reason"};
    auto t = move(State::active, State::closing);
    if (!t) return t;
    rec_.close_reason = why;
    rec_.close_detail = std::move(detail);
    return t;
}

Transition Session::finish(TimePoint now) {
    auto t = move(State::closing, State::closed);
    if (t) rec_.ended = now;
    return t;
}

Transition Session::fail(CloseReason why, std::string detail, TimePoint now) {
    if (why == CloseReason::none) return {false, "a close needs a reason"};
    if (rec_.state == State::closed) return {false, "session already closed"};
    if (rec_.state != State::closing) {
        rec_.close_reason = why;
        rec_.close_detail = std::move(detail);
    }
    rec_.state = State::closed;
    rec_.ended = now;
    return {};
}

void Session::add_bytes(std::uint64_t client_to_server, std::uint64_t server_to_client) noexcept {
    rec_.bytes_client_to_server += client_to_server;
    rec_.bytes_server_to_client += server_to_client;
}

void Session::set_seal(std::uint64_t events, std::string chain_hash) {
    rec_.sealed_events = events;
    rec_.sealed_chain_hash = std::move(chain_hash);
}

std::optional<std::chrono::microseconds> Session::remaining(TimePoint now) const noexcept {
    if (!rec_.deadline) return std::nullopt;
    if (now >= *rec_.deadline) return std::chrono::microseconds{0};
    return std::chrono::duration_cast<std::chrono::microseconds>(*rec_.deadline - now);
}

}  // namespace gg::session
