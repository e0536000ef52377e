#include "glassgate/protocols/oidc/jwk.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <variant>

#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/json.hpp"
#include "glassgate/protocols/oidc/text.hpp"

namespace gg::oidc {

struct Jwk::Key {
    EVP_PKEY* pkey = nullptr;
    explicit Key(EVP_PKEY* p) noexcept : pkey(p) {}
    ~Key() { EVP_PKEY_free(pkey); }
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
};

namespace {

namespace json = boost::json;

struct BnFree { void operator()(BIGNUM* p) const noexcept { BN_free(p); } };
struct BldFree { void operator()(OSSL_PARAM_BLD* p) const noexcept { OSSL_PARAM_BLD_free(p); } };
struct ParamFree { void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); } };
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); } };
struct PkeyFree { void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); } };
struct EcdsaSigFree { void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); } };
struct OpensslFree { void operator()(unsigned char* p) const noexcept { OPENSSL_free(p); } };

using Bn = std::unique_ptr<BIGNUM, BnFree>;
using Bld = std::unique_ptr<OSSL_PARAM_BLD, BldFree>;
using Params = std::unique_ptr<OSSL_PARAM, ParamFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;
using OsslBytes = std::unique_ptr<unsigned char, OpensslFree>;

const unsigned char* uc(ByteView b) noexcept { return reinterpret_cast<const unsigned char*>(b.data()); }

Bn to_bn(ByteView b) noexcept {
    return Bn(BN_bin2bn(uc(b), static_cast<int>(b.size()), nullptr));
}

/// Builds a public EVP_PKEY of `type` ("RSA", "EC") from provider parameters.
Pkey from_params(const char* type, const OSSL_PARAM* params) noexcept {
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* out = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) != 1) {
        EVP_PKEY_free(out);
        return nullptr;
    }
    return Pkey(out);
}

struct Built {
    Pkey pkey;
    KeyType kty = KeyType::rsa;
    Curve curve = Curve::none;
    int bits = 0;
};
using BuildStep = std::variant<Built, std::string>;

/// A base64url member that must be present; the error names it.
std::variant<Bytes, std::string> b64_member(const json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    if (!v) return "no \"" + std::string(name) + "\" member";
    const auto* s = v->if_string();
    if (!s) return "\"" + std::string(name) + "\" is not a string";
    auto bytes = base64url_decode(*s);
    if (!bytes) return "\"" + std::string(name) + "\" is not valid base64url";
    return std::move(*bytes);
}

BuildStep build_rsa(const json::object& o, const KeyPolicy& policy) {
    auto n_bytes = b64_member(o, "n");
    if (auto* err = std::get_if<std::string>(&n_bytes)) return *err;
    auto e_bytes = b64_member(o, "e");
    if (auto* err = std::get_if<std::string>(&e_bytes)) return *err;
    Bn n = to_bn(std::get<Bytes>(n_bytes));
    Bn e = to_bn(std::get<Bytes>(e_bytes));
    if (!n || !e) return "out of memory decoding the RSA key";
    const int bits = BN_num_bits(n.get());
    // Checked before any key is built: a small modulus is factorable, a huge one a denial of service.
    if (bits < policy.min_rsa_bits) {
        return "RSA modulus of " + std::to_string(bits) + " bits is below the minimum of " +
               std::to_string(policy.min_rsa_bits);
    }
    if (bits > policy.max_rsa_bits) {
        return "RSA modulus of " + std::to_string(bits) + " bits is above the maximum of " +
               std::to_string(policy.max_rsa_bits);
    }
    if (!BN_is_odd(n.get())) return "RSA modulus is even";
    if (!BN_is_odd(e.get()) || BN_num_bits(e.get()) < 2 || BN_num_bits(e.get()) > 64) {
        return "RSA public exponent must be odd, at least 3 and at most 64 bits";
    }
    Bld bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
        return "OpenSSL could not take the RSA parameters";
    }
    Params params(OSSL_PARAM_BLD_to_param(bld.get()));
    Pkey pkey = params ? from_params("RSA", params.get()) : nullptr;
    if (!pkey) return "OpenSSL refused the RSA key";
    return Built{std::move(pkey), KeyType::rsa, Curve::none, bits};
}

BuildStep build_ec(const json::object& o) {
    const auto* crv = detail::string_member(o, "crv");
    if (!crv) return "no \"crv\" string member";
    Curve curve = Curve::none;
    const char* group = nullptr;
    std::size_t field = 0;
    if (*crv == "P-256") {
        curve = Curve::p256;
        group = SN_X9_62_prime256v1;
        field = 32;
    } else if (*crv == "P-384") {
        curve = Curve::p384;
        group = SN_secp384r1;
        field = 48;
    } else {
        return "unsupported EC curve \"" + printable(*crv) + "\"";
    }
    auto x = b64_member(o, "x");
    if (auto* err = std::get_if<std::string>(&x)) return *err;
    auto y = b64_member(o, "y");
    if (auto* err = std::get_if<std::string>(&y)) return *err;
    const auto& xb = std::get<Bytes>(x);
    const auto& yb = std::get<Bytes>(y);
    // RFC 7518 6.2.1.2/6.2.1.3: x and y are the full field size, leading zeros included.
    if (xb.size() != field || yb.size() != field) {
        return "EC coordinates for " + std::string(*crv) + " must be " + std::to_string(field) + " bytes";
    }
    // SEC 1 uncompressed point: 0x04 | x | y.
    Bytes point;
    point.reserve(1 + 2 * field);
    point.push_back(std::byte{0x04});
    point.insert(point.end(), xb.begin(), xb.end());
    point.insert(point.end(), yb.begin(), yb.end());
    Bld bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
        return "OpenSSL could not take the EC parameters";
    }
    Params params(OSSL_PARAM_BLD_to_param(bld.get()));
    // Decoding the point makes OpenSSL check that it lies on the curve: an off-curve point is not a
    // key the IdP could have made (and such points are the basis of invalid-curve attacks).
    Pkey pkey = params ? from_params("EC", params.get()) : nullptr;
    const std::string off_curve = "EC point is not on curve " + std::string(*crv);
    if (!pkey) return off_curve;
    // Belt and braces: the full public-key check (on the curve, not the point at infinity).
    PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return off_curve;
    const int bits = EVP_PKEY_get_bits(pkey.get());
    return Built{std::move(pkey), KeyType::ec, curve, bits};
}

BuildStep build_okp(const json::object& o) {
    const auto* crv = detail::string_member(o, "crv");
    if (!crv) return "no \"crv\" string member";
    if (*crv != "Ed25519") return "unsupported OKP curve \"" + printable(*crv) + "\" (only Ed25519 signs)";
    auto x = b64_member(o, "x");
    if (auto* err = std::get_if<std::string>(&x)) return *err;
    const auto& xb = std::get<Bytes>(x);
    if (xb.size() != 32) return "Ed25519 public key must be 32 bytes";
    Pkey pkey(EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, uc(xb), xb.size()));
    if (!pkey) return "OpenSSL refused the Ed25519 key";
    const int bits = EVP_PKEY_get_bits(pkey.get());
    return Built{std::move(pkey), KeyType::okp, Curve::ed25519, bits};
}

/// An optional string member: absent is fine, present must be a string.
bool optional_string(const json::object& o, std::string_view name, std::optional<std::string>& out,
                     std::string& reason) {
    const auto* v = o.if_contains(name);
    if (!v) return true;
    const auto* s = v->if_string();
    if (!s) {
        reason = "\"" + std::string(name) + "\" is not a string";
        return false;
    }
    out = std::string(*s);
    return true;
}

std::string_view curve_name(Curve c) noexcept {
    switch (c) {
        case Curve::p256: return "P-256";
        case Curve::p384: return "P-384";
        case Curve::ed25519: return "Ed25519";
        case Curve::none: break;
    }
    return "none";
}

std::string_view kty_name(KeyType t) noexcept {
    switch (t) {
        case KeyType::rsa: return "RSA";
        case KeyType::ec: return "EC";
        case KeyType::okp: return "OKP";
    }
    return "?";
}

/// Whether kty/curve can produce `alg` signatures at all.
bool type_fits(KeyType kty, Curve curve, JwsAlg alg) noexcept {
    switch (alg) {
        case JwsAlg::rs256:
        case JwsAlg::rs384:
        case JwsAlg::rs512:
        case JwsAlg::ps256: return kty == KeyType::rsa;
        case JwsAlg::es256: return kty == KeyType::ec && curve == Curve::p256;
        case JwsAlg::es384: return kty == KeyType::ec && curve == Curve::p384;
        case JwsAlg::eddsa: return kty == KeyType::okp && curve == Curve::ed25519;
    }
    return false;
}

}  // namespace

std::optional<std::string> Jwk::unfit_for(JwsAlg alg) const {
    if (!type_fits(kty_, curve_, alg)) {
        std::string key = std::string(kty_name(kty_));
        if (curve_ != Curve::none) key += " " + std::string(curve_name(curve_));
        return "key type " + key + " cannot verify " + std::string(to_string(alg));
    }
    // The key's own declarations bind it (RFC 7517 4.2-4.4): an IdP that says "this key is for
    // RS256" or "for encryption" must not have it used for anything else.
    if (alg_ && *alg_ != to_string(alg)) {
        return "key is declared for alg " + printable(*alg_) + ", token uses " + std::string(to_string(alg));
    }
    if (use_ && *use_ != "sig") return "key is declared for use \"" + printable(*use_) + "\", not \"sig\"";
    if (key_ops_ && std::find(key_ops_->begin(), key_ops_->end(), "verify") == key_ops_->end()) {
        return "key_ops of the key does not include \"verify\"";
    }
    return std::nullopt;
}

bool Jwk::verify(JwsAlg alg, ByteView signing_input, ByteView signature) const noexcept {
    if (!key_ || !key_->pkey || !type_fits(kty_, curve_, alg)) return false;
    const EVP_MD* md = nullptr;
    switch (alg) {
        case JwsAlg::rs256:
        case JwsAlg::ps256:
        case JwsAlg::es256: md = EVP_sha256(); break;
        case JwsAlg::rs384:
        case JwsAlg::es384: md = EVP_sha384(); break;
        case JwsAlg::rs512: md = EVP_sha512(); break;
        case JwsAlg::eddsa: md = nullptr; break;  // Ed25519 hashes internally (one-shot only)
    }

    // JWS carries ECDSA signatures as the fixed-size concatenation r||s; OpenSSL verifies DER.
    // A DER signature (what most libraries emit) is refused by the size check: the JWS form is exact.
    OsslBytes der;
    ByteView sig = signature;
    if (alg == JwsAlg::es256 || alg == JwsAlg::es384) {
        const std::size_t half = alg == JwsAlg::es256 ? 32 : 48;
        if (signature.size() != 2 * half) return false;
        Bn r = to_bn(signature.first(half));
        Bn s = to_bn(signature.subspan(half));
        EcdsaSig es(ECDSA_SIG_new());
        if (!r || !s || !es || ECDSA_SIG_set0(es.get(), r.get(), s.get()) != 1) return false;
        (void)r.release();  // owned by es now
        (void)s.release();
        unsigned char* out = nullptr;
        const int len = i2d_ECDSA_SIG(es.get(), &out);
        if (len <= 0) return false;
        der.reset(out);
        sig = ByteView(reinterpret_cast<const std::byte*>(out), static_cast<std::size_t>(len));
    }

    MdCtx ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key_->pkey) == 1;
    if (ok && alg == JwsAlg::ps256) {
        // RFC 7518 3.5: RSASSA-PSS, MGF1 with SHA-256, salt length = hash length (32).
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
    } else if (ok && kty_ == KeyType::rsa) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
    ok = ok && EVP_DigestVerify(ctx.get(), uc(sig), sig.size(), uc(signing_input), signing_input.size()) == 1;
    // A failed verification leaves entries on this thread's OpenSSL error queue; do not leak them
    // into unrelated code (e.g. a TLS read on the same thread that inspects the queue).
    if (!ok) ERR_clear_error();
    return ok;
}

const Jwk* KeySet::find(std::string_view kid) const noexcept {
    if (kid.empty()) return nullptr;
    for (const auto& k : keys_) {
        if (k.kid() == kid) return &k;
    }
    return nullptr;
}

Result<KeySet> KeySet::parse(std::string_view jwks_json, const KeyPolicy& policy) {
    if (jwks_json.size() > policy.max_document_bytes) {
        return Error{errc::too_large, "JWKS document of " + std::to_string(jwks_json.size()) +
                                          " bytes exceeds the limit of " +
                                          std::to_string(policy.max_document_bytes)};
    }
    auto doc = detail::parse_json(jwks_json, policy.max_json_depth);
    if (!doc) return Error{errc::not_json, "JWKS document is not valid JSON"};
    const auto* root = doc->if_object();
    if (!root) return Error{errc::bad_shape, "JWKS document is not a JSON object"};
    const auto* keys_v = root->if_contains("keys");
    const auto* keys = keys_v ? keys_v->if_array() : nullptr;
    if (!keys) return Error{errc::bad_shape, "JWKS document has no \"keys\" array"};

    KeySet set;
    for (std::size_t i = 0; i < keys->size(); ++i) {
        KeyRejection rej{i, {}, {}};
        auto reject = [&](std::string reason) {
            rej.reason = std::move(reason);
            set.rejected_.push_back(std::move(rej));
        };
        const auto* o = (*keys)[i].if_object();
        if (!o) {
            reject("entry is not a JSON object");
            continue;
        }
        Jwk key;
        std::optional<std::string> kid;
        std::string reason;
        if (!optional_string(*o, "kid", kid, reason)) {
            reject(reason);
            continue;
        }
        if (kid) {
            key.kid_ = *kid;
            rej.kid = printable(*kid);
        }
        if (set.keys_.size() >= policy.max_keys) {
            reject("more than " + std::to_string(policy.max_keys) + " keys in the set");
            continue;
        }
        if (!optional_string(*o, "alg", key.alg_, reason) || !optional_string(*o, "use", key.use_, reason)) {
            reject(reason);
            continue;
        }
        if (const auto* ops = o->if_contains("key_ops")) {
            const auto* arr = ops->if_array();
            std::vector<std::string> list;
            bool good = arr != nullptr;
            for (std::size_t j = 0; good && j < arr->size(); ++j) {
                const auto* s = (*arr)[j].if_string();
                good = s != nullptr;
                if (good) list.emplace_back(*s);
            }
            if (!good) {
                reject("\"key_ops\" is not an array of strings");
                continue;
            }
            key.key_ops_ = std::move(list);
        }
        // A JWKS is public. Private members mean the IdP (or whoever serves this document) is leaking
        // its signing key: nothing it signs can be trusted, so the key is refused outright.
        static constexpr std::string_view private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
        if (std::any_of(std::begin(private_members), std::end(private_members),
                        [&](std::string_view m) { return o->contains(m); })) {
            reject("entry contains private or symmetric key material; refused");
            continue;
        }
        const auto* kty = detail::string_member(*o, "kty");
        if (!kty) {
            reject("no \"kty\" string member");
            continue;
        }
        BuildStep step;
        if (*kty == "RSA") {
            step = build_rsa(*o, policy);
        } else if (*kty == "EC") {
            step = build_ec(*o);
        } else if (*kty == "OKP") {
            step = build_okp(*o);
        } else if (*kty == "oct") {
            step = std::string("symmetric keys (kty \"oct\") are never accepted");
        } else {
            step = "unsupported kty \"" + printable(*kty) + "\"";
        }
        if (auto* err = std::get_if<std::string>(&step)) {
            ERR_clear_error();
            reject(std::move(*err));
            continue;
        }
        if (!key.kid_.empty() && set.find(key.kid_) != nullptr) {
            reject("duplicate kid; the first key with this kid is kept");
            continue;
        }
        auto& built = std::get<Built>(step);
        key.key_ = std::make_shared<const Jwk::Key>(built.pkey.release());
        key.kty_ = built.kty;
        key.curve_ = built.curve;
        key.bits_ = built.bits;
        set.keys_.push_back(std::move(key));
    }
    return set;
}

}  // namespace gg::oidc
