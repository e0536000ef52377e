#include "glassgate/session/audit_chain.hpp"

#include <ctime>
#include <cstdio>
#include <stdexcept>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace gg::session {
namespace {

constexpr std::string_view mac_domain{"glassgate-audit-v1\0", 19};
constexpr std::string_view hash_key = R"(,"hash":")";
constexpr std::string_view mac_key = R"(","mac":")";
constexpr std::string_view sig_domain{"glassgate-audit-v1 signature\0", 29};
constexpr std::string_view sig_key = R"(","sig":")";
// `,"hash":"` + 64 hex + `","mac":"` + 64 hex + `"}`
constexpr std::size_t suffix_size = hash_key.size() + 64 + mac_key.size() + 64 + 2;
// `","sig":"` + 128 hex + `"}` replaces the final `"}` of a signed line
constexpr std::size_t sig_suffix_size = sig_key.size() + 2 * crypto::ed25519_signature_size + 2;

// tag || hash || mac: the signature covers every byte of the line before "sig" (the body through the
// hash, and the MAC itself), so a verifier without the audit key still sees any change to the line.
Bytes sig_message(const crypto::Digest& hash, ByteView mac) {
    Bytes msg = to_bytes(sig_domain);
    msg.insert(msg.end(), hash.begin(), hash.end());
    msg.insert(msg.end(), mac.begin(), mac.end());
    return msg;
}

/// Lower-case hex of exactly `n` bytes (the only form written), else std::nullopt.
std::optional<Bytes> strict_hex(std::string_view s, std::size_t n) {
    auto b = from_hex(s);
    if (!b || b->size() != n || to_hex(*b) != s) return std::nullopt;
    return b;
}

crypto::Digest mac_of(ByteView key, const crypto::Digest& hash) {
    Bytes msg = to_bytes(mac_domain);
    msg.insert(msg.end(), hash.begin(), hash.end());
    return crypto::hmac_sha256(key, msg);
}

crypto::Digest hash_of(const crypto::Digest& prev, std::string_view body) {
    crypto::Sha256 h;
    h.update(prev);
    h.update(as_bytes(body));
    return h.finish();
}

}  // namespace

namespace {

/// JSON is UTF-8 and the verifier parses each line: bytes a peer chose (a PostgreSQL database name, an
/// SSH login) that are not well-formed UTF-8 are written with U+FFFD in their place, in every string of
/// the event, keys included, so the chain glassgate writes always verifies.
boost::json::value utf8_clean(const boost::json::value& v) {
    if (v.is_string()) {
        const std::string_view s = v.get_string();
        return is_utf8(s) ? v : boost::json::value(to_utf8_lossy(s));
    }
    if (v.is_array()) {
        boost::json::array a;
        for (const auto& e : v.get_array()) a.push_back(utf8_clean(e));
        return a;
    }
    if (v.is_object()) {
        boost::json::object o;
        for (const auto& [k, e] : v.get_object()) o[to_utf8_lossy(k)] = utf8_clean(e);
        return o;
    }
    return v;
}

}  // namespace

AuditLine make_audit_line(const AuditEvent& ev, std::uint64_t seq, const crypto::Digest& prev, ByteView audit_key,
                          ByteView signing_seed) {
    boost::json::object o;
    o["time"] = format_utc(ev.time);
    o["event"] = to_utf8_lossy(ev.type);
    auto opt = [&o](std::string_view k, const std::string& v) {
        if (!v.empty()) o[k] = to_utf8_lossy(v);
    };
    opt("session", ev.session_id);
    opt("identity", ev.identity);
    opt("target", ev.target);
    opt("source", ev.source);
    opt("outcome", ev.outcome);
    opt("reason", ev.reason);
    if (!ev.details.empty()) o["details"] = utf8_clean(ev.details);
    o["seq"] = seq;
    o["prev"] = to_hex(prev);
    std::string body = boost::json::serialize(o);
    AuditLine line;
    line.hash = hash_of(prev, body);
    const auto mac = mac_of(audit_key, line.hash);
    body.pop_back();  // drop the closing brace
    line.text = body;
    line.text += hash_key;
    line.text += to_hex(line.hash);
    line.text += mac_key;
    line.text += to_hex(mac);
    if (!signing_seed.empty()) {
        line.text += sig_key;
        line.text += to_hex(crypto::ed25519_sign(signing_seed, sig_message(line.hash, mac)));
    }
    line.text += "\"}";
    return line;
}

AuditVerifier::AuditVerifier(ByteView audit_key) : key_(audit_key.begin(), audit_key.end()) {}

AuditVerifier::AuditVerifier(ByteView audit_key, ByteView public_key)
    : key_(audit_key.begin(), audit_key.end()), check_mac_(!audit_key.empty()) {
    if (public_key.size() != crypto::ed25519_public_key_size) {
        throw std::invalid_argument("audit: an Ed25519 public key is 32 bytes");
    }
    public_key_.emplace();
    std::copy(public_key.begin(), public_key.end(), public_key_->begin());
}

void AuditVerifier::also_check_signatures(ByteView public_key) {
    if (public_key.size() != crypto::ed25519_public_key_size) {
        throw std::invalid_argument("audit: an Ed25519 public key is 32 bytes");
    }
    public_key_.emplace();
    std::copy(public_key.begin(), public_key.end(), public_key_->begin());
    sig_optional_ = true;
}

bool AuditVerifier::feed(std::string_view signed_line) {
    if (!problem_.empty()) return false;
    const std::uint64_t index = entries_ + 1;
    auto fail = [&](const std::string& why) {
        problem_ = "entry " + std::to_string(index) + ": " + why;
        return false;
    };
    // A signed line is the unsigned line with `","sig":"<128 hex>` inserted before its final `"}`. The
    // unsigned line's last 148 bytes are fixed members with hex values, so the test is unambiguous.
    std::string_view sig_hex;
    std::string unsigned_line;
    std::string_view line = signed_line;
    if (line.size() >= sig_suffix_size + suffix_size &&
        line.substr(line.size() - sig_suffix_size, sig_key.size()) == sig_key && line.substr(line.size() - 2) == "\"}") {
        sig_hex = line.substr(line.size() - sig_suffix_size + sig_key.size(), 2 * crypto::ed25519_signature_size);
        unsigned_line = std::string(line.substr(0, line.size() - sig_suffix_size)) + "\"}";
        line = unsigned_line;
    }
    if (line.size() < suffix_size + 2 || line.front() != '{' ||
        line.substr(line.size() - suffix_size, hash_key.size()) != hash_key ||
        line.substr(line.size() - suffix_size + hash_key.size() + 64, mac_key.size()) != mac_key ||
        line.substr(line.size() - 2) != "\"}") {
        return fail("malformed line (no hash/mac suffix)");
    }
    const auto hash_hex = line.substr(line.size() - suffix_size + hash_key.size(), 64);
    const auto mac_hex = line.substr(line.size() - 66, 64);
    std::string body(line.substr(0, line.size() - suffix_size));
    body += '}';

    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    if (ec || !v.is_object()) return fail("body is not a JSON object");
    const auto& o = v.as_object();
    const auto* seq = o.if_contains("seq");
    const auto* prev = o.if_contains("prev");
    if (!seq || (!seq->is_uint64() && !seq->is_int64()) || !prev || !prev->is_string()) {
        return fail("missing seq/prev");
    }
    const auto seq_v = seq->is_uint64() ? seq->as_uint64() : static_cast<std::uint64_t>(seq->as_int64());
    if (seq_v != index) {
        return fail("sequence number " + std::to_string(seq_v) + " where " + std::to_string(index) +
                    " was expected: an entry was deleted, inserted or reordered");
    }
    if (prev->as_string() != to_hex(prev_)) return fail("prev does not match the previous entry's hash");
    const auto h = hash_of(prev_, body);
    if (to_hex(h) != hash_hex) return fail("hash mismatch: the entry was edited");
    auto mac_bytes = strict_hex(mac_hex, crypto::sha256_size);
    if (!mac_bytes) return fail("malformed mac (not 64 lower-case hex digits)");
    if (check_mac_ && !crypto::constant_time_equal(*mac_bytes, mac_of(key_, h))) {
        return fail("MAC mismatch: the entry was not written with this proxy's audit key");
    }
    if (public_key_ && !(sig_optional_ && sig_hex.empty())) {
        if (sig_hex.empty()) return fail("not signed (no \"sig\" member)");
        auto sig = strict_hex(sig_hex, crypto::ed25519_signature_size);
        if (!sig || !crypto::ed25519_verify(*public_key_, sig_message(h, *mac_bytes), *sig)) {
            return fail("signature invalid: the entry was not signed by the expected key, or was altered");
        }
        ++signed_;
    } else if (!sig_hex.empty() && !strict_hex(sig_hex, crypto::ed25519_signature_size)) {
        return fail("malformed sig (not 128 lower-case hex digits)");
    }
    prev_ = h;
    entries_ = index;
    return true;
}

}  // namespace gg::session
