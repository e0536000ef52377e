#include "glassgate/session/recording.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "glassgate/protocols/postgres/base64.hpp"
#include "recording_format.hpp"

namespace gg::session {
using namespace recording_detail;

std::string event_kind_name(EventKind kind) {
    switch (kind) {
        case EventKind::header: return "header";
        case EventKind::checkpoint: return "checkpoint";
        case EventKind::seal: return "seal";
        case EventKind::signed_checkpoint: return "signed_checkpoint";
        case EventKind::signed_seal: return "signed_seal";
        case EventKind::annotation: return "annotation";
        case EventKind::term_output: return "term_output";
        case EventKind::term_input: return "term_input";
        case EventKind::term_stderr: return "term_stderr";
        case EventKind::resize: return "resize";
        case EventKind::exec: return "exec";
        case EventKind::env: return "env";
        case EventKind::exit_status: return "exit_status";
        case EventKind::exit_signal: return "exit_signal";
        case EventKind::subsystem: return "subsystem";
        case EventKind::sftp: return "sftp";
        case EventKind::pg_frontend: return "pg_frontend";
        case EventKind::pg_backend: return "pg_backend";
        case EventKind::pg_large: return "pg_large";
        case EventKind::pg_large_end: return "pg_large_end";
        case EventKind::pg_copy: return "pg_copy";
    }
    static constexpr char digits[] = "0123456789abcdef";
    const auto v = static_cast<std::uint8_t>(kind);
    return std::string("kind_0x") + digits[v >> 4] + digits[v & 0x0F];
}

// ---- public keys ------------------------------------------------------------------------------

std::string ed25519_key_text(ByteView public_key) {
    return std::string(key_text_prefix) + pg::base64_encode(public_key);
}

std::optional<crypto::Ed25519PublicKey> parse_ed25519_key_text(std::string_view text) {
    constexpr std::string_view space = " \t\r\n";
    const auto first = text.find_first_not_of(space);
    if (first == std::string_view::npos) return std::nullopt;
    text = text.substr(first, text.find_last_not_of(space) - first + 1);
    if (text.substr(0, key_text_prefix.size()) != key_text_prefix) return std::nullopt;
    auto raw = pg::base64_decode(text.substr(key_text_prefix.size()));
    if (!raw || raw->size() != crypto::ed25519_public_key_size) return std::nullopt;
    crypto::Ed25519PublicKey key{};
    std::copy(raw->begin(), raw->end(), key.begin());
    return key;
}

std::string ed25519_key_fingerprint(ByteView public_key) {
    std::string b64 = pg::base64_encode(crypto::sha256(public_key));
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    return "SHA256:" + b64;
}

// ---- header JSON ------------------------------------------------------------------------------

std::string header_to_json(const RecordingHeader& header) {
    boost::json::object o;
    o["session_id"] = header.session_id;
    o["protocol"] = header.protocol;
    o["target"] = header.target;
    o["identity"] = header.identity;
    o["started_unix_us"] = header.started_unix_us;
    o["extra"] = header.extra;
    return boost::json::serialize(o);
}

std::optional<RecordingHeader> header_from_json(std::string_view json) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(boost::json::string_view(json.data(), json.size()), ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto& o = v.get_object();
    RecordingHeader h;
    const auto* sid = o.if_contains("session_id");
    if (!sid || !sid->is_string()) return std::nullopt;
    h.session_id = std::string(sid->get_string());
    for (auto [key, field] : {std::pair{"protocol", &h.protocol}, std::pair{"target", &h.target},
                              std::pair{"identity", &h.identity}}) {
        if (const auto* f = o.if_contains(key)) {
            if (!f->is_string()) return std::nullopt;
            *field = std::string(f->get_string());
        }
    }
    if (const auto* f = o.if_contains("started_unix_us")) {
        if (f->is_int64()) {
            h.started_unix_us = f->get_int64();
        } else {
            return std::nullopt;
        }
    }
    if (const auto* f = o.if_contains("extra")) {
        if (!f->is_object()) return std::nullopt;
        h.extra = f->get_object();
    }
    return h;
}

// ---- encoder ----------------------------------------------------------------------------------

RecordingEncoder::RecordingEncoder(ByteView hmac_key, const RecordingHeader& header, ByteView signing_seed)
    : key_(hmac_key.begin(), hmac_key.end()), header_(header) {
    if (header_.session_id.size() > max_session_id) {
        throw std::length_error("recording: session id longer than 65535 bytes");
    }
    if (!signing_seed.empty()) {
        signer_ = std::make_unique<crypto::Ed25519Signer>(signing_seed);
        header_.extra[recording_signing_key_member] = ed25519_key_text(signer_->public_key());
    }
}

RecordingEncoder::~RecordingEncoder() {
    if (!key_.empty()) crypto::cleanse(key_.data(), key_.size());
}
RecordingEncoder::RecordingEncoder(RecordingEncoder&&) noexcept = default;
RecordingEncoder& RecordingEncoder::operator=(RecordingEncoder&& other) noexcept {
    if (this != &other) {
        if (!key_.empty()) crypto::cleanse(key_.data(), key_.size());
        key_ = std::move(other.key_);
        header_ = std::move(other.header_);
        signer_ = std::move(other.signer_);
        sha_ = std::move(other.sha_);
        chain_ = other.chain_;
        records_ = other.records_;
        events_ = other.events_;
        authenticated_records_ = other.authenticated_records_;
        last_t_us_ = other.last_t_us_;
        begun_ = other.begun_;
        sealed_ = other.sealed_;
    }
    return *this;
}

void RecordingEncoder::require_open(const char* what) const {
    if (!begun_) throw std::logic_error(std::string("recording: ") + what + " before begin()");
    if (sealed_) throw std::logic_error(std::string("recording: ") + what + " after seal()");
}

Bytes RecordingEncoder::begin() {
    if (begun_) throw std::logic_error("recording: begin() called twice");
    const std::uint32_t version = signer_ ? recording_signed_format_version : recording_format_version;
    Bytes out = file_header_bytes(version);
    chain_ = initial_chain(version);
    begun_ = true;
    const std::string json = header_to_json(header_);
    if (json.size() > recording_max_payload) throw std::length_error("recording: header larger than the record limit");
    append_record(out, 0, EventKind::header, Direction::none, as_bytes(json));
    return out;
}

Bytes RecordingEncoder::encode(const Event& event) {
    Bytes out;
    encode_to(out, event.t_us, event.kind, event.direction, event.payload);
    return out;
}

void RecordingEncoder::encode_to(Bytes& out, std::uint64_t t_us, EventKind kind, Direction direction,
                                 ByteView payload) {
    require_open("encode()");
    if (is_integrity_kind(kind)) {
        throw std::logic_error("recording: " + event_kind_name(kind) + " is not a data event kind");
    }
    if (static_cast<std::uint8_t>(direction) > static_cast<std::uint8_t>(Direction::server_to_client)) {
        throw std::logic_error("recording: invalid direction");
    }
    if (payload.size() > recording_max_payload) {
        throw std::length_error("recording: event payload larger than 16 MiB");
    }
    append_record(out, t_us, kind, direction, payload);
    ++events_;
}

Bytes RecordingEncoder::checkpoint(std::uint64_t t_us) {
    Bytes out;
    checkpoint_to(out, t_us);
    return out;
}

bool RecordingEncoder::checkpoint_to(Bytes& out, std::uint64_t t_us) {
    require_open("checkpoint()");
    if (records_ == authenticated_records_) return false;
    append_checkpoint(out, t_us, signer_ ? EventKind::signed_checkpoint : EventKind::checkpoint);
    return true;
}

Bytes RecordingEncoder::seal(std::uint64_t t_us) {
    require_open("seal()");
    Bytes out;
    append_checkpoint(out, t_us, signer_ ? EventKind::signed_seal : EventKind::seal);
    return out;
}

std::string RecordingEncoder::chain_hash_hex() const { return hex(chain_); }

void RecordingEncoder::append_checkpoint(Bytes& out, std::uint64_t t_us, EventKind kind) {
    t_us = std::max(t_us, last_t_us_);
    const auto mac = checkpoint_mac(key_, kind, header_.session_id, t_us, records_, events_, chain_);
    ByteWriter w;
    w.u64(records_);
    w.u64(events_);
    w.bytes(chain_);
    w.bytes(mac);
    if (signer_) {
        w.bytes(signer_->sign(signature_message(kind, header_.session_id, t_us, records_, events_, chain_, mac)));
    }
    // The checkpoint authenticates records [0, records_); it is itself covered by the next one.
    authenticated_records_ = records_ + 1;
    append_record(out, t_us, kind, Direction::none, w.data());
    if (is_seal(kind)) sealed_ = true;
}

void RecordingEncoder::append_record(Bytes& out, std::uint64_t t_us, EventKind kind, Direction direction,
                                     ByteView payload) {
    t_us = std::max(t_us, last_t_us_);
    const std::size_t start = out.size();
    // Geometric growth: a reserve of the exact size per record would copy the whole batch each time.
    if (const std::size_t need = start + recording_record_overhead + payload.size(); out.capacity() < need) {
        out.reserve(std::max(need, out.capacity() * 2));
    }
    ByteWriter w(out);
    w.u32(static_cast<std::uint32_t>(payload.size()));
    w.u64(t_us);
    w.u8(static_cast<std::uint8_t>(kind));
    w.u8(static_cast<std::uint8_t>(direction));
    w.u32(crc32(ByteView(out).subspan(start, 14)));
    w.bytes(payload);
    w.u32(crc32(ByteView(out).subspan(start)));
    // The seal is the last record: nothing follows it, so it is not folded into the chain (the value
    // it authenticates stays the file's final chain hash).
    if (!is_seal(kind)) fold_chain(sha_, chain_, ByteView(out).subspan(start));
    ++records_;
    last_t_us_ = t_us;
}

// ---- payload helpers --------------------------------------------------------------------------

Bytes encode_resize(TerminalSize size) {
    ByteWriter w;
    w.u32(size.cols);
    w.u32(size.rows);
    return w.take();
}

std::optional<TerminalSize> decode_resize(ByteView payload) {
    ByteReader r(payload);
    auto cols = r.u32();
    auto rows = r.u32();
    if (!cols || !rows || r.remaining() != 0) return std::nullopt;
    return TerminalSize{*cols, *rows};
}

Bytes encode_exit_status(std::uint32_t status) {
    ByteWriter w;
    w.u32(status);
    return w.take();
}

std::optional<std::uint32_t> decode_exit_status(ByteView payload) {
    ByteReader r(payload);
    auto v = r.u32();
    if (!v || r.remaining() != 0) return std::nullopt;
    return v;
}

namespace {
void put_string(ByteWriter& w, std::string_view s) {
    w.u32(static_cast<std::uint32_t>(s.size()));
    w.str(s);
}
std::optional<std::string> get_string(ByteReader& r) {
    auto n = r.u32();
    if (!n) return std::nullopt;
    auto b = r.take(*n);
    if (!b) return std::nullopt;
    return std::string(as_chars(*b));
}
}  // namespace

Bytes encode_exit_signal(const ExitSignal& sig) {
    ByteWriter w;
    put_string(w, sig.signal);
    w.u8(sig.core_dumped ? 1 : 0);
    put_string(w, sig.message);
    return w.take();
}

std::optional<ExitSignal> decode_exit_signal(ByteView payload) {
    ByteReader r(payload);
    ExitSignal s;
    auto name = get_string(r);
    auto core = r.u8();
    auto msg = get_string(r);
    if (!name || !core || *core > 1 || !msg || r.remaining() != 0) return std::nullopt;
    s.signal = std::move(*name);
    s.core_dumped = *core == 1;
    s.message = std::move(*msg);
    return s;
}

Bytes encode_env(std::string_view name, std::string_view value) {
    ByteWriter w;
    put_string(w, name);
    put_string(w, value);
    return w.take();
}

std::optional<EnvVar> decode_env(ByteView payload) {
    ByteReader r(payload);
    auto name = get_string(r);
    auto value = get_string(r);
    if (!name || !value || r.remaining() != 0) return std::nullopt;
    return EnvVar{std::move(*name), std::move(*value)};
}

}  // namespace gg::session
