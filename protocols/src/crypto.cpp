#include "glassgate/protocols/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>

namespace gg::crypto {
namespace {

const unsigned char* uc(ByteView b) noexcept { return reinterpret_cast<const unsigned char*>(b.data()); }

int to_int(std::size_t n) {
    if (n > static_cast<std::size_t>(INT_MAX)) throw CryptoError("buffer too large for OpenSSL");
    return static_cast<int>(n);
}

/// SHA-256 fetched from the provider once: EVP_sha256() makes OpenSSL 3 look the algorithm up again
/// on every EVP_DigestInit_ex (name comparisons, locks), which dominates hashing small records.
const EVP_MD* sha256_md() {
    static EVP_MD* md = [] {
        EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        if (!m) throw CryptoError("EVP_MD_fetch(SHA256) failed");
        return m;
    }();
    return md;
}

/// AES-256-GCM fetched once, for the same reason (the secret store opens one per connection).
const EVP_CIPHER* aes256gcm_cipher() {
    static EVP_CIPHER* c = [] {
        EVP_CIPHER* f = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
        if (!f) throw CryptoError("EVP_CIPHER_fetch(AES-256-GCM) failed");
        return f;
    }();
    return c;
}

struct CipherCtx {
    EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
    ~CipherCtx() { EVP_CIPHER_CTX_free(p); }
};

}  // namespace

struct Sha256::Impl {
    EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MD_CTX_new();
    if (!impl_->ctx || EVP_DigestInit_ex2(impl_->ctx, sha256_md(), nullptr) != 1) {
        throw CryptoError("EVP_DigestInit_ex(sha256) failed");
    }
}
Sha256::~Sha256() {
    if (impl_) EVP_MD_CTX_free(impl_->ctx);
}
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(ByteView data) {
    if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) throw CryptoError("EVP_DigestUpdate failed");
}

Digest Sha256::finish() {
    Digest d{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(impl_->ctx, reinterpret_cast<unsigned char*>(d.data()), &len) != 1 ||
        len != d.size() || EVP_DigestInit_ex2(impl_->ctx, sha256_md(), nullptr) != 1) {
        throw CryptoError("EVP_DigestFinal_ex failed");
    }
    return d;
}

Digest sha256(ByteView data) {
    Digest d{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(d.data()), &len, sha256_md(),
                   nullptr) != 1) {
        throw CryptoError("EVP_Digest(sha256) failed");
    }
    return d;
}

Digest hmac_sha256(ByteView key, ByteView data) {
    Digest d{};
    unsigned int len = 0;
    if (!HMAC(sha256_md(), key.data(), to_int(key.size()), uc(data), data.size(),
              reinterpret_cast<unsigned char*>(d.data()), &len)) {
        throw CryptoError("HMAC-SHA-256 failed");
    }
    return d;
}

Bytes hkdf_sha256(ByteView ikm, std::string_view info, std::size_t length, ByteView salt) {
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (!kdf) throw CryptoError("HKDF unavailable");
    EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!ctx) throw CryptoError("EVP_KDF_CTX_new failed");
    char digest[] = "SHA256";
    OSSL_PARAM params[5];
    std::size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::byte*>(ikm.data()), ikm.size());
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
    if (!salt.empty()) {
        params[n++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::byte*>(salt.data()), salt.size());
    }
    params[n] = OSSL_PARAM_construct_end();
    Bytes out(length);
    int rc = EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), out.size(), params);
    EVP_KDF_CTX_free(ctx);
    if (rc != 1) throw CryptoError("HKDF derive failed");
    return out;
}

Bytes random_bytes(std::size_t n) {
    Bytes out(n);
    if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), to_int(n)) != 1) {
        throw CryptoError("RAND_bytes failed");
    }
    return out;
}

bool constant_time_equal(ByteView a, ByteView b) noexcept {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void cleanse(void* p, std::size_t n) noexcept { OPENSSL_cleanse(p, n); }

Bytes aes256gcm_seal(ByteView key, ByteView plaintext, ByteView aad) {
    if (key.size() != aes_gcm_key_size) throw CryptoError("AES-256-GCM key must be 32 bytes");
    Bytes out = random_bytes(aes_gcm_nonce_size);
    out.resize(aes_gcm_nonce_size + plaintext.size() + aes_gcm_tag_size);
    CipherCtx c;
    int len = 0;
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (!c.p || EVP_EncryptInit_ex(c.p, aes256gcm_cipher(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(aes_gcm_nonce_size), nullptr) != 1 ||
        EVP_EncryptInit_ex(c.p, nullptr, nullptr, uc(key), o) != 1 ||
        (!aad.empty() && EVP_EncryptUpdate(c.p, nullptr, &len, uc(aad), to_int(aad.size())) != 1) ||
        EVP_EncryptUpdate(c.p, o + aes_gcm_nonce_size, &len, uc(plaintext), to_int(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(c.p, o + aes_gcm_nonce_size + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_GET_TAG, static_cast<int>(aes_gcm_tag_size),
                            o + aes_gcm_nonce_size + plaintext.size()) != 1) {
        throw CryptoError("AES-256-GCM encryption failed");
    }
    return out;
}

std::optional<Bytes> aes256gcm_open(ByteView key, ByteView sealed, ByteView aad) {
    if (key.size() != aes_gcm_key_size) throw CryptoError("AES-256-GCM key must be 32 bytes");
    if (sealed.size() < aes_gcm_nonce_size + aes_gcm_tag_size) return std::nullopt;
    const std::size_t ct_len = sealed.size() - aes_gcm_nonce_size - aes_gcm_tag_size;
    Bytes out(ct_len);
    CipherCtx c;
    int len = 0;
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    const unsigned char* s = uc(sealed);
    if (!c.p || EVP_DecryptInit_ex(c.p, aes256gcm_cipher(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(aes_gcm_nonce_size), nullptr) != 1 ||
        EVP_DecryptInit_ex(c.p, nullptr, nullptr, uc(key), s) != 1) {
        throw CryptoError("AES-256-GCM init failed");
    }
    if ((!aad.empty() && EVP_DecryptUpdate(c.p, nullptr, &len, uc(aad), to_int(aad.size())) != 1) ||
        EVP_DecryptUpdate(c.p, o, &len, s + aes_gcm_nonce_size, to_int(ct_len)) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_TAG, static_cast<int>(aes_gcm_tag_size),
                            const_cast<unsigned char*>(s + aes_gcm_nonce_size + ct_len)) != 1) {
        cleanse(out.data(), out.size());
        return std::nullopt;
    }
    int fin = 0;
    if (EVP_DecryptFinal_ex(c.p, o + len, &fin) != 1) {
        cleanse(out.data(), out.size());
        return std::nullopt;
    }
    return out;
}

// ---- Ed25519 ----------------------------------------------------------------------------------

struct Ed25519Signer::Impl {
    EVP_PKEY* key = nullptr;
    ~Impl() { EVP_PKEY_free(key); }
};

Ed25519Signer::Ed25519Signer(ByteView seed) : impl_(std::make_unique<Impl>()) {
    if (seed.size() != ed25519_seed_size) throw CryptoError("an Ed25519 private key (seed) must be 32 bytes");
    impl_->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, uc(seed), seed.size());
    std::size_t len = public_key_.size();
    if (!impl_->key ||
        EVP_PKEY_get_raw_public_key(impl_->key, reinterpret_cast<unsigned char*>(public_key_.data()), &len) != 1 ||
        len != public_key_.size()) {
        throw CryptoError("loading the Ed25519 key failed");
    }
}
Ed25519Signer::~Ed25519Signer() = default;
Ed25519Signer::Ed25519Signer(Ed25519Signer&&) noexcept = default;
Ed25519Signer& Ed25519Signer::operator=(Ed25519Signer&&) noexcept = default;

Ed25519Signature Ed25519Signer::sign(ByteView message) const {
    Ed25519Signature sig{};
    std::size_t len = sig.size();
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    // Ed25519 takes no digest (NULL): it is "one-shot" EdDSA over the whole message.
    const bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, impl_->key) == 1 &&
                    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, uc(message),
                                   message.size()) == 1 &&
                    len == sig.size();
    EVP_MD_CTX_free(ctx);
    if (!ok) throw CryptoError("Ed25519 signing failed");
    return sig;
}

Ed25519PublicKey ed25519_public_from_seed(ByteView seed) { return Ed25519Signer(seed).public_key(); }

Ed25519Signature ed25519_sign(ByteView seed, ByteView message) { return Ed25519Signer(seed).sign(message); }

bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature) {
    if (public_key.size() != ed25519_public_key_size || signature.size() != ed25519_signature_size) return false;
    EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, uc(public_key), public_key.size());
    if (!key) return false;  // not a point on the curve
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx, uc(signature), signature.size(), uc(message), message.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

}  // namespace gg::crypto
