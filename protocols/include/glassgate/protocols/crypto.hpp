#pragma once
// Thin, typed wrappers over OpenSSL 3 (EVP) for the primitives glassgate uses. No crypto is
// implemented here: every function calls OpenSSL and reports its failure as an exception of type
// CryptoError (these failures mean a broken library or out-of-memory, not bad input), except the
// authenticated decryption, whose failure on tampered input is an expected value (std::nullopt).

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "glassgate/protocols/bytes.hpp"

namespace gg::crypto {

struct CryptoError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr std::size_t sha256_size = 32;
using Digest = std::array<std::byte, sha256_size>;

/// SHA-256 of one buffer.
Digest sha256(ByteView data);

/// Incremental SHA-256.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    void update(ByteView data);
    /// Finishes the hash; the object is reset and can be reused.
    Digest finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// HMAC-SHA-256(key, data).
Digest hmac_sha256(ByteView key, ByteView data);

/// HKDF-SHA-256 (RFC 5869) expanding `ikm` into `length` bytes bound to `info`.
Bytes hkdf_sha256(ByteView ikm, std::string_view info, std::size_t length, ByteView salt = {});

/// Cryptographically secure random bytes (OpenSSL RAND_bytes).
Bytes random_bytes(std::size_t n);

/// Constant-time comparison; false when lengths differ (the length itself is not secret).
bool constant_time_equal(ByteView a, ByteView b) noexcept;

/// Overwrites a buffer so the compiler cannot elide it (OPENSSL_cleanse).
void cleanse(void* p, std::size_t n) noexcept;

inline constexpr std::size_t aes_gcm_key_size = 32;
inline constexpr std::size_t aes_gcm_nonce_size = 12;
inline constexpr std::size_t aes_gcm_tag_size = 16;

/// AES-256-GCM: returns nonce(12) | ciphertext | tag(16). `aad` is authenticated, not encrypted.
Bytes aes256gcm_seal(ByteView key, ByteView plaintext, ByteView aad);
/// Inverse of aes256gcm_seal; std::nullopt if the input is malformed or fails authentication.
std::optional<Bytes> aes256gcm_open(ByteView key, ByteView sealed, ByteView aad);

// Ed25519 (RFC 8032, pure EdDSA: the message is signed as is, no pre-hash). Signatures are
// deterministic: one key and one message always give the same 64 bytes.
inline constexpr std::size_t ed25519_seed_size = 32;
inline constexpr std::size_t ed25519_public_key_size = 32;
inline constexpr std::size_t ed25519_signature_size = 64;
using Ed25519PublicKey = std::array<std::byte, ed25519_public_key_size>;
using Ed25519Signature = std::array<std::byte, ed25519_signature_size>;

/// An Ed25519 private key loaded once into OpenSSL, for signing many messages (loading a key
/// computes its public half, which costs about as much as a signature).
class Ed25519Signer {
public:
    /// `seed` is the 32-byte private key of RFC 8032 section 5.1.5. Throws CryptoError for any other
    /// length. OpenSSL keeps its own copy; the caller wipes `seed`.
    explicit Ed25519Signer(ByteView seed);
    ~Ed25519Signer();
    Ed25519Signer(Ed25519Signer&&) noexcept;
    Ed25519Signer& operator=(Ed25519Signer&&) noexcept;
    Ed25519Signer(const Ed25519Signer&) = delete;
    Ed25519Signer& operator=(const Ed25519Signer&) = delete;

    [[nodiscard]] const Ed25519PublicKey& public_key() const noexcept { return public_key_; }
    [[nodiscard]] Ed25519Signature sign(ByteView message) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    Ed25519PublicKey public_key_{};
};

/// The public key of a 32-byte seed. Throws CryptoError for another length.
Ed25519PublicKey ed25519_public_from_seed(ByteView seed);
/// Signs `message` with the 32-byte seed (loads the key each call; use Ed25519Signer for many).
Ed25519Signature ed25519_sign(ByteView seed, ByteView message);
/// True iff `signature` is a valid Ed25519 signature of `message` by `public_key`. False (never a
/// throw) for a key or signature of the wrong length or a key that is not a valid point.
bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature);

}  // namespace gg::crypto
