// The PostgreSQL protocol by hand, for tests that must send or serve what real clients and servers never
// would: big-endian integers, whole messages, and a scripted backend on loopback.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness/net.hpp"

namespace gg::harness {

/// A big-endian Int32 / Int16 as on the wire.
[[nodiscard]] std::string be32(std::uint32_t v);
[[nodiscard]] std::string be16(std::uint16_t v);
/// A protocol message as on the wire: type byte, Int32 length (itself included), body.
[[nodiscard]] std::string wire(char type, const std::string& body);

/// A scripted PostgreSQL-speaking server on 127.0.0.1, standing in for a backend that misbehaves in ways
/// a real PostgreSQL cannot be made to. Each connection, one at a time:
///   startup packet (no SSLRequest first: the target has tls = "disable") -> AuthenticationCleartextPassword
///   -> PasswordMessage -> AuthenticationOk, ParameterStatus (server_version 15.0, UTF8, ISO, MDY, ...),
///   BackendKeyData (4242, 0x12345678), ReadyForQuery 'I' -> the first Query is answered with the raw
///   bytes `replies[i % replies.size()]` for connection i -> messages are read until the client hangs up.
/// A connection that sends something else is closed. Reads time out after 10 s.
class ScriptedPgBackend {
 public:
    /// Starts listening and serving at once. `replies` must not be empty.
    explicit ScriptedPgBackend(std::vector<std::string> replies);
    /// Stops serving (within 100 ms of the current connection ending) and closes the socket.
    ~ScriptedPgBackend();
    ScriptedPgBackend(const ScriptedPgBackend&) = delete;
    ScriptedPgBackend& operator=(const ScriptedPgBackend&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return listener_.port(); }
    /// How many Query messages were answered.
    [[nodiscard]] int queries_seen() const noexcept { return queries_.load(); }
    /// The password of the last PasswordMessage (what the proxy sent as the backend credential).
    [[nodiscard]] std::string password_seen() const;

 private:
    void serve();
    void talk(int connection, const std::string& reply);

    std::vector<std::string> replies_;
    LoopbackListener listener_;
    std::atomic<bool> stop_{false};
    std::atomic<int> queries_{0};
    mutable std::mutex mu_;
    std::string password_;
    std::thread thread_;
};

}  // namespace gg::harness
