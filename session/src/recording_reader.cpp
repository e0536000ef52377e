#include "glassgate/session/recording.hpp"

#include <algorithm>
#include <utility>

#include "recording_format.hpp"

namespace gg::session {
using namespace recording_detail;

// ---- report -----------------------------------------------------------------------------------

std::string VerifyReport::summary() const {
    std::string s;
    auto authenticated = [&] {
        if (checkpoints == 0) return std::string("no valid checkpoint");
        return "authenticated through checkpoint " + std::to_string(checkpoints) + " (" +
               std::to_string(authenticated_events) + " events)";
    };
    if (!problems.empty()) {
        const auto& p = problems.front();
        s = "BROKEN at event " + std::to_string(p.event_index) + " (offset " + std::to_string(p.offset) +
            "): " + p.message + "; " + authenticated();
        return s;
    }
    if (sealed) return "ok: sealed, " + std::to_string(events) + " events";
    s = "incomplete: not sealed";
    if (!has_header) {
        s += file_bytes == 0 ? ", empty file" : ", no complete header record";
    } else {
        s += ", " + std::to_string(events) + " events, " + authenticated();
        if (unauthenticated_events() > 0 || checkpoints == 0) {
            s += ", " + std::to_string(unauthenticated_events()) +
                 " trailing events after the last checkpoint not authenticated";
        }
    }
    if (trailing_bytes > 0) {
        s += ", " + std::to_string(trailing_bytes) +
             (trailing_zero ? " trailing zero bytes (lost write)" : " trailing bytes of an incomplete record");
    }
    return s;
}

bool matches_seal(const VerifyReport& report, std::uint64_t expected_events, std::string_view expected_chain_hex) {
    return report.intact && report.sealed && report.events == expected_events &&
           report.authenticated_events == expected_events && report.final_chain_hex == expected_chain_hex;
}

// ---- reader -----------------------------------------------------------------------------------

RecordingReader::RecordingReader(ByteView hmac_key) : key_(hmac_key.begin(), hmac_key.end()) {}

RecordingReader::RecordingReader(ByteView hmac_key, ByteView public_key)
    : key_(hmac_key.begin(), hmac_key.end()), check_mac_(!hmac_key.empty()), require_signatures_(true) {
    if (public_key.size() != crypto::ed25519_public_key_size) {
        throw std::invalid_argument("recording: an Ed25519 public key is 32 bytes");
    }
    public_key_.emplace();
    std::copy(public_key.begin(), public_key.end(), public_key_->begin());
    report_.mac_checked = check_mac_;
    report_.signing_key = ed25519_key_text(*public_key_);
}

RecordingReader::~RecordingReader() {
    if (!key_.empty()) crypto::cleanse(key_.data(), key_.size());
}

void RecordingReader::problem(std::uint64_t offset, std::string message) {
    report_.problems.push_back({offset, report_.events, std::move(message)});
    state_ = State::stopped;
    carry_.clear();
}

void RecordingReader::feed(ByteView chunk, std::vector<Event>* events) {
    ByteView in = chunk;
    while (!in.empty()) {
        switch (state_) {
            case State::stopped:
                pos_ += in.size();
                return;
            case State::after_seal:
                problem(pos_, "data after the seal record");
                break;
            case State::zero_tail: {
                auto nz = std::find_if(in.begin(), in.end(), [](std::byte b) { return b != std::byte{0}; });
                if (nz != in.end()) {
                    pos_ += static_cast<std::uint64_t>(nz - in.begin());
                    in = in.subspan(static_cast<std::size_t>(nz - in.begin()));  // counted: not again below
                    state_ = State::records;
                    problem(zero_start_, "record header CRC mismatch (corrupted record header)");
                    break;
                }
                pos_ += in.size();
                return;
            }
            case State::file_header:
                feed_file_header(in);
                break;
            case State::records:
                feed_records(in, events);
                break;
        }
    }
}

void RecordingReader::feed_file_header(ByteView& in) {
    const std::size_t n = std::min(in.size(), recording_file_header_size - carry_.size());
    carry_.insert(carry_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    in = in.subspan(n);
    pos_ += n;
    const std::size_t m = std::min(carry_.size(), magic.size());
    if (!std::equal(carry_.begin(), carry_.begin() + static_cast<std::ptrdiff_t>(m), magic.begin())) {
        problem(0, "not a glassgate recording (bad magic)");
        return;
    }
    if (carry_.size() < recording_file_header_size) return;
    const std::uint32_t version = load_u32(carry_.data() + magic.size());
    if (version != recording_format_version && version != recording_signed_format_version) {
        problem(magic.size(), "unsupported recording format version " + std::to_string(version));
        return;
    }
    version_ = version;
    report_.format_version = version;
    chain_ = initial_chain(version);
    if (require_signatures_ && version == recording_format_version) {
        problem(magic.size(), "not signed: a version 1 recording has only HMAC checkpoints (verify it with the "
                              "proxy's recording key, on the proxy host)");
        return;
    }
    carry_.clear();
    state_ = State::records;
}

std::size_t RecordingReader::check_head(ByteView head, std::uint64_t offset) {
    if (crc32(head.first(14)) != load_u32(head.data() + 14)) {
        if (std::all_of(head.begin(), head.end(), [](std::byte b) { return b == std::byte{0}; })) {
            // Zeros where a record should start: either a write lost in a power cut on a filesystem that
            // extended the file before the data reached the disk (a benign tail), or corruption. Which one
            // is decided by whether anything non-zero follows.
            zero_start_ = offset;
            state_ = State::zero_tail;
            return 0;
        }
        problem(offset, "record header CRC mismatch (corrupted record header)");
        return 0;
    }
    const std::uint32_t length = load_u32(head.data());
    if (length > recording_max_payload) {
        problem(offset, "record length " + std::to_string(length) + " exceeds the 16 MiB limit");
        return 0;
    }
    return recording_record_overhead + length;
}

void RecordingReader::feed_records(ByteView& in, std::vector<Event>* events) {
    // Fast path: whole records straight from the input, no copy.
    while (carry_.empty() && in.size() >= head_size && state_ == State::records) {
        const std::size_t size = check_head(in.first(head_size), pos_);
        if (size == 0) {
            if (state_ == State::zero_tail) {
                pos_ += head_size;
                in = in.subspan(head_size);
            }
            return;
        }
        if (in.size() < size) break;
        process_record(in.first(size), pos_, events);
        pos_ += size;
        in = in.subspan(size);
    }
    if (in.empty() || state_ != State::records) return;

    // Slow path: a record spanning chunks is gathered in carry_ (grown only as bytes arrive).
    const std::uint64_t start = pos_ - carry_.size();
    if (carry_.size() < head_size) {
        const std::size_t n = std::min(in.size(), head_size - carry_.size());
        carry_.insert(carry_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
        in = in.subspan(n);
        pos_ += n;
        if (carry_.size() < head_size) return;
    }
    const std::size_t size = check_head(ByteView(carry_).first(head_size), start);
    if (size == 0) {
        if (state_ == State::zero_tail) carry_.clear();
        return;
    }
    const std::size_t n = std::min(in.size(), size - carry_.size());
    carry_.insert(carry_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    in = in.subspan(n);
    pos_ += n;
    if (carry_.size() < size) return;
    Bytes record = std::move(carry_);
    carry_.clear();
    process_record(record, start, events);
}

void RecordingReader::fold(ByteView record) { fold_chain(sha_, chain_, record); }

void RecordingReader::process_record(ByteView record, std::uint64_t offset, std::vector<Event>* events) {
    const std::size_t body = record.size() - 4;
    if (crc32(record.first(body)) != load_u32(record.data() + body)) {
        problem(offset, "record CRC mismatch (corrupted record)");
        return;
    }
    ByteReader r(record);
    const std::uint32_t length = *r.u32();
    const std::uint64_t t_us = *r.u64();
    const auto kind = static_cast<EventKind>(*r.u8());
    const std::uint8_t direction = *r.u8();
    (void)r.u32();
    const ByteView payload = *r.take(length);

    if (t_us < last_t_us_) {
        problem(offset, "timestamp goes backwards (" + std::to_string(t_us) + " us after " +
                            std::to_string(last_t_us_) + " us)");
        return;
    }
    if (report_.records == 0 && kind != EventKind::header) {
        problem(offset, "the first record is " + event_kind_name(kind) + ", not the header");
        return;
    }
    const bool v1_kind = kind == EventKind::checkpoint || kind == EventKind::seal;
    const bool v2_kind = kind == EventKind::signed_checkpoint || kind == EventKind::signed_seal;
    const bool known_integrity = kind == EventKind::header ||
                                 (version_ == recording_format_version ? v1_kind : v2_kind);
    if (is_integrity_kind(kind) && !known_integrity) {
        // A version 2 file must not fall back to unsigned checkpoints, nor a version 1 file carry
        // records whose meaning its readers may not know.
        problem(offset, (v1_kind || v2_kind ? "record kind " + event_kind_name(kind) +
                                                  " of the integrity range is not valid in a version " +
                                                  std::to_string(version_) + " file"
                                            : "unknown record kind " + event_kind_name(kind) + " in the integrity range"));
        return;
    }
    if (known_integrity && direction != 0) {
        problem(offset, event_kind_name(kind) + " record with a direction");
        return;
    }
    switch (kind) {
        case EventKind::header: {
            if (report_.records != 0) {
                problem(offset, "a second header record");
                return;
            }
            auto h = header_from_json(as_chars(payload));
            if (!h || h->session_id.size() > max_session_id) {
                problem(offset, "header record is not a valid header JSON object");
                return;
            }
            header_ = std::move(*h);
            if (version_ == recording_signed_format_version && !check_header_key(offset)) return;
            report_.has_header = true;
            fold(record);
            break;
        }
        case EventKind::checkpoint:
        case EventKind::seal:
        case EventKind::signed_checkpoint:
        case EventKind::signed_seal:
            if (!check_checkpoint(payload, t_us, kind, offset)) return;
            if (is_seal(kind)) {
                report_.sealed = true;
                state_ = State::after_seal;
            } else {
                fold(record);
            }
            report_.authenticated_bytes = offset + record.size();
            break;
        default:
            if (direction > static_cast<std::uint8_t>(Direction::server_to_client)) {
                problem(offset, "invalid direction " + std::to_string(direction));
                return;
            }
            if (events) {
                events->push_back(Event{t_us, kind, static_cast<Direction>(direction),
                                        Bytes(payload.begin(), payload.end())});
            }
            ++report_.events;
            fold(record);
            break;
    }
    ++report_.records;
    last_t_us_ = t_us;
}

bool RecordingReader::check_header_key(std::uint64_t offset) {
    const auto* member = header_.extra.if_contains(recording_signing_key_member);
    std::optional<crypto::Ed25519PublicKey> named;
    if (member && member->is_string()) {
        named = parse_ed25519_key_text(std::string_view(member->get_string()));
    }
    if (!named) {
        problem(offset, "version 2 header record does not name a valid signing_key");
        return false;
    }
    if (!public_key_) {
        // Verification by HMAC key: the signatures are checked against the key the file names, so a
        // file that verifies here also verifies with that public key elsewhere.
        public_key_ = named;
        report_.signing_key = ed25519_key_text(*named);
    } else if (*named != *public_key_) {
        // The signatures are what counts; this only says early and plainly that they cannot verify.
        problem(offset, "signed by another key: the header names " + ed25519_key_text(*named) + ", not the expected " +
                            ed25519_key_text(*public_key_));
        return false;
    }
    return true;
}

bool RecordingReader::check_checkpoint(ByteView payload, std::uint64_t t_us, EventKind kind, std::uint64_t offset) {
    const std::string what = is_seal(kind) ? "seal" : "checkpoint " + std::to_string(report_.checkpoints + 1);
    const bool is_signed = kind == EventKind::signed_checkpoint || kind == EventKind::signed_seal;
    const std::size_t size = is_signed ? signed_checkpoint_payload_size : checkpoint_payload_size;
    if (payload.size() != size) {
        problem(offset, what + ": payload is " + std::to_string(payload.size()) + " bytes, expected " +
                            std::to_string(size));
        return false;
    }
    ByteReader r(payload);
    const std::uint64_t record_index = *r.u64();
    const std::uint64_t event_count = *r.u64();
    const ByteView chain = *r.take(crypto::sha256_size);
    const ByteView mac = *r.take(crypto::sha256_size);
    crypto::Digest claimed{};
    std::copy(chain.begin(), chain.end(), claimed.begin());

    // The MAC and signature first: a checkpoint that does not authenticate says nothing about the
    // records before it.
    if (check_mac_) {
        const auto expected = checkpoint_mac(key_, kind, header_.session_id, t_us, record_index, event_count, claimed);
        if (!crypto::constant_time_equal(expected, mac)) {
            problem(offset, what + ": MAC invalid (wrong key, or a forged or altered checkpoint)");
            return false;
        }
    }
    if (is_signed) {
        // public_key_ is set: a version 2 file's header (record 0) named a key or the reader was given one.
        const ByteView sig = *r.take(crypto::ed25519_signature_size);
        const Bytes msg = signature_message(kind, header_.session_id, t_us, record_index, event_count, chain, mac);
        if (!public_key_ || !crypto::ed25519_verify(*public_key_, msg, sig)) {
            problem(offset, what + ": signature invalid (not signed by " + report_.signing_key +
                                ", or a forged or altered checkpoint)");
            return false;
        }
    }
    if (record_index != report_.records || event_count != report_.events) {
        problem(offset, what + ": authenticates " + std::to_string(event_count) + " events in " +
                            std::to_string(record_index) + " records but the file has " +
                            std::to_string(report_.events) + " events in " + std::to_string(report_.records) +
                            " records before it (records inserted or removed)");
        return false;
    }
    if (claimed != chain_) {
        problem(offset, what + ": chain hash mismatch (records before it were altered or reordered)");
        return false;
    }
    ++report_.checkpoints;
    if (is_signed) ++report_.signatures;
    report_.authenticated_events = report_.events;
    report_.final_chain_hex = hex(chain_);
    return true;
}

VerifyReport RecordingReader::finish() {
    VerifyReport r = report_;
    r.file_bytes = pos_;
    if (state_ == State::zero_tail) {
        r.trailing_bytes = pos_ - zero_start_;
        r.trailing_zero = true;
    } else if (state_ != State::stopped && !carry_.empty()) {
        r.trailing_bytes = carry_.size();
        r.trailing_zero = std::all_of(carry_.begin(), carry_.end(), [](std::byte b) { return b == std::byte{0}; });
    }
    r.intact = r.problems.empty();
    return r;
}

DecodedRecording read_recording(ByteView file, ByteView hmac_key) {
    DecodedRecording out;
    RecordingReader reader(hmac_key);
    reader.feed(file, &out.events);
    out.report = reader.finish();
    out.header = reader.header();
    return out;
}

VerifyReport verify_recording(ByteView file, ByteView hmac_key) {
    RecordingReader reader(hmac_key);
    reader.feed(file, nullptr);
    return reader.finish();
}

DecodedRecording read_recording(ByteView file, ByteView hmac_key, ByteView public_key) {
    DecodedRecording out;
    RecordingReader reader(hmac_key, public_key);
    reader.feed(file, &out.events);
    out.report = reader.finish();
    out.header = reader.header();
    return out;
}

VerifyReport verify_recording(ByteView file, ByteView hmac_key, ByteView public_key) {
    RecordingReader reader(hmac_key, public_key);
    reader.feed(file, nullptr);
    return reader.finish();
}

}  // namespace gg::session
