#pragma once
// The session recording format (.ggrec): event model, encoder, reader and verifier. Pure: no file
// I/O, no clock, no logging. proxy/recording_writer does the I/O. docs/recording-format.md is the
// byte-for-byte specification; the summary below is for readers of this header.
//
//   file    = file_header record*                      (append-only)
//   file_header (12 bytes) = magic "\x89GGREC\r\n" | u32 format_version (1, or 2 when signed)
//   record  = u32 length | u64 t_us | u8 kind | u8 direction | u32 head_crc | payload[length] | u32 crc
//             head_crc = CRC-32 of the 14 bytes before it, crc = CRC-32 of every record byte before it
//   chain   h_0 = SHA-256("glassgate-recording-v1 chain\0" || file_header)
//           h_{k+1} = SHA-256(h_k || bytes of record k)     for every record k except the seal
//   record 0 is the header (JSON); a checkpoint or the final seal that is record k carries
//           u64 k | u64 event_count | h_k | HMAC-SHA-256(key, tag || u16 len || session id || u64 t_us || u64 k || u64 event_count || h_k)
//   version 2 (a signing key was given): checkpoints and the seal are the kinds signed_checkpoint and
//           signed_seal, whose payload appends Ed25519(signing key, "glassgate-recording-v2 signature\0" ||
//           u8 kind || u16 len || session id || u64 t_us || u64 k || u64 event_count || h_k || mac), so
//           anyone holding the public key can verify a file without the proxy's secret
//
// All integers are big-endian. Every byte of a file up to the last valid checkpoint is authenticated;
// bytes after it are only CRC-checked (see the document for the exact guarantees).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/crypto.hpp"

namespace gg::session {

/// Version of files without signatures (HMAC-authenticated checkpoints only).
inline constexpr std::uint32_t recording_format_version = 1;
/// Version of files whose checkpoints and seal are also signed with Ed25519 (signed_checkpoint/signed_seal).
inline constexpr std::uint32_t recording_signed_format_version = 2;
/// The header's `extra` member naming the signing key: "signing_key":"ed25519:<base64>". Informative
/// only: a verifier checks signatures against the key its user supplies, never against this one.
inline constexpr std::string_view recording_signing_key_member = "signing_key";
/// Size of the fixed file header (magic + version).
inline constexpr std::size_t recording_file_header_size = 12;
/// Bytes a record adds around its payload (u32 length, u64 t_us, u8 kind, u8 direction, two CRCs).
inline constexpr std::size_t recording_record_overhead = 22;
/// Largest payload a record may carry; larger length fields are rejected on read before any allocation.
inline constexpr std::size_t recording_max_payload = 16u * 1024u * 1024u;
/// File name suffix used by the writer: `<session-id>.ggrec`.
inline constexpr std::string_view recording_file_suffix = ".ggrec";

/// Record kinds. Numeric ranges are reserved (see docs/recording-format.md, "Kinds"):
///   0x00 invalid; 0x01-0x0F integrity records (a reader rejects unknown ones, and the kinds its file
///   version does not use: 0x02/0x03 only in version 1 files, 0x04/0x05 only in version 2 files);
///   0x10-0x1F general session events; 0x20-0x3F terminal/SSH; 0x40-0x5F PostgreSQL;
///   0x60-0xDF future protocols; 0xE0-0xFF private/experimental.
/// A reader passes data kinds it does not know through as events (the chain still covers them).
enum class EventKind : std::uint8_t {
    header = 0x01,       ///< record 0: UTF-8 JSON object (RecordingHeader); written by begin()
    checkpoint = 0x02,   ///< authenticates everything before it; written by checkpoint()
    seal = 0x03,         ///< final checkpoint, last record of a complete file; written by seal()
    signed_checkpoint = 0x04,  ///< version 2: a checkpoint whose payload also carries an Ed25519 signature
    signed_seal = 0x05,        ///< version 2: the seal, signed likewise

    annotation = 0x10,   ///< free-form UTF-8 note from the proxy ("time-cap warning sent")

    term_output = 0x20,  ///< terminal/channel stdout bytes, server_to_client
    term_input = 0x21,   ///< terminal/channel input bytes, client_to_server
    term_stderr = 0x22,  ///< channel extended data (stderr), server_to_client
    resize = 0x23,       ///< pty size: encode_resize (pty-req and window-change)
    exec = 0x24,         ///< exec command line, raw bytes as requested by the client
    env = 0x25,          ///< one environment variable: encode_env
    exit_status = 0x26,  ///< u32 exit status: encode_exit_status
    exit_signal = 0x27,  ///< encode_exit_signal
    subsystem = 0x28,    ///< subsystem name, e.g. "sftp"
    sftp = 0x29,         ///< one SFTP file operation as a JSON object (open/close with sizes and SHA-256, rename, ...)

    pg_frontend = 0x40,  ///< whole PostgreSQL frontend messages as relayed (client_to_server)
    pg_backend = 0x41,   ///< whole PostgreSQL backend messages as relayed (server_to_client)
    pg_large = 0x42,     ///< bytes of ONE message too large to record whole, in order (the first part starts
                         ///< with its 5-byte header); direction says whose; ends with pg_large_end
    pg_large_end = 0x43, ///< that message's end: JSON {"type","bytes","recorded","sha256"} (whole message)
    pg_copy = 0x44,      ///< one COPY data stream's summary: JSON {"direction","messages","bytes",
                         ///< "recorded_messages","sha256","end"}; sha256 over the CopyData payloads
};

enum class Direction : std::uint8_t { none = 0, client_to_server = 1, server_to_client = 2 };

/// "term_output", "pg_backend", ...; "kind_0x42" for a kind this build does not know.
std::string event_kind_name(EventKind kind);
/// True for header, checkpoint and seal and the reserved range 0x00-0x0F: not appendable as events.
constexpr bool is_integrity_kind(EventKind kind) noexcept { return static_cast<std::uint8_t>(kind) < 0x10; }

/// A public key as glassgate prints and reads it: "ed25519:" followed by the standard base64 (RFC 4648
/// section 4, padded: 44 characters) of the 32-byte key.
std::string ed25519_key_text(ByteView public_key);
/// Parses ed25519_key_text's format; surrounding ASCII whitespace (a trailing newline) is ignored.
/// std::nullopt for anything else.
std::optional<crypto::Ed25519PublicKey> parse_ed25519_key_text(std::string_view text);
/// "SHA256:" + unpadded base64 of SHA-256(public key), to compare keys by eye (as ssh-keygen -l does).
std::string ed25519_key_fingerprint(ByteView public_key);

/// The header record's content. Stored as one JSON object:
/// {"session_id":..,"protocol":..,"target":..,"identity":..,"started_unix_us":..,"extra":{..}}
struct RecordingHeader {
    std::string session_id;           ///< at most 65535 bytes; part of every checkpoint MAC
    std::string protocol;             ///< "ssh", "postgres"
    std::string target;
    std::string identity;
    std::int64_t started_unix_us = 0; ///< wall-clock start as given by the caller
    boost::json::object extra;        ///< anything else (mode, reason, client address, key id, ...)

    friend bool operator==(const RecordingHeader&, const RecordingHeader&) = default;
};

/// One data event. t_us is microseconds since session start (monotonic clock of the caller).
struct Event {
    std::uint64_t t_us = 0;
    EventKind kind = EventKind::annotation;
    Direction direction = Direction::none;
    Bytes payload;

    friend bool operator==(const Event&, const Event&) = default;
};

/// Serialises a header as the JSON text stored in record 0.
std::string header_to_json(const RecordingHeader& header);
/// Parses record 0's JSON; std::nullopt if it is not an object with a string "session_id", strings for
/// the optional text fields, an integer "started_unix_us" and an object "extra" (when present).
std::optional<RecordingHeader> header_from_json(std::string_view json);

/// Produces the bytes of one recording, in order. Stateful (hash chain, counters), single-threaded.
/// Usage: begin() once, then any mix of encode() and checkpoint(), then seal() once. Every returned
/// byte string must be appended to the file in the order produced.
/// Timestamps are clamped to be non-decreasing (events from two threads can race for the same file).
/// Misuse (encode before begin, anything after seal, an integrity kind passed to encode, a payload
/// above recording_max_payload, a session id above 65535 bytes) throws std::logic_error or
/// std::length_error: those are programming errors, not data errors.
class RecordingEncoder {
public:
    /// The key is copied (and wiped on destruction). With a `signing_seed` (a 32-byte Ed25519 private
    /// key) the file is version 2: every checkpoint and the seal are also signed, and the header's
    /// `extra` gets "signing_key":"ed25519:<base64 public key>" (replacing any such member given).
    /// Throws crypto::CryptoError for a seed that is not 32 bytes.
    RecordingEncoder(ByteView hmac_key, const RecordingHeader& header, ByteView signing_seed = {});
    ~RecordingEncoder();
    RecordingEncoder(RecordingEncoder&&) noexcept;
    RecordingEncoder& operator=(RecordingEncoder&&) noexcept;
    RecordingEncoder(const RecordingEncoder&) = delete;
    RecordingEncoder& operator=(const RecordingEncoder&) = delete;

    /// File header + header record (t_us 0).
    Bytes begin();
    /// One data event's record.
    Bytes encode(const Event& event);
    /// Appends one data event's record to `out` (no intermediate copies).
    void encode_to(Bytes& out, std::uint64_t t_us, EventKind kind, Direction direction, ByteView payload);
    /// A checkpoint record authenticating every record so far; empty if no record was written since
    /// the last checkpoint.
    Bytes checkpoint(std::uint64_t t_us);
    /// Same, appended to `out`; returns false if nothing was written.
    bool checkpoint_to(Bytes& out, std::uint64_t t_us);
    /// The seal record (a final checkpoint that also marks the file complete). The encoder accepts
    /// nothing afterwards.
    Bytes seal(std::uint64_t t_us);

    /// Data events encoded so far (excludes header, checkpoints, seal).
    [[nodiscard]] std::uint64_t event_count() const noexcept { return events_; }
    /// Records encoded so far (includes header and checkpoints).
    [[nodiscard]] std::uint64_t record_count() const noexcept { return records_; }
    /// The running chain hash (the value the next checkpoint would authenticate); after seal(), the
    /// value the seal authenticates. Lower-case hex.
    [[nodiscard]] std::string chain_hash_hex() const;
    /// True if records were encoded since the last checkpoint (a checkpoint would not be empty).
    [[nodiscard]] bool has_unauthenticated() const noexcept { return begun_ && !sealed_ && records_ > authenticated_records_; }
    [[nodiscard]] bool begun() const noexcept { return begun_; }
    [[nodiscard]] bool sealed() const noexcept { return sealed_; }
    [[nodiscard]] const RecordingHeader& header() const noexcept { return header_; }

private:
    void append_record(Bytes& out, std::uint64_t t_us, EventKind kind, Direction direction, ByteView payload);
    void append_checkpoint(Bytes& out, std::uint64_t t_us, EventKind kind);
    void require_open(const char* what) const;

    Bytes key_;
    RecordingHeader header_;
    std::unique_ptr<crypto::Ed25519Signer> signer_;  ///< null: version 1, unsigned
    crypto::Sha256 sha_;
    crypto::Digest chain_{};
    std::uint64_t records_ = 0;
    std::uint64_t events_ = 0;
    std::uint64_t authenticated_records_ = 0;
    std::uint64_t last_t_us_ = 0;
    bool begun_ = false;
    bool sealed_ = false;
};

// ---- payload helpers for the structured kinds -------------------------------------------------
// Decoders return std::nullopt when the payload does not have exactly the documented layout.

struct TerminalSize {
    std::uint32_t cols = 80;
    std::uint32_t rows = 24;
    friend bool operator==(const TerminalSize&, const TerminalSize&) = default;
};
/// resize: u32 cols | u32 rows
Bytes encode_resize(TerminalSize size);
std::optional<TerminalSize> decode_resize(ByteView payload);

/// exit_status: u32 status (SSH "exit-status")
Bytes encode_exit_status(std::uint32_t status);
std::optional<std::uint32_t> decode_exit_status(ByteView payload);

struct ExitSignal {
    std::string signal;   ///< without "SIG", e.g. "KILL" (SSH "exit-signal")
    bool core_dumped = false;
    std::string message;
    friend bool operator==(const ExitSignal&, const ExitSignal&) = default;
};
/// exit_signal: u32 n | signal[n] | u8 core_dumped (0/1) | u32 m | message[m]
Bytes encode_exit_signal(const ExitSignal& sig);
std::optional<ExitSignal> decode_exit_signal(ByteView payload);

struct EnvVar {
    std::string name;
    std::string value;
    friend bool operator==(const EnvVar&, const EnvVar&) = default;
};
/// env: u32 n | name[n] | u32 m | value[m]
Bytes encode_env(std::string_view name, std::string_view value);
std::optional<EnvVar> decode_env(ByteView payload);

/// exec, annotation, subsystem: the text's bytes, no terminator.
inline Bytes encode_text(std::string_view text) { return to_bytes(text); }
inline std::string decode_text(ByteView payload) { return std::string(as_chars(payload)); }

// ---- reading and verification -----------------------------------------------------------------

struct VerifyReport {
    bool intact = false;        ///< no corruption or tampering found in what the file contains (may be unsealed)
    bool sealed = false;        ///< a valid seal record ends the file
    std::uint64_t events = 0;   ///< complete data events read (before the first problem, if any)
    std::uint64_t authenticated_events = 0;  ///< data events covered by the last valid checkpoint/seal
    std::uint64_t trailing_bytes = 0;        ///< bytes after the last complete record (cut mid-record)
    bool trailing_zero = false;              ///< ... and they are all zero (lost write after a power cut)
    std::string final_chain_hex;             ///< chain hash at the last valid checkpoint/seal ("" if none)
    std::uint64_t checkpoints = 0;           ///< valid checkpoints read, the seal included
    std::uint64_t records = 0;               ///< complete records read (header, events, checkpoints, seal)
    std::uint64_t authenticated_bytes = 0;   ///< file offset up to which every byte is authenticated
    std::uint64_t file_bytes = 0;            ///< bytes examined
    bool has_header = false;                 ///< the header record was read
    std::uint32_t format_version = 0;        ///< from the file header (0 if not read)
    bool mac_checked = true;                 ///< false when verified by public key alone (MACs not checked)
    std::uint64_t signatures = 0;            ///< valid Ed25519 signatures checked (checkpoints, seal included)
    std::string signing_key;                 ///< "ed25519:<base64>" the signatures were checked against ("" if none)

    struct Problem {
        std::uint64_t offset;       ///< file offset of the offending record (or byte)
        std::uint64_t event_index;  ///< data events read before it (the index of the event it would be)
        std::string message;
    };
    std::vector<Problem> problems;  ///< empty when intact (reading stops at the first problem)

    /// Data events read but not covered by a valid checkpoint.
    [[nodiscard]] std::uint64_t unauthenticated_events() const noexcept { return events - authenticated_events; }
    /// One line: "ok: sealed, 1234 events" /
    /// "incomplete: not sealed, 120 events, authenticated through checkpoint 7 (100 events), 20 trailing
    /// events after the last checkpoint not authenticated" / "BROKEN at event 17 (offset 4242): ...".
    [[nodiscard]] std::string summary() const;
};

/// True when the report shows a complete, untampered file whose seal matches what the sessions index
/// stored at close (SealInfo events + chain hash). This is the check that also catches a file truncated
/// exactly at a checkpoint boundary, which the file alone cannot reveal.
bool matches_seal(const VerifyReport& report, std::uint64_t expected_events, std::string_view expected_chain_hex);

struct DecodedRecording {
    RecordingHeader header;
    std::vector<Event> events;  ///< data events only, no header/checkpoints/seal; events beyond
                                ///< report.authenticated_events are not authenticated
    VerifyReport report;
};

/// Incremental reader/verifier: feed the file in chunks of any size, then finish(). Sans-IO; never
/// throws on bad input (only std::bad_alloc or crypto::CryptoError for a broken library). Memory is
/// bounded by one record (at most recording_max_payload + overhead) plus the events it hands out.
class RecordingReader {
public:
    /// Verifies with the proxy's HMAC key (copied, wiped on destruction). A version 2 file's signatures
    /// are checked too, against the key its header names (a consistency check: the file stays
    /// verifiable by public key).
    explicit RecordingReader(ByteView hmac_key);
    /// Verifies with `hmac_key` (empty: MACs are not checked) AND requires every checkpoint and the
    /// seal to carry a valid Ed25519 signature by `public_key` (32 bytes) — the key the user supplies,
    /// never the one the file names. A version 1 file (no signatures) is a problem ("not signed").
    /// Throws std::invalid_argument if `public_key` is not 32 bytes.
    RecordingReader(ByteView hmac_key, ByteView public_key);
    ~RecordingReader();
    RecordingReader(const RecordingReader&) = delete;
    RecordingReader& operator=(const RecordingReader&) = delete;

    /// Consumes the next bytes of the file. Complete data events are appended to `events` when it is
    /// not null. After a problem, further input is only counted.
    void feed(ByteView chunk, std::vector<Event>* events = nullptr);
    /// End of file: returns the report (call once).
    VerifyReport finish();

    [[nodiscard]] const RecordingHeader& header() const noexcept { return header_; }
    /// True once a problem stopped reading.
    [[nodiscard]] bool stopped() const noexcept { return state_ == State::stopped; }

private:
    enum class State : std::uint8_t { file_header, records, after_seal, zero_tail, stopped };

    void feed_file_header(ByteView& in);
    void feed_records(ByteView& in, std::vector<Event>* events);
    /// Checks an 18-byte record head; returns the whole record size, or 0 after recording a problem.
    std::size_t check_head(ByteView head, std::uint64_t offset);
    void process_record(ByteView record, std::uint64_t offset, std::vector<Event>* events);
    bool check_checkpoint(ByteView payload, std::uint64_t t_us, EventKind kind, std::uint64_t offset);
    bool check_header_key(std::uint64_t offset);
    void fold(ByteView record);
    void problem(std::uint64_t offset, std::string message);

    Bytes key_;
    bool check_mac_ = true;
    bool require_signatures_ = false;                  ///< public-key verification
    std::optional<crypto::Ed25519PublicKey> public_key_; ///< the key signatures are checked against
    std::uint32_t version_ = 0;
    State state_ = State::file_header;
    Bytes carry_;                 ///< an incomplete file header or record spanning chunks
    std::uint64_t pos_ = 0;       ///< absolute offset of the next input byte
    std::uint64_t zero_start_ = 0;
    crypto::Sha256 sha_;
    crypto::Digest chain_{};
    std::uint64_t last_t_us_ = 0;
    RecordingHeader header_;
    VerifyReport report_;
};

/// Reads a whole file's bytes: decodes and verifies in one pass. Never throws on bad input.
DecodedRecording read_recording(ByteView file, ByteView hmac_key);
/// Verifies without keeping the events.
VerifyReport verify_recording(ByteView file, ByteView hmac_key);
/// Same with public-key verification (RecordingReader(hmac_key, public_key)); `hmac_key` may be empty.
DecodedRecording read_recording(ByteView file, ByteView hmac_key, ByteView public_key);
VerifyReport verify_recording(ByteView file, ByteView hmac_key, ByteView public_key);

}  // namespace gg::session
