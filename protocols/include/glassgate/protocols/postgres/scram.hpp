#pragma once
// SCRAM-SHA-256 client (RFC 5802, RFC 7677) as PostgreSQL uses it: no channel binding (gs2 header
// "n,,"), empty user name in client-first (the server takes the startup packet's user), server
// signature verified. And PostgreSQL's MD5 password response. Crypto through OpenSSL only.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/codec.hpp"

namespace gg::pg {

class ScramClient {
public:
    /// `client_nonce`: printable, no ','; production uses scram_client_nonce().
    ScramClient(std::string_view password, std::string client_nonce);
    ~ScramClient();
    ScramClient(const ScramClient&) = delete;
    ScramClient& operator=(const ScramClient&) = delete;

    /// "n,,n=,r=<nonce>"
    std::string client_first();
    /// Checks the server-first message and returns the client-final message (with the proof).
    Result<std::string> on_server_first(std::string_view server_first);
    /// Verifies the server's signature (constant time). An "e=" message is reported as an error.
    Result<bool> on_server_final(std::string_view server_final);

private:
    std::string password_;
    std::string nonce_;
    std::string client_first_bare_;
    std::string auth_message_;
    Bytes salted_;
};

/// Base64 of 18 random bytes.
std::string scram_client_nonce();

/// "md5" + md5hex(md5hex(password + user) + salt)
std::string md5_password(std::string_view user, std::string_view password, const std::array<std::byte, 4>& salt);

/// Standard base64 (with padding), used by SCRAM.
std::string base64_encode(ByteView b);
std::optional<Bytes> base64_decode(std::string_view s);

}  // namespace gg::pg
