#include "glassgate/protocols/oidc/jwt.hpp"

#include <algorithm>
#include <cstring>
#include <exception>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/oidc/json.hpp"
#include "glassgate/protocols/oidc/text.hpp"

namespace gg::oidc {
namespace {

namespace json = boost::json;
using Clock = std::chrono::system_clock;

// NumericDates beyond 2^33 s (year 2242) are refused: no real token needs them, and the bound keeps
// the conversion to system_clock (nanoseconds in 64 bits on libstdc++) free of overflow.
constexpr std::int64_t max_numeric_date = std::int64_t{1} << 33;
// Longest identity or group name accepted; longer values are not names, they are payloads.
constexpr std::size_t max_name_bytes = 256;

VerifyResult fail(VerifyError e, std::string reason) {
    VerifyResult r;
    r.error = e;
    r.reason = std::move(reason);
    return r;
}

std::string quoted(std::string_view value, std::size_t max = 64) { return "\"" + printable(value, max) + "\""; }

std::string skew_text(const VerifyOptions& o, Clock::time_point now) {
    return "(now " + format_utc(now) + ", skew " + std::to_string(o.skew.count()) + "s)";
}

bool has_control_chars(std::string_view s) noexcept {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7F;
    });
}

/// A NumericDate claim (RFC 7519 2): absent -> nullopt with ok; present -> a time point or a reason.
struct DateClaim {
    std::optional<Clock::time_point> at;
    std::optional<std::string> error;
};

DateClaim date_claim(const json::object& claims, std::string_view name) {
    const auto* v = claims.if_contains(name);
    if (!v) return {};
    const auto secs = detail::to_int64(*v);
    if (!secs) return {std::nullopt, std::string(name) + " is not a NumericDate"};
    if (*secs < 0 || *secs > max_numeric_date) return {std::nullopt, std::string(name) + " is out of range"};
    return {Clock::time_point(std::chrono::seconds(*secs)), std::nullopt};
}

VerifyResult verify_impl(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                         Clock::time_point now, SignatureMemo* cache) {
    // 1. Size first: nothing is decoded or allocated for an oversized input.
    if (token.size() > options.max_token_bytes) {
        return fail(VerifyError::token_too_large, "token of " + std::to_string(token.size()) +
                                                      " bytes exceeds the limit of " +
                                                      std::to_string(options.max_token_bytes));
    }

    // 2. Three parts, each strict base64url.
    const auto dots = static_cast<std::size_t>(std::count(token.begin(), token.end(), '.'));
    if (dots != 2) {
        return fail(VerifyError::malformed,
                    "token is not three dot-separated parts (" + std::to_string(dots + 1) + " parts)");
    }
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    const auto header_b64 = token.substr(0, d1);
    const auto claims_b64 = token.substr(d1 + 1, d2 - d1 - 1);
    const auto sig_b64 = token.substr(d2 + 1);
    const auto header_bytes = base64url_decode(header_b64);
    if (!header_bytes || header_bytes->empty()) return fail(VerifyError::malformed, "header is not valid base64url");
    const auto claims_bytes = base64url_decode(claims_b64);
    if (!claims_bytes || claims_bytes->empty()) return fail(VerifyError::malformed, "claims are not valid base64url");
    const auto signature = base64url_decode(sig_b64);
    if (!signature) return fail(VerifyError::malformed, "signature is not valid base64url");

    // 3. Header.
    auto header_doc = detail::parse_json(as_chars(*header_bytes), options.max_json_depth);
    const auto* header = header_doc ? header_doc->if_object() : nullptr;
    if (!header) return fail(VerifyError::malformed, "header is not a JSON object");

    const auto* alg_v = header->if_contains("alg");
    if (!alg_v) return fail(VerifyError::unsupported_alg, "header has no alg");
    const auto* alg_s = alg_v->if_string();
    if (!alg_s) return fail(VerifyError::unsupported_alg, "header alg is not a string");
    const auto alg = parse_jws_alg(*alg_s);
    if (!alg) {
        // "none" would accept any forged token; HS* would let anyone who knows the IdP's *public*
        // key (everyone) forge one by using it as the HMAC secret. Both are refused by name.
        std::string why = "alg " + quoted(*alg_s, 16);
        if (*alg_s == "none") {
            why += " (unsigned token) is never accepted";
        } else if (alg_s->starts_with("HS")) {
            why += " (shared-secret HMAC) is never accepted";
        } else {
            why += " is not accepted";
        }
        return fail(VerifyError::unsupported_alg, why);
    }
    if (header->contains("crit")) {
        return fail(VerifyError::unsupported_header, "header has crit; no JWS extension is supported");
    }
    // jku, x5u, jwk, x5c are deliberately not read: a key or key URL supplied by the token itself is
    // chosen by whoever made the token. Keys come only from the configured issuer's JWKS.

    // 4. Key selection, only from the key set.
    const Jwk* key = nullptr;
    std::string kid;
    if (const auto* kid_v = header->if_contains("kid")) {
        const auto* kid_s = kid_v->if_string();
        if (!kid_s) return fail(VerifyError::malformed, "header kid is not a string");
        kid = std::string(*kid_s);
        key = keys.find(kid);
        if (!key) {
            auto r = fail(VerifyError::unknown_kid, "unknown kid " + quoted(kid) + " (key set holds " +
                                                        std::to_string(keys.size()) + " keys)");
            r.unknown_kid = true;
            return r;
        }
    } else if (keys.empty()) {
        auto r = fail(VerifyError::unknown_kid, "token has no kid and the key set is empty");
        r.unknown_kid = true;
        return r;
    } else if (keys.size() > 1) {
        return fail(VerifyError::missing_kid,
                    "token has no kid and the key set holds " + std::to_string(keys.size()) + " keys");
    } else {
        key = &keys.keys().front();
    }
    const std::string key_name = key->kid().empty() ? std::string("(no kid)") : quoted(key->kid());
    if (auto why = key->unfit_for(*alg)) {
        return fail(VerifyError::key_mismatch, "key " + key_name + ": " + *why);
    }

    // 5. Signature over the ASCII "header.claims".
    if (*alg == JwsAlg::es256 || *alg == JwsAlg::es384) {
        const std::size_t want = *alg == JwsAlg::es256 ? 64 : 96;
        if (signature->size() != want) {
            return fail(VerifyError::bad_signature, std::string(to_string(*alg)) + " signature must be " +
                                                        std::to_string(want) + " bytes (JWS r||s form), got " +
                                                        std::to_string(signature->size()));
        }
    }
    const auto signing_input = token.substr(0, d2);
    const std::string_view sig_text(reinterpret_cast<const char*>(signature->data()), signature->size());
    if (!cache || !cache->contains(key->kid(), to_string(*alg), signing_input, sig_text)) {
        if (!key->verify(*alg, as_bytes(signing_input), *signature)) {
            return fail(VerifyError::bad_signature,
                        "signature does not verify with key " + key_name + " (" + std::string(to_string(*alg)) + ")");
        }
        if (cache) cache->insert(key->kid(), to_string(*alg), signing_input, sig_text);
    }

    // 6. Claims (only now parsed: they are authenticated).
    auto claims_doc = detail::parse_json(as_chars(*claims_bytes), options.max_json_depth);
    const auto* claims = claims_doc ? claims_doc->if_object() : nullptr;
    if (!claims) return fail(VerifyError::malformed, "claims are not a JSON object");

    const auto* iss_v = claims->if_contains("iss");
    if (!iss_v) return fail(VerifyError::missing_claim, "no iss claim");
    const auto* iss = iss_v->if_string();
    if (!iss) return fail(VerifyError::invalid_claim, "iss is not a string");
    // Exact comparison (OIDC Core 3.1.3.7 item 2): no case folding, no trailing-slash tolerance.
    if (*iss != options.issuer) {
        return fail(VerifyError::wrong_issuer,
                    "issuer " + quoted(*iss, 128) + " is not the configured issuer " + quoted(options.issuer, 128));
    }

    const auto* aud_v = claims->if_contains("aud");
    if (!aud_v) return fail(VerifyError::missing_claim, "no aud claim");
    std::vector<std::string_view> aud;
    if (const auto* s = aud_v->if_string()) {
        aud.push_back(*s);
    } else if (const auto* a = aud_v->if_array()) {
        for (const auto& e : *a) {
            const auto* es = e.if_string();
            if (!es) return fail(VerifyError::invalid_claim, "aud array holds a non-string");
            aud.push_back(*es);
        }
    } else {
        return fail(VerifyError::invalid_claim, "aud is neither a string nor an array");
    }
    const bool aud_ok = std::any_of(aud.begin(), aud.end(), [&](std::string_view a) {
        return std::find(options.audience.begin(), options.audience.end(), a) != options.audience.end();
    });
    if (!aud_ok) {
        std::string list;
        for (std::size_t i = 0; i < aud.size() && i < 4; ++i) list += (i ? ", " : "") + quoted(aud[i]);
        if (aud.size() > 4) list += ", ...";
        return fail(VerifyError::wrong_audience,
                    options.audience.empty() ? std::string("no audience is configured")
                                             : "audience [" + list + "] includes no configured audience");
    }

    const json::string* azp = nullptr;
    if (const auto* azp_v = claims->if_contains("azp")) {
        azp = azp_v->if_string();
        if (!azp) return fail(VerifyError::invalid_claim, "azp is not a string");
    }
    if (options.require_azp_match) {
        // OIDC Core 3.1.3.7: the party the token was issued to must be us, and with several
        // audiences the token must say which of them it was issued to.
        if (azp && *azp != options.client_id) {
            return fail(VerifyError::wrong_azp, "azp " + quoted(*azp) + " is not the configured client_id " +
                                                    quoted(options.client_id));
        }
        if (!azp && aud.size() > 1) {
            return fail(VerifyError::wrong_azp,
                        "token has " + std::to_string(aud.size()) + " audiences and no azp claim");
        }
    }

    const auto exp = date_claim(*claims, "exp");
    if (exp.error) return fail(VerifyError::invalid_claim, *exp.error);
    if (!exp.at) return fail(VerifyError::missing_claim, "no exp claim");
    if (!(*exp.at > now - options.skew)) {
        return fail(VerifyError::expired, "token expired at " + format_utc(*exp.at) + " " + skew_text(options, now));
    }
    const auto nbf = date_claim(*claims, "nbf");
    if (nbf.error) return fail(VerifyError::invalid_claim, *nbf.error);
    if (nbf.at && *nbf.at > now + options.skew) {
        return fail(VerifyError::not_yet_valid,
                    "token not valid before " + format_utc(*nbf.at) + " " + skew_text(options, now));
    }
    const auto iat = date_claim(*claims, "iat");
    if (iat.error) return fail(VerifyError::invalid_claim, *iat.error);
    if (iat.at && *iat.at > now + options.skew) {
        return fail(VerifyError::issued_in_future,
                    "token issued in the future at " + format_utc(*iat.at) + " " + skew_text(options, now));
    }

    const auto* sub_v = claims->if_contains("sub");
    if (!sub_v) return fail(VerifyError::missing_claim, "no sub claim");
    const auto* sub = sub_v->if_string();
    if (!sub || sub->empty()) return fail(VerifyError::invalid_claim, "sub is not a non-empty string");

    // Names end up in allow-lists, audit lines and backend session labels: refuse control characters
    // (log forging) and oversized values rather than sanitising them into something else.
    const auto* user_v = claims->if_contains(options.username_claim);
    if (!user_v) {
        return fail(VerifyError::missing_claim,
                    "no " + quoted(options.username_claim) + " claim (the configured username claim)");
    }
    const auto* user = user_v->if_string();
    if (!user || user->empty()) {
        return fail(VerifyError::invalid_claim, "username claim " + quoted(options.username_claim) +
                                                    " is not a non-empty string");
    }
    if (user->size() > max_name_bytes || has_control_chars(*user)) {
        return fail(VerifyError::invalid_claim, "username claim " + quoted(options.username_claim) +
                                                    " is too long or holds control characters");
    }

    Identity id;
    if (const auto* groups_v = claims->if_contains(options.groups_claim)) {
        auto add = [&](std::string_view g) {
            if (g.size() > max_name_bytes || has_control_chars(g)) return false;
            id.groups.emplace_back(g);
            return true;
        };
        bool good = true;
        if (const auto* s = groups_v->if_string()) {
            good = add(*s);
        } else if (const auto* a = groups_v->if_array()) {
            for (const auto& e : *a) {
                const auto* es = e.if_string();
                good = es != nullptr && add(*es);
                if (!good) break;
            }
        } else {
            good = false;
        }
        if (!good) {
            return fail(VerifyError::invalid_claim,
                        "groups claim " + quoted(options.groups_claim) +
                            " is not a string or an array of strings without control characters");
        }
    }

    id.username = std::string(*user);
    id.subject = std::string(*sub);
    id.issuer = std::string(*iss);
    id.expires = *exp.at;
    id.kid = key->kid();
    id.alg = std::string(to_string(*alg));
    VerifyResult ok;
    ok.identity = std::move(id);
    return ok;
}

}  // namespace

SignatureCache::Entry SignatureCache::digest(std::string_view kid, std::string_view alg, std::string_view signing_input,
                                             std::string_view signature) {
    // Length-prefixed fields: no two different tuples hash the same input.
    crypto::Sha256 h;
    for (const std::string_view part : {kid, alg, signing_input, signature}) {
        const auto n = static_cast<std::uint64_t>(part.size());
        std::byte len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<std::byte>(n >> (8 * i));
        h.update(ByteView(len, 8));
        h.update(as_bytes(part));
    }
    const auto d = h.finish();
    Entry e{};
    std::memcpy(e.data(), d.data(), e.size());
    return e;
}

bool SignatureCache::contains(std::string_view kid, std::string_view alg, std::string_view signing_input,
                              std::string_view signature) const {
    return entries_.contains(digest(kid, alg, signing_input, signature));
}

void SignatureCache::insert(std::string_view kid, std::string_view alg, std::string_view signing_input,
                            std::string_view signature) {
    const auto e = digest(kid, alg, signing_input, signature);
    if (entries_.size() >= capacity_) entries_.clear();
    entries_.insert(e);
}

VerifyResult verify_jwt(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                        Clock::time_point now, SignatureMemo* cache) {
    try {
        return verify_impl(token, keys, options, now, cache);
    } catch (const std::exception&) {
        // Only allocation can throw in verify_impl; whatever it was, the token is not accepted.
        return fail(VerifyError::malformed, "verification aborted: out of memory");
    }
}

std::string_view public_message(VerifyError e) noexcept {
    switch (e) {
        case VerifyError::none: return "ok";
        case VerifyError::expired: return "token expired";
        case VerifyError::not_yet_valid:
        case VerifyError::issued_in_future: return "token not yet valid";
        default: return "invalid token";
    }
}

std::string_view to_string(VerifyError e) noexcept {
    switch (e) {
        case VerifyError::none: return "none";
        case VerifyError::token_too_large: return "token_too_large";
        case VerifyError::malformed: return "malformed";
        case VerifyError::unsupported_alg: return "unsupported_alg";
        case VerifyError::unsupported_header: return "unsupported_header";
        case VerifyError::missing_kid: return "missing_kid";
        case VerifyError::unknown_kid: return "unknown_kid";
        case VerifyError::key_mismatch: return "key_mismatch";
        case VerifyError::bad_signature: return "bad_signature";
        case VerifyError::wrong_issuer: return "wrong_issuer";
        case VerifyError::wrong_audience: return "wrong_audience";
        case VerifyError::wrong_azp: return "wrong_azp";
        case VerifyError::expired: return "expired";
        case VerifyError::not_yet_valid: return "not_yet_valid";
        case VerifyError::issued_in_future: return "issued_in_future";
        case VerifyError::missing_claim: return "missing_claim";
        case VerifyError::invalid_claim: return "invalid_claim";
    }
    return "unknown";
}

}  // namespace gg::oidc
