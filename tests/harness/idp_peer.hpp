// The test OpenID Connect provider (tests/peers/idp/server.mjs, oidc-provider 9 on Node) on 127.0.0.1.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/files.hpp"
#include "harness/process.hpp"

namespace gg::harness {

struct IdpUser {
    std::string name{};               ///< login name = ID token `sub`
    std::vector<std::string> groups{};  ///< the `groups` claim
};

struct IdpOptions {
    std::filesystem::path dir{};      ///< empty: a TempDir removed afterwards; else used and kept
    std::vector<IdpUser> users = {{"alice", {"dba"}}, {"bob", {}}};  ///< unlisted logins get no groups
    std::filesystem::path jwks_file{};  ///< private JWKS to sign with; empty: oidc-provider's fixed dev key
    std::chrono::seconds id_token_ttl{3600};
    std::chrono::seconds device_code_ttl{600};  ///< lifetime of a device code (expiry tests shorten it)
    std::optional<std::uint16_t> port{};  ///< fixed port; default: a free one
    std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
};

/// `node tests/peers/idp/server.mjs --port P --issuer http://127.0.0.1:P` as a child. Ready when
/// GET <issuer>/.well-known/openid-configuration answers 200 with that issuer. One public client
/// `glassgate` (device_code and refresh_token grants); any login with any password signs in through the
/// provider's development pages. Needs tests/peers/idp/node_modules (`npm ci`, done by
/// scripts/install-deps.sh). Throws PeerError (with the tail of its log) when it cannot start.
class IdpPeer : public LoopbackPeer {
 public:
    explicit IdpPeer(IdpOptions options = {});
    ~IdpPeer();

    /// "http://127.0.0.1:PORT" (no trailing slash).
    [[nodiscard]] std::string issuer() const { return "http://127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::string client_id() const { return "glassgate"; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "idp.log"; }
    /// Pid (= process group) of node; 0 after stop().
    [[nodiscard]] pid_t pid() const noexcept { return server_.pid(); }

    /// Runs approve.mjs: approves (or denies) the device authorization behind `verification_uri_complete`
    /// as `user` through the provider's pages. exit_code 0 when the provider confirmed the outcome.
    [[nodiscard]] RunResult approve(std::string_view verification_uri_complete, std::string_view user,
                                    bool deny = false) const;
    /// Runs device-login.mjs with `extra_args` (e.g. {"--json"}, {"--deny"}, {"--scope", "openid"}).
    [[nodiscard]] RunResult device_login(std::string_view user, const std::vector<std::string>& extra_args = {}) const;
    /// A fresh ID token for `user` from a whole device-code login. Throws PeerError on failure.
    [[nodiscard]] std::string device_login_token(std::string_view user) const;

    /// Stops and starts again on the same port (same issuer), e.g. with other signing keys.
    /// State (sessions, grants, codes) is in memory and lost.
    void restart(const std::optional<std::filesystem::path>& jwks_file = std::nullopt);
    void stop();

    /// Writes a private JWKS with one new key per kid (make-jwks.mjs), for IdpOptions::jwks_file or
    /// restart(); with `public_out` also the public half. `alg`: RS256, PS256 or ES256. Throws PeerError.
    static void make_jwks(const std::filesystem::path& out, const std::vector<std::string>& kids,
                          const std::filesystem::path& public_out = {}, std::string_view alg = "RS256");

    /// tests/peers/idp in the source tree.
    [[nodiscard]] static std::filesystem::path scripts_dir();

 private:
    void start(std::optional<std::uint16_t> port);

    IdpOptions options_;
    TempDir dir_;
    std::filesystem::path node_;
    Process server_;
};

}  // namespace gg::harness
