#include "glassgate/session/audit_chain.hpp"

#include <ctime>
#include <cstdio>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace gg::session {
namespace {

constexpr std::string_view mac_domain{"glassgate-audit-v1\0", 19};
constexpr std::string_view hash_key = R"(,"hash":")";
constexpr std::string_view mac_key = R"(","mac":")";
// `,"hash":"` + 64 hex + `","mac":"` + 64 hex + `"}`
constexpr std::size_t suffix_size = hash_key.size() + 64 + mac_key.size() + 64 + 2;

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

AuditLine make_audit_line(const AuditEvent& ev, std::uint64_t seq, const crypto::Digest& prev, ByteView audit_key) {
    boost::json::object o;
    o["time"] = format_utc(ev.time);
    o["event"] = ev.type;
    auto opt = [&o](std::string_view k, const std::string& v) {
        if (!v.empty()) o[k] = v;
    };
    opt("session", ev.session_id);
    opt("identity", ev.identity);
    opt("target", ev.target);
    opt("source", ev.source);
    opt("outcome", ev.outcome);
    opt("reason", ev.reason);
    if (!ev.details.empty()) o["details"] = ev.details;
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
    line.text += "\"}";
    return line;
}

AuditVerifier::AuditVerifier(ByteView audit_key) : key_(audit_key.begin(), audit_key.end()) {}

bool AuditVerifier::feed(std::string_view line) {
    if (!problem_.empty()) return false;
    const std::uint64_t index = entries_ + 1;
    auto fail = [&](const std::string& why) {
        problem_ = "entry " + std::to_string(index) + ": " + why;
        return false;
    };
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
    auto mac_bytes = from_hex(mac_hex);
    const auto expect = mac_of(key_, h);
    if (!mac_bytes || !crypto::constant_time_equal(*mac_bytes, expect)) {
        return fail("MAC mismatch: the entry was not written with this proxy's audit key");
    }
    prev_ = h;
    entries_ = index;
    return true;
}

}  // namespace gg::session
