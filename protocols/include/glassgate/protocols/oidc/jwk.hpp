#pragma once
// JSON Web Keys (RFC 7517) and key sets, as published by an IdP at its `jwks_uri`: public signature
// keys only. Supported: RSA (RFC 7518 6.3; modulus at least KeyPolicy::min_rsa_bits), EC P-256 and
// P-384 (RFC 7518 6.2; the point must lie on the curve), OKP Ed25519 (RFC 8037). Keys are built with
// OpenSSL 3 (EVP_PKEY_fromdata) and kept behind an opaque, immutable, shared handle: a KeySet is
// cheap to copy and safe to use from several threads at once.
//
//   {"keys": [ {"kty":"RSA", "kid":"k1", "use":"sig", "alg":"RS256", "n":"<b64url>", "e":"AQAB"},
//              {"kty":"EC",  "kid":"k2", "crv":"P-256", "x":"<b64url 32 B>", "y":"<b64url 32 B>"},
//              {"kty":"OKP", "kid":"k3", "crv":"Ed25519", "x":"<b64url 32 B>"} ]}

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/oidc/alg.hpp"
#include "glassgate/protocols/oidc/error.hpp"

namespace gg::oidc {

enum class KeyType { rsa, ec, okp };
enum class Curve { none, p256, p384, ed25519 };

/// Limits applied while parsing a key set. Defaults suit every public IdP we know of.
struct KeyPolicy {
    std::size_t max_document_bytes = 1u << 20;  ///< larger documents are refused before parsing
    std::size_t max_json_depth = 8;             ///< {"keys":[{"key_ops":[...]}]} needs 3
    std::size_t max_keys = 100;                 ///< further entries are rejected with a reason
    int min_rsa_bits = 2048;                    ///< smaller moduli are factorable or close to it
    int max_rsa_bits = 8192;                    ///< bounds the cost of one verification
};

/// One public key usable for signature verification. Immutable; copies share the OpenSSL key.
class Jwk {
public:
    [[nodiscard]] const std::string& kid() const noexcept { return kid_; }  ///< empty when the JWK has none
    [[nodiscard]] const std::optional<std::string>& alg() const noexcept { return alg_; }
    [[nodiscard]] const std::optional<std::string>& use() const noexcept { return use_; }
    [[nodiscard]] const std::optional<std::vector<std::string>>& key_ops() const noexcept { return key_ops_; }
    [[nodiscard]] KeyType kty() const noexcept { return kty_; }
    [[nodiscard]] Curve curve() const noexcept { return curve_; }
    /// RSA modulus size, or the curve's size (256, 384; 253 for Ed25519 as OpenSSL reports it).
    [[nodiscard]] int bits() const noexcept { return bits_; }

    /// Why this key must not verify a token signed with `alg`: the key type or curve does not fit
    /// the algorithm, the key declares another `alg`, a `use` other than "sig", or `key_ops` without
    /// "verify". std::nullopt when it may.
    [[nodiscard]] std::optional<std::string> unfit_for(JwsAlg alg) const;

    /// Verifies `signature` over `signing_input` with `alg`, in JWS encoding: RSA PKCS#1 v1.5 or PSS
    /// (salt length = hash length, MGF1 with the same hash) as is, ECDSA as raw r||s (RFC 7518 3.4),
    /// Ed25519 as 64 bytes. Does not check unfit_for(); false on a key/alg type mismatch, on a bad
    /// signature and on any OpenSSL failure (fail closed). Thread-safe.
    [[nodiscard]] bool verify(JwsAlg alg, ByteView signing_input, ByteView signature) const noexcept;

private:
    friend class KeySet;
    struct Key;  // owns the EVP_PKEY

    std::shared_ptr<const Key> key_;
    std::string kid_;
    std::optional<std::string> alg_;
    std::optional<std::string> use_;
    std::optional<std::vector<std::string>> key_ops_;
    KeyType kty_ = KeyType::rsa;
    Curve curve_ = Curve::none;
    int bits_ = 0;
};

/// A key of the document that was skipped, and why (for the log; the other keys still load).
struct KeyRejection {
    std::size_t index = 0;  ///< position in the "keys" array
    std::string kid;        ///< as printable() made it: safe to log; empty when absent
    std::string reason;
};

/// A parsed JWKS. Default-constructed: empty (verifies nothing).
class KeySet {
public:
    KeySet() = default;

    /// Parses a JWKS document. Errors (the whole document is refused): errc::too_large,
    /// errc::not_json (e.g. an HTML error page), errc::bad_shape (not an object, no "keys" array).
    /// A key that cannot be used (unknown kty, symmetric, too small, point off the curve, private
    /// material included, duplicate kid, malformed member) is skipped and listed in rejected().
    /// A document whose every key was rejected parses into an empty set: the caller decides.
    [[nodiscard]] static Result<KeySet> parse(std::string_view jwks_json, const KeyPolicy& policy = {});

    [[nodiscard]] const std::vector<Jwk>& keys() const noexcept { return keys_; }
    [[nodiscard]] const std::vector<KeyRejection>& rejected() const noexcept { return rejected_; }
    [[nodiscard]] std::size_t size() const noexcept { return keys_.size(); }
    [[nodiscard]] bool empty() const noexcept { return keys_.empty(); }
    /// The key with this kid (kids are unique within a set), or nullptr.
    [[nodiscard]] const Jwk* find(std::string_view kid) const noexcept;

private:
    std::vector<Jwk> keys_;
    std::vector<KeyRejection> rejected_;
};

}  // namespace gg::oidc
