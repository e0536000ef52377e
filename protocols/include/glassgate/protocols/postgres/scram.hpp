#pragma once
// The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, and PostgreSQL's
// MD5 password response. Sans-IO: the caller carries the strings in SASLInitialResponse/SASLResponse
// and AuthenticationSASLContinue/SASLFinal. Crypto through OpenSSL only.
// https://www.postgresql.org/docs/15/sasl-authentication.html
//
// As PostgreSQL does it: no channel binding (gs2 header "n,,", c=biws), an empty user name in
// client-first (the server takes the startup packet's user). The password is used as given: libpq
// applies SASLprep, which leaves ASCII passwords unchanged, so non-ASCII passwords must already be
// in SASLprep (NFKC) form.
//
// PBKDF2 runs in on_server_first() and costs `i` HMAC iterations (4096 by default, ~2 ms; the cap
// below is seconds): a caller on an event loop runs it on a worker.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/postgres/base64.hpp"
#include "glassgate/protocols/postgres/error.hpp"

namespace gg::pg {

/// What PBKDF2 yields for one (password, salt, iteration count): ClientKey and ServerKey. A caller may
/// keep them and hand them to the next exchange with the same server verifier to skip PBKDF2 (pgbouncer
/// does the same). As sensitive as the password; wiped on destruction.
struct ScramKeys {
    std::string salt_b64;
    int iterations = 0;
    std::array<std::byte, 32> client_key{};
    std::array<std::byte, 32> server_key{};
    ScramKeys() = default;
    ScramKeys(const ScramKeys&) = default;
    ScramKeys& operator=(const ScramKeys&) = default;
    ~ScramKeys();
};

class ScramClient {
public:
    /// Fewer iterations than this is a downgrade we refuse (PostgreSQL's default is 4096).
    static constexpr int min_iterations = 1000;
    /// More than this would stall the caller for many seconds: a hostile or broken server.
    static constexpr int max_iterations = 10'000'000;

    /// `client_nonce`: printable ASCII without ',' (production: scram_client_nonce(); tests: fixed).
    /// `cached`: keys from an earlier exchange with the same password; used only if the server's salt
    /// and iteration count are the ones they were derived for, otherwise PBKDF2 runs as usual. The caller
    /// must only pass keys derived from this same password (key its cache on the password).
    ScramClient(std::string_view password, std::string client_nonce, const ScramKeys* cached = nullptr);
    ~ScramClient();
    ScramClient(const ScramClient&) = delete;
    ScramClient& operator=(const ScramClient&) = delete;

    /// The client-first message, "n,,n=,r=<nonce>", for SASLInitialResponse.
    std::string client_first();

    /// Checks the server-first message "r=<nonce>,s=<salt>,i=<iterations>" and returns the
    /// client-final message "c=biws,r=<nonce>,p=<proof>" for SASLResponse.
    /// Errors: scram_out_of_order (client_first() not called, or called twice), scram_malformed
    /// (not r=,s=,i= in that order, bad characters, garbage), scram_refused (a mandatory extension
    /// m=, a server nonce that does not strictly extend ours, an invalid or empty salt, an
    /// iteration count outside min_iterations..max_iterations), crypto_failure.
    [[nodiscard]] Result<std::string> on_server_first(std::string_view server_first);

    /// Verifies the server-final message "v=<signature>" in constant time: success means the
    /// server knows the password's verifier. Errors: scram_server_error ("e=<reason>"),
    /// scram_bad_signature, scram_malformed, scram_out_of_order.
    [[nodiscard]] Result<void> on_server_final(std::string_view server_final);

    /// After a successful on_server_first(): the keys it used (derived or cached), for a cache.
    [[nodiscard]] const ScramKeys& keys() const noexcept { return keys_; }
    /// Whether on_server_first() took the keys from `cached` instead of running PBKDF2.
    [[nodiscard]] bool used_cached_keys() const noexcept { return used_cache_; }

private:
    enum class State { start, first_sent, final_sent, done, failed };
    State state_ = State::start;
    std::string password_;
    std::string nonce_;
    std::string client_first_bare_;
    std::string auth_message_;
    Bytes server_key_;
    const ScramKeys* cached_ = nullptr;
    ScramKeys keys_;
    bool used_cache_ = false;
};

/// Base64 of 18 random bytes (as libpq): 24 printable characters without ','.
std::string scram_client_nonce();

/// PostgreSQL's MD5 password response: "md5" + md5hex(md5hex(password + user) + salt).
/// Throws crypto::CryptoError if OpenSSL cannot compute MD5 (e.g. a FIPS-only configuration).
std::string md5_password(std::string_view user, std::string_view password, const std::array<std::byte, 4>& salt);

}  // namespace gg::pg
