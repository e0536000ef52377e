#pragma once
// Verification of a signed JWT (RFC 7519) in JWS compact serialization (RFC 7515 section 7.1):
//
//   BASE64URL(header JSON) '.' BASE64URL(claims JSON) '.' BASE64URL(signature)
//   \___________ signing input (ASCII) ___________/
//
// Order of checks, first failure wins: size cap (before any decoding) -> three parts, each strict
// base64url -> header is a JSON object (bounded depth) -> `alg` in the accepted set -> no `crit`
// -> key chosen from the KeySet only (`jku`, `x5u`, `jwk`, `x5c` headers are ignored: a token never
// brings its own key) -> key fits the alg -> signature -> claims (bounded depth) -> iss -> aud -> azp
// -> exp -> nbf -> iat -> sub -> username -> groups. Pure: `now` is a parameter.

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/protocols/oidc/jwk.hpp"

namespace gg::oidc {

/// What a token must satisfy. Built once from the configuration and shared read-only.
struct VerifyOptions {
    std::string issuer;                  ///< `iss` must equal this exactly (no normalisation)
    std::vector<std::string> audience;   ///< `aud` must contain one of these; empty: every token fails
    std::string client_id;               ///< compared with `azp`
    bool require_azp_match = true;       ///< OIDC Core 3.1.3.7 items 4-5, see verify_jwt
    std::string username_claim = "sub";  ///< claim holding the glassgate identity (non-empty string)
    std::string groups_claim = "groups"; ///< array of strings, a single string, or absent (no groups)
    std::chrono::seconds skew{60};       ///< clock tolerance applied to exp, nbf and iat
    std::size_t max_token_bytes = 16 * 1024;  ///< checked before any decoding
    std::size_t max_json_depth = 10;     ///< for the header and the claims
};

/// Why a token was refused. public_message() gives the text a client may see; the precise reason
/// goes to the log and the audit record.
enum class VerifyError {
    none,
    token_too_large,     ///< over max_token_bytes
    malformed,           ///< not three strict base64url parts, header/claims not a JSON object, bad kid type
    unsupported_alg,     ///< `alg` missing, "none", HS*, or anything outside JwsAlg
    unsupported_header,  ///< `crit` present: we implement no JWS extensions, so must refuse (RFC 7515 4.1.11)
    missing_kid,         ///< no `kid` while the key set holds several keys
    unknown_kid,         ///< the `kid` is not in the key set (or the set is empty): see VerifyResult::unknown_kid
    key_mismatch,        ///< the selected key may not verify this alg (type, curve, declared alg/use/key_ops)
    bad_signature,       ///< the signature does not verify with the selected key
    wrong_issuer,
    wrong_audience,
    wrong_azp,
    expired,
    not_yet_valid,       ///< `nbf` in the future
    issued_in_future,    ///< `iat` in the future
    missing_claim,       ///< iss, aud, exp, sub or the username claim absent
    invalid_claim,       ///< a claim of the wrong type or value (e.g. control characters in a name)
};

/// Who signed in, as established by a verified token.
struct Identity {
    std::string username;             ///< the claim named by VerifyOptions::username_claim
    std::vector<std::string> groups;  ///< the claim named by VerifyOptions::groups_claim
    std::string subject;              ///< `sub`
    std::string issuer;               ///< `iss`
    std::chrono::system_clock::time_point expires;  ///< `exp`
    std::string kid;                  ///< the key that verified the token (empty if the key has none)
    std::string alg;                  ///< e.g. "RS256"
};

struct VerifyResult {
    std::optional<Identity> identity;  ///< set exactly when error == VerifyError::none
    VerifyError error = VerifyError::none;
    /// Precise and safe to log: never contains the token or its signature; values taken from the
    /// token (kid, iss, ...) are passed through printable() and truncated.
    std::string reason;
    /// The token names a kid that the key set lacks (or the set is empty). The IdP may have rotated
    /// its keys: the caller may refresh the JWKS (rate-limited) and verify again.
    bool unknown_kid = false;

    [[nodiscard]] bool ok() const noexcept { return error == VerifyError::none; }
};

/// Signatures that verified with the keys of ONE KeySet, so a token presented again (a client that
/// reconnects with the same token) costs a SHA-256 instead of a public-key operation. Only
/// successes are remembered, under a digest of (kid, alg, signing input, signature); every other
/// check (claims, exp, nbf, ...) still runs on every use. Use one cache per KeySet and drop it with
/// the set: a new JWKS starts empty. At most `capacity` entries (emptied when full).
/// verify_jwt asks this interface; SignatureCache is the plain data structure (not thread-safe:
/// protocols/ has no locks), and a caller shared by threads wraps it in a locked one of its own.
class SignatureMemo {
public:
    virtual ~SignatureMemo() = default;
    [[nodiscard]] virtual bool contains(std::string_view kid, std::string_view alg, std::string_view signing_input,
                                        std::string_view signature) const = 0;
    virtual void insert(std::string_view kid, std::string_view alg, std::string_view signing_input,
                        std::string_view signature) = 0;
};

class SignatureCache final : public SignatureMemo {
public:
    explicit SignatureCache(std::size_t capacity = 4096) : capacity_(capacity) {}
    [[nodiscard]] bool contains(std::string_view kid, std::string_view alg, std::string_view signing_input,
                                std::string_view signature) const override;
    void insert(std::string_view kid, std::string_view alg, std::string_view signing_input,
                std::string_view signature) override;
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

private:
    using Entry = std::array<unsigned char, 32>;
    static Entry digest(std::string_view kid, std::string_view alg, std::string_view signing_input,
                        std::string_view signature);
    std::size_t capacity_;
    std::set<Entry> entries_;
};

/// Verifies `token` against `keys` and `options` at time `now`. Never throws on any input; the
/// refusal is a value. azp (OIDC Core 3.1.3.7): with require_azp_match, a present `azp` must equal
/// client_id, and a token with several audiences must carry `azp`. With `cache` (built for this
/// `keys`), a signature found there is not verified again, and one that verifies is added.
[[nodiscard]] VerifyResult verify_jwt(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                                      std::chrono::system_clock::time_point now, SignatureMemo* cache = nullptr);

/// Short, generic text for the client ("invalid token", "token expired"): tells an attacker nothing
/// about keys, issuers or audiences.
[[nodiscard]] std::string_view public_message(VerifyError e) noexcept;

/// The enumerator's name, e.g. "bad_signature" (for metrics labels and audit fields).
[[nodiscard]] std::string_view to_string(VerifyError e) noexcept;

}  // namespace gg::oidc
