#pragma once
// The audit log's tamper-evident line format. Pure: the caller supplies time, sequence number,
// previous hash and key; proxy/ stores the lines (state store) and prints them.
//
// One JSON object per line. The line is the event's fields, then "seq" and "prev" (hex of the
// previous entry's hash; 64 zeros for the first), then two or three fixed-length trailing members:
//
//   {"time":"2026-11-23T19:04:35.123456Z","event":"session.start",...,"seq":7,"prev":"<64 hex>","hash":"<64 hex>","mac":"<64 hex>","sig":"<128 hex>"}
//
//   body = the exact line bytes up to (not including) `,"hash":` followed by `}`
//   hash = SHA-256( prev_hash(32 raw bytes) || body )
//   mac  = HMAC-SHA-256( audit_key, "glassgate-audit-v1\0" || hash(32 raw bytes) )
//   sig  = Ed25519( signing key, "glassgate-audit-v1 signature\0" || hash(32 raw bytes) || mac(32 raw bytes) )
//          (29-byte tag; the signature covers every byte of the line before it)
//   hex is lower-case; a verifier rejects any other spelling
//
// "sig" is written when the store has a signing key (serve and the CLI pass the state directory's);
// lines written without one end after "mac" and still verify with the audit key. Anyone holding the public key
// (`glassgate keys show`) can check a signed chain without the proxy's secrets
// (`glassgate verify --audit FILE --public-key KEYFILE`); then "mac" is not checked.
//
// Hashing exact bytes (not a re-serialisation) means verification never depends on JSON
// canonicalisation. Editing, deleting or reordering any line breaks the chain; recomputing the
// chain after an edit requires the key (mac) or the signing key (sig). Removing lines at the END
// cannot be seen from the lines alone: compare the head (last hash) with a copy kept elsewhere.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/text.hpp"
#include "glassgate/session/session.hpp"

namespace gg::session {

/// One audit event. Empty strings are omitted from the line; `details` carries event-specific data.
struct AuditEvent {
    TimePoint time{};
    std::string type;        ///< "session.start", "session.end", "auth.denied", "secret.set", ...
    std::string session_id;
    std::string identity;
    std::string target;
    std::string source;      ///< client address
    std::string outcome;     ///< "ok", "denied", "error", ...
    std::string reason;      ///< why (denial reason, close reason, stated break-glass reason)
    boost::json::object details;
};

struct AuditLine {
    std::string text;        ///< the JSON line, no newline
    crypto::Digest hash{};   ///< this entry's hash (the next entry's prev)
};

/// Formats `ev` as chain entry number `seq` following `prev`. With a `signing_seed` (32-byte Ed25519
/// private key) the line also carries "sig"; throws crypto::CryptoError for a seed of another length.
AuditLine make_audit_line(const AuditEvent& ev, std::uint64_t seq, const crypto::Digest& prev, ByteView audit_key,
                          ByteView signing_seed = {});

/// "2026-11-23T19:04:35.123456Z": session times (audit, index, CLI) carry microseconds.
inline std::string format_utc(TimePoint t) { return gg::format_utc(t, UtcDigits::microseconds); }

/// Checks a sequence of lines in order. Feed every line; the first problem is kept.
class AuditVerifier {
public:
    /// Checks the chain and every MAC with the proxy's audit key. "sig", where present, is not checked
    /// (use the two-key form for that).
    explicit AuditVerifier(ByteView audit_key);
    /// Checks the chain and requires on every line a "sig" by `public_key` (32 bytes; the key the user
    /// supplies); a line without one is a problem ("not signed"). With an empty `audit_key` the MACs
    /// are not checked. Throws std::invalid_argument if `public_key` is not 32 bytes.
    AuditVerifier(ByteView audit_key, ByteView public_key);
    /// With the one-key form: also checks the "sig" of every line that has one against `public_key`
    /// (the proxy's own signing key), while lines written before signing existed may lack it. A line
    /// whose signature does not verify is a problem. Throws std::invalid_argument if not 32 bytes.
    void also_check_signatures(ByteView public_key);
    /// Returns false (and records the problem) if this line breaks the chain.
    bool feed(std::string_view line);
    [[nodiscard]] bool ok() const noexcept { return problem_.empty(); }
    [[nodiscard]] std::uint64_t entries() const noexcept { return entries_; }
    /// "entry 12 (seq 12): hash mismatch: the line was edited" etc.; empty when ok.
    [[nodiscard]] const std::string& problem() const noexcept { return problem_; }
    [[nodiscard]] const crypto::Digest& head() const noexcept { return prev_; }
    /// Entries whose signature was verified (public-key mode).
    [[nodiscard]] std::uint64_t signed_entries() const noexcept { return signed_; }
    /// False in public-key mode without an audit key: the MACs were not checked.
    [[nodiscard]] bool mac_checked() const noexcept { return check_mac_; }

private:
    Bytes key_;
    bool check_mac_ = true;
    std::optional<crypto::Ed25519PublicKey> public_key_;
    bool sig_optional_ = false;  ///< also_check_signatures(): a missing sig is allowed
    std::uint64_t signed_ = 0;
    crypto::Digest prev_{};
    std::uint64_t entries_ = 0;
    std::string problem_;
};

}  // namespace gg::session
