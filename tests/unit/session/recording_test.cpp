#include "glassgate/session/recording.hpp"

#include <doctest/doctest.h>

#include <boost/crc.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "recording_fixture.hpp"

using namespace gg;
using namespace gg::session;

namespace {

const Bytes the_key = to_bytes("0123456789abcdef0123456789abcdef");
const Bytes other_key = to_bytes("fedcba9876543210fedcba9876543210");

RecordingHeader test_header() {
    RecordingHeader h = test::header("ssh", "web01", "alice@example.com", 1'700'000'000'123'456);
    h.extra["mode"] = "breakglass";
    h.extra["reason"] = "INC-42";
    return h;
}

Event ev(std::uint64_t t, EventKind k, Direction d, std::string_view text) { return Event{t, k, d, to_bytes(text)}; }
Event ev(std::uint64_t t, EventKind k, Direction d, Bytes payload) { return Event{t, k, d, std::move(payload)}; }

/// One event of every kind this build knows, plus two it does not (reserved ranges pass through).
std::vector<Event> all_kinds() {
    std::vector<Event> v;
    v.push_back(ev(10, EventKind::resize, Direction::client_to_server, encode_resize({132, 43})));
    v.push_back(ev(11, EventKind::env, Direction::client_to_server, encode_env("TERM", "xterm-256color")));
    v.push_back(ev(12, EventKind::exec, Direction::client_to_server, "ls -la /tmp"));
    v.push_back(ev(13, EventKind::subsystem, Direction::client_to_server, "sftp"));
    v.push_back(ev(20, EventKind::term_input, Direction::client_to_server, "l"));
    v.push_back(ev(21, EventKind::term_output, Direction::server_to_client, "l\x1b[0m\r\n\xff\xfe"));
    v.push_back(ev(22, EventKind::term_stderr, Direction::server_to_client, "warning\n"));
    v.push_back(ev(30, EventKind::annotation, Direction::none, "time-cap warning sent"));
    v.push_back(ev(40, EventKind::pg_frontend, Direction::client_to_server, std::string_view("Q\0\0\0\x0dselect 1\0", 14)));
    v.push_back(ev(41, EventKind::pg_backend, Direction::server_to_client, std::string_view("Z\0\0\0\x05I", 6)));
    v.push_back(ev(50, EventKind::exit_status, Direction::server_to_client, encode_exit_status(130)));
    v.push_back(ev(51, EventKind::exit_signal, Direction::server_to_client, encode_exit_signal({"INT", true, "boom"})));
    v.push_back(ev(52, static_cast<EventKind>(0x5E), Direction::none, "future pg kind"));
    v.push_back(ev(53, static_cast<EventKind>(0xE7), Direction::none, ""));
    return v;
}

/// A recording with its records' byte ranges, for surgery.
struct Built {
    Bytes file;
    std::vector<std::pair<std::size_t, std::size_t>> records;  // [begin, end) of every record after begin()
    std::vector<std::size_t> data_records;                     // indexes into `records` of data events
    std::vector<std::size_t> checkpoints;                      // indexes into `records` of checkpoints
    std::string chain;
    std::uint64_t events = 0;
};

/// Ed25519 private keys (seeds) for signed recordings, and their public keys.
const Bytes the_seed(32, std::byte{0x11});
const Bytes other_seed(32, std::byte{0x22});
const crypto::Ed25519PublicKey the_public = crypto::ed25519_public_from_seed(the_seed);
const crypto::Ed25519PublicKey other_public = crypto::ed25519_public_from_seed(other_seed);

/// header, 4 events, checkpoint, 4 events, checkpoint, 3 events, [seal]; signed (version 2) with a seed.
Built build(bool sealed = true, ByteView key = the_key, std::vector<Event> events = {}, ByteView seed = {},
            const RecordingHeader& header = test_header()) {
    if (events.empty()) {
        for (std::uint64_t i = 0; i < 11; ++i) {
            events.push_back(ev(100 * i, i % 2 ? EventKind::term_input : EventKind::term_output,
                                i % 2 ? Direction::client_to_server : Direction::server_to_client,
                                "event number " + std::to_string(i)));
        }
    }
    Built b;
    RecordingEncoder enc(key, header, seed);
    b.file = enc.begin();
    auto add = [&](Bytes bytes) {
        if (bytes.empty()) return;
        b.records.emplace_back(b.file.size(), b.file.size() + bytes.size());
        b.file.insert(b.file.end(), bytes.begin(), bytes.end());
    };
    for (std::size_t i = 0; i < events.size(); ++i) {
        add(enc.encode(events[i]));
        b.data_records.push_back(b.records.size() - 1);
        if (i == 3 || i == 7) {
            add(enc.checkpoint(events[i].t_us));
            b.checkpoints.push_back(b.records.size() - 1);
        }
    }
    if (sealed) add(enc.seal(events.back().t_us + 1));
    b.chain = enc.chain_hash_hex();
    b.events = enc.event_count();
    return b;
}

Bytes cut(const Bytes& file, std::size_t n) { return Bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n)); }

Bytes erase_range(Bytes file, std::pair<std::size_t, std::size_t> r) {
    file.erase(file.begin() + static_cast<std::ptrdiff_t>(r.first), file.begin() + static_cast<std::ptrdiff_t>(r.second));
    return file;
}

std::uint32_t crc32(const std::byte* p, std::size_t n) {
    boost::crc_32_type crc;
    crc.process_bytes(p, n);
    return crc.checksum();
}

void put_u32(Bytes& b, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) b[at + i] = static_cast<std::byte>((v >> (24 - 8 * i)) & 0xFF);
}

/// Recomputes both CRCs of the record at [r.first, r.second) (what a forger without the key can do).
void fix_crcs(Bytes& file, std::pair<std::size_t, std::size_t> r) {
    put_u32(file, r.first + 14, crc32(file.data() + r.first, 14));
    put_u32(file, r.second - 4, crc32(file.data() + r.first, r.second - r.first - 4));
}

bool has_message(const VerifyReport& r, std::string_view needle) {
    return !r.problems.empty() && r.problems.front().message.find(needle) != std::string::npos;
}

}  // namespace

TEST_SUITE_BEGIN("recording");

TEST_CASE("round trip of every event kind, header included") {
    const auto events = all_kinds();
    RecordingEncoder enc(the_key, test_header());
    Bytes file = enc.begin();
    for (const auto& e : events) {
        auto b = enc.encode(e);
        file.insert(file.end(), b.begin(), b.end());
    }
    auto cp = enc.checkpoint(60);
    file.insert(file.end(), cp.begin(), cp.end());
    auto seal = enc.seal(61);
    file.insert(file.end(), seal.begin(), seal.end());

    const auto rec = read_recording(file, the_key);
    CHECK(rec.report.intact);
    CHECK(rec.report.sealed);
    CHECK(rec.report.problems.empty());
    CHECK(rec.header == test_header());
    REQUIRE(rec.events.size() == events.size());
    for (std::size_t i = 0; i < events.size(); ++i) CHECK(rec.events[i] == events[i]);
    CHECK(rec.report.events == events.size());
    CHECK(rec.report.authenticated_events == events.size());
    CHECK(rec.report.checkpoints == 2);
    CHECK(rec.report.records == events.size() + 3);
    CHECK(rec.report.authenticated_bytes == file.size());
    CHECK(rec.report.trailing_bytes == 0);
    CHECK(rec.report.final_chain_hex == enc.chain_hash_hex());
    CHECK(rec.report.summary() == "ok: sealed, 14 events");
    CHECK(matches_seal(rec.report, enc.event_count(), enc.chain_hash_hex()));
    CHECK_FALSE(matches_seal(rec.report, enc.event_count() - 1, enc.chain_hash_hex()));
    CHECK(event_kind_name(rec.events[12].kind) == "kind_0x5e");
}

TEST_CASE("file header and header record bytes are as documented") {
    RecordingEncoder enc(the_key, test_header());
    const Bytes b = enc.begin();
    const Bytes magic_and_version{std::byte{0x89}, std::byte{'G'}, std::byte{'G'}, std::byte{'R'},
                                  std::byte{'E'},  std::byte{'C'}, std::byte{'\r'}, std::byte{'\n'},
                                  std::byte{0},    std::byte{0},   std::byte{0},    std::byte{1}};
    REQUIRE(b.size() > recording_file_header_size + recording_record_overhead);
    CHECK(Bytes(b.begin(), b.begin() + 12) == magic_and_version);
    ByteReader r(ByteView(b).subspan(12));
    const auto len = r.u32();
    CHECK(r.u64() == 0u);                                     // t_us
    CHECK(r.u8() == static_cast<std::uint8_t>(EventKind::header));
    CHECK(r.u8() == 0u);                                      // direction none
    CHECK(r.u32() == crc32(b.data() + 12, 14));               // head crc
    const auto json = r.take(*len);
    REQUIRE(json.has_value());
    CHECK(as_chars(*json) == header_to_json(test_header()));
    CHECK(r.u32() == crc32(b.data() + 12, 18 + *len));        // record crc
    CHECK(r.remaining() == 0);
    CHECK(as_chars(*json).substr(0, 14) == R"({"session_id":)");
}

TEST_CASE("known-answer vector: the format does not change by accident") {
    // Verified against an independent implementation of docs/recording-format.md (Python).
    RecordingHeader h;
    h.session_id = "s1";
    h.protocol = "ssh";
    h.started_unix_us = 1;
    RecordingEncoder enc(to_bytes("key"), h);
    Bytes f = enc.begin();
    auto add = [&](Bytes b) { f.insert(f.end(), b.begin(), b.end()); };
    add(enc.encode(ev(5, EventKind::term_output, Direction::server_to_client, "hi")));
    add(enc.checkpoint(6));
    add(enc.seal(7));
    CHECK(f.size() == 355);
    CHECK(to_hex(crypto::sha256(f)) == "17f6e91c54222de75c91ef68a08347437e9db27f65ca686652dfa599ceb1ec2e");
    CHECK(enc.chain_hash_hex() == "4608eaa0fba21b64fa6d85e459c91d66c00fbcc1c32254e6a01e1b0d03ab33cb");
}

TEST_CASE("payload helpers round trip and reject malformed payloads") {
    CHECK(decode_resize(encode_resize({200, 50})) == TerminalSize{200, 50});
    CHECK_FALSE(decode_resize(to_bytes("1234567")).has_value());
    CHECK_FALSE(decode_resize(to_bytes("123456789")).has_value());
    CHECK(decode_exit_status(encode_exit_status(0xFFFFFFFFu)) == 0xFFFFFFFFu);
    CHECK_FALSE(decode_exit_status(to_bytes("12345")).has_value());
    const ExitSignal sig{"KILL", false, ""};
    CHECK(decode_exit_signal(encode_exit_signal(sig)) == sig);
    Bytes bad_core = encode_exit_signal(sig);
    bad_core[8] = std::byte{2};
    CHECK_FALSE(decode_exit_signal(bad_core).has_value());
    CHECK(decode_env(encode_env("LANG", "C.UTF-8")) == EnvVar{"LANG", "C.UTF-8"});
    Bytes env = encode_env("A", "B");
    env.push_back(std::byte{0});
    CHECK_FALSE(decode_env(env).has_value());
    CHECK_FALSE(decode_env(Bytes{std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}}).has_value());
    CHECK(decode_text(encode_text("echo hi")) == "echo hi");
}

TEST_CASE("header JSON parsing is strict about types") {
    CHECK(header_from_json(header_to_json(test_header())) == test_header());
    CHECK(header_from_json(R"({"session_id":"x"})").has_value());
    CHECK(header_from_json(R"({"session_id":"x","future":[1,2]})").has_value());
    CHECK_FALSE(header_from_json(R"({"protocol":"ssh"})").has_value());
    CHECK_FALSE(header_from_json(R"({"session_id":7})").has_value());
    CHECK_FALSE(header_from_json(R"({"session_id":"x","started_unix_us":"1"})").has_value());
    CHECK_FALSE(header_from_json(R"({"session_id":"x","extra":[]})").has_value());
    CHECK_FALSE(header_from_json(R"(["session_id"])").has_value());
    CHECK_FALSE(header_from_json("{").has_value());
}

TEST_CASE("encoder: checkpoints, timestamps and misuse") {
    RecordingEncoder enc(the_key, test_header());
    CHECK_THROWS_AS(enc.encode(ev(1, EventKind::term_output, Direction::server_to_client, "x")), std::logic_error);
    auto f = enc.begin();
    CHECK_THROWS_AS(enc.begin(), std::logic_error);
    CHECK(enc.has_unauthenticated());                 // the header is not yet authenticated
    auto add = [&](Bytes b) { f.insert(f.end(), b.begin(), b.end()); };
    add(enc.checkpoint(0));
    CHECK_FALSE(enc.has_unauthenticated());
    CHECK(enc.checkpoint(0).empty());                  // nothing new: nothing to write
    CHECK_THROWS_AS(enc.encode(ev(1, EventKind::checkpoint, Direction::none, "")), std::logic_error);
    CHECK_THROWS_AS(enc.encode(ev(1, EventKind::seal, Direction::none, "")), std::logic_error);
    CHECK_THROWS_AS(enc.encode(ev(1, EventKind::header, Direction::none, "")), std::logic_error);
    CHECK_THROWS_AS(enc.encode(ev(1, static_cast<EventKind>(0x07), Direction::none, "")), std::logic_error);
    CHECK_THROWS_AS(enc.encode(ev(1, EventKind::annotation, static_cast<Direction>(3), "")), std::logic_error);
    CHECK_THROWS_AS(enc.encode(Event{1, EventKind::term_output, Direction::server_to_client,
                                     Bytes(recording_max_payload + 1)}),
                    std::length_error);
    // A later event with an earlier timestamp (two threads racing) is clamped, never reordered.
    add(enc.encode(ev(50, EventKind::term_output, Direction::server_to_client, "a")));
    add(enc.encode(ev(40, EventKind::term_output, Direction::server_to_client, "b")));
    add(enc.seal(10));
    CHECK_THROWS_AS(enc.encode(ev(60, EventKind::term_output, Direction::server_to_client, "c")), std::logic_error);
    CHECK_THROWS_AS(enc.seal(60), std::logic_error);
    CHECK_THROWS_AS(enc.checkpoint(60), std::logic_error);
    const auto rec = read_recording(f, the_key);
    CHECK(rec.report.intact);
    CHECK(rec.report.sealed);
    REQUIRE(rec.events.size() == 2);
    CHECK(rec.events[0].t_us == 50);
    CHECK(rec.events[1].t_us == 50);

    RecordingHeader long_id = test_header();
    long_id.session_id.assign(70000, 'x');
    CHECK_THROWS_AS(RecordingEncoder(the_key, long_id), std::length_error);
}

TEST_CASE("a single-byte change at any offset of a sealed recording is reported as a problem") {
    const Built b = build(true);
    REQUIRE(read_recording(b.file, the_key).report.sealed);
    for (std::uint8_t mask : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
        for (std::size_t i = 0; i < b.file.size(); ++i) {
            Bytes f = b.file;
            f[i] ^= std::byte{mask};
            const auto rep = verify_recording(f, the_key);
            INFO("offset ", i, " mask ", int(mask), ": ", rep.summary());
            CHECK_FALSE(rep.intact);
            CHECK_FALSE(rep.problems.empty());
            CHECK_FALSE(matches_seal(rep, b.events, b.chain));
        }
    }
}

TEST_CASE("a single-byte change in an unsealed recording: problem, or an unreturned incomplete tail") {
    // Unsealed and cut inside the last record: a change in a complete record (authenticated or not) is
    // a problem; a change inside the incomplete trailing record's first 18 bytes (its head) is a problem
    // too; a change in the rest of the incomplete record cannot be seen, and that record is never returned.
    const Built full = build(false);
    const std::size_t last_begin = full.records.back().first;
    const Bytes file = cut(full.file, full.records.back().second - 3);
    const auto clean = verify_recording(file, the_key);
    REQUIRE(clean.intact);
    REQUIRE(clean.trailing_bytes == full.records.back().second - 3 - last_begin);
    for (std::size_t i = 0; i < file.size(); ++i) {
        Bytes f = file;
        f[i] ^= std::byte{0x01};
        const auto rep = verify_recording(f, the_key);
        INFO("offset ", i, ": ", rep.summary());
        if (i < last_begin + 18) {
            CHECK_FALSE(rep.intact);
        } else {
            CHECK(rep.intact);
            CHECK(rep.events == clean.events);
            CHECK(rep.trailing_bytes == clean.trailing_bytes);
        }
    }
}

TEST_CASE("deleted event is detected at the next checkpoint") {
    const Built b = build(true);
    const Bytes f = erase_range(b.file, b.records[b.data_records[5]]);
    const auto rep = verify_recording(f, the_key);
    CHECK_FALSE(rep.intact);
    CHECK(has_message(rep, "records inserted or removed"));
    CHECK(rep.checkpoints == 1);
    CHECK(rep.authenticated_events == 4);
    CHECK(rep.summary().find("BROKEN at event 7") == 0);
}

TEST_CASE("deleted checkpoint is detected at the next checkpoint") {
    const Built b = build(true);
    const auto rep = verify_recording(erase_range(b.file, b.records[b.checkpoints[0]]), the_key);
    CHECK_FALSE(rep.intact);
    CHECK(has_message(rep, "records inserted or removed"));
}

TEST_CASE("reordered events are detected") {
    // Same timestamps so only the chain can tell.
    std::vector<Event> events;
    for (int i = 0; i < 11; ++i) events.push_back(ev(7, EventKind::term_output, Direction::server_to_client, "line " + std::to_string(i)));
    const Built b = build(true, the_key, events);
    const auto r1 = b.records[b.data_records[5]];
    const auto r2 = b.records[b.data_records[6]];
    REQUIRE(r1.second == r2.first);
    Bytes f(b.file.begin(), b.file.begin() + static_cast<std::ptrdiff_t>(r1.first));
    f.insert(f.end(), b.file.begin() + static_cast<std::ptrdiff_t>(r2.first), b.file.begin() + static_cast<std::ptrdiff_t>(r2.second));
    f.insert(f.end(), b.file.begin() + static_cast<std::ptrdiff_t>(r1.first), b.file.begin() + static_cast<std::ptrdiff_t>(r1.second));
    f.insert(f.end(), b.file.begin() + static_cast<std::ptrdiff_t>(r2.second), b.file.end());
    REQUIRE(f.size() == b.file.size());
    const auto rep = verify_recording(f, the_key);
    CHECK_FALSE(rep.intact);
    CHECK(has_message(rep, "chain hash mismatch"));
    CHECK(rep.authenticated_events == 4);
}

TEST_CASE("edited event with recomputed CRCs is detected by the chain") {
    const Built b = build(true);
    Bytes f = b.file;
    const auto r = b.records[b.data_records[9]];
    f[r.first + 18] = std::byte{'E'};  // first payload byte
    fix_crcs(f, r);
    const auto rep = verify_recording(f, the_key);
    CHECK_FALSE(rep.intact);
    CHECK(has_message(rep, "seal: chain hash mismatch"));
    CHECK(rep.checkpoints == 2);
    CHECK(rep.authenticated_events == 8);
    CHECK(rep.events == 11);  // read, but not authenticated
}

TEST_CASE("truncation before the last checkpoint: not sealed, authenticated count lower") {
    const Built b = build(true);
    // Cut right after event 6 (between checkpoint 1 and checkpoint 2).
    const Bytes f = cut(b.file, b.records[b.data_records[6]].second);
    const auto rep = verify_recording(f, the_key);
    CHECK(rep.intact);
    CHECK_FALSE(rep.sealed);
    CHECK(rep.events == 7);
    CHECK(rep.checkpoints == 1);
    CHECK(rep.authenticated_events == 4);
    CHECK(rep.unauthenticated_events() == 3);
    CHECK(rep.authenticated_bytes == b.records[b.checkpoints[0]].second);
    CHECK(rep.summary() ==
          "incomplete: not sealed, 7 events, authenticated through checkpoint 1 (4 events), "
          "3 trailing events after the last checkpoint not authenticated");
    CHECK_FALSE(matches_seal(rep, b.events, b.chain));
}

TEST_CASE("truncation exactly at a checkpoint: only the seal's count and hash reveal it") {
    const Built b = build(true);
    const auto rep = verify_recording(cut(b.file, b.records[b.checkpoints[1]].second), the_key);
    CHECK(rep.intact);
    CHECK_FALSE(rep.sealed);
    CHECK(rep.authenticated_events == rep.events);
    CHECK(rep.summary() == "incomplete: not sealed, 8 events, authenticated through checkpoint 2 (8 events)");
    CHECK_FALSE(matches_seal(rep, b.events, b.chain));
}

TEST_CASE("a file cut at every offset is read up to its last complete record") {
    const Built b = build(true);
    const auto all = read_recording(b.file, the_key);
    for (std::size_t n = 0; n <= b.file.size(); ++n) {
        const auto rec = read_recording(cut(b.file, n), the_key);
        INFO("cut at ", n, ": ", rec.report.summary());
        CHECK(rec.report.intact);
        CHECK(rec.report.sealed == (n == b.file.size()));
        std::size_t end = n < recording_file_header_size ? 0 : recording_file_header_size;
        std::size_t complete_events = 0;
        std::size_t header_end = 0;
        for (std::size_t i = 0; i <= b.records.size(); ++i) {
            const std::size_t rec_end = i == 0 ? b.records.front().first : b.records[i - 1].second;
            if (i == 0) {
                header_end = rec_end;
                if (n >= rec_end) end = rec_end;
                continue;
            }
            if (rec_end <= n) {
                end = rec_end;
                if (std::find(b.data_records.begin(), b.data_records.end(), i - 1) != b.data_records.end()) ++complete_events;
            }
        }
        CHECK(rec.report.has_header == (n >= header_end));
        CHECK(rec.report.events == complete_events);
        CHECK(rec.report.trailing_bytes == n - end);
        REQUIRE(rec.events.size() == complete_events);
        CHECK(std::equal(rec.events.begin(), rec.events.end(), all.events.begin()));
    }
}

TEST_CASE("feeding in two chunks split at every offset gives the same result") {
    const Built b = build(true);
    const auto whole = verify_recording(b.file, the_key);
    for (std::size_t k = 0; k <= b.file.size(); ++k) {
        RecordingReader r(the_key);
        std::vector<Event> events;
        r.feed(ByteView(b.file).first(k), &events);
        r.feed(ByteView(b.file).subspan(k), &events);
        const auto rep = r.finish();
        INFO("split at ", k);
        CHECK(rep.intact);
        CHECK(rep.sealed);
        CHECK(rep.events == whole.events);
        CHECK(rep.final_chain_hex == whole.final_chain_hex);
        CHECK(events.size() == whole.events);
    }
    RecordingReader bytewise(the_key);
    for (std::byte c : b.file) bytewise.feed(ByteView(&c, 1));
    CHECK(bytewise.finish().summary() == whole.summary());
}

TEST_CASE("wrong HMAC key is detected") {
    const Built b = build(true);
    const auto rep = verify_recording(b.file, other_key);
    CHECK_FALSE(rep.intact);
    CHECK(has_message(rep, "MAC invalid"));
    CHECK(rep.checkpoints == 0);
    CHECK(rep.authenticated_events == 0);
    CHECK(verify_recording(b.file, {}).problems.size() == 1);
}

TEST_CASE("a checkpoint forged without the key is detected") {
    SUBCASE("whole file rewritten with another key") {
        const Built forged = build(true, other_key);
        CHECK(has_message(verify_recording(forged.file, the_key), "checkpoint 1: MAC invalid"));
    }
    SUBCASE("event edited, CRCs and the checkpoint's chain hash recomputed") {
        // The forger recomputes the chain (it is unkeyed) but cannot recompute the MAC.
        std::vector<Event> events;
        for (int i = 0; i < 11; ++i) events.push_back(ev(1, EventKind::term_output, Direction::server_to_client, "x" + std::to_string(i)));
        Built b = build(true, the_key, events);
        auto edited = events;
        edited[2].payload[0] = std::byte{'y'};
        const Built tampered = build(true, other_key, edited);  // same layout, other key
        Bytes f = b.file;
        // Copy the tampered event and the tampered chain hash into the genuine file, keep the genuine MAC.
        const auto er = b.records[b.data_records[2]];
        std::copy(tampered.file.begin() + static_cast<std::ptrdiff_t>(er.first),
                  tampered.file.begin() + static_cast<std::ptrdiff_t>(er.second), f.begin() + static_cast<std::ptrdiff_t>(er.first));
        const auto cr = b.records[b.checkpoints[0]];
        std::copy(tampered.file.begin() + static_cast<std::ptrdiff_t>(cr.first + 18 + 16),
                  tampered.file.begin() + static_cast<std::ptrdiff_t>(cr.first + 18 + 48), f.begin() + static_cast<std::ptrdiff_t>(cr.first + 18 + 16));
        fix_crcs(f, cr);
        const auto rep = verify_recording(f, the_key);
        CHECK(has_message(rep, "checkpoint 1: MAC invalid"));
        CHECK(rep.authenticated_events == 0);
    }
    SUBCASE("an old genuine checkpoint replayed at the end of an unsealed file") {
        Built b = build(false);
        Bytes f = b.file;
        Bytes cp(b.file.begin() + static_cast<std::ptrdiff_t>(b.records[b.checkpoints[1]].first),
                 b.file.begin() + static_cast<std::ptrdiff_t>(b.records[b.checkpoints[1]].second));
        f.insert(f.end(), cp.begin(), cp.end());
        const auto rep = verify_recording(f, the_key);
        CHECK_FALSE(rep.intact);
        CHECK(rep.authenticated_events == 8);
        // Make its timestamp current (CRCs fixed): the MAC covers the timestamp.
        Bytes g = f;
        const std::pair<std::size_t, std::size_t> r{b.file.size(), g.size()};
        for (std::size_t i = 4; i < 12; ++i) g[r.first + i] = std::byte{0x7F};
        fix_crcs(g, r);
        CHECK(has_message(verify_recording(g, the_key), "MAC invalid"));
    }
}

TEST_CASE("a record from another recording with the same key does not verify") {
    RecordingHeader other = test_header();
    other.session_id = "another-session";
    RecordingEncoder a(the_key, test_header());
    RecordingEncoder b(the_key, other);
    Bytes fa = a.begin();
    (void)b.begin();
    // Same events; b's checkpoint grafted onto a: MAC binds the session id and the chain binds the header.
    auto e = ev(1, EventKind::term_output, Direction::server_to_client, "same");
    auto ea = a.encode(e);
    (void)b.encode(e);
    fa.insert(fa.end(), ea.begin(), ea.end());
    auto cb = b.checkpoint(2);
    fa.insert(fa.end(), cb.begin(), cb.end());
    CHECK(has_message(verify_recording(fa, the_key), "MAC invalid"));
}

TEST_CASE("huge length fields are rejected before any allocation") {
    for (std::uint32_t len : {std::uint32_t{0xFFFFFFFFu}, std::uint32_t(recording_max_payload + 1)}) {
        RecordingEncoder enc(the_key, test_header());
        Bytes f = enc.begin();
        const std::size_t at = f.size();
        ByteWriter w(f);
        w.u32(len);
        w.u64(1);
        w.u8(static_cast<std::uint8_t>(EventKind::term_output));
        w.u8(2);
        w.u32(crc32(f.data() + at, 14));  // a well-formed head: only the limit stops it
        w.str("short");
        const auto rep = verify_recording(f, the_key);
        CHECK(has_message(rep, "exceeds the 16 MiB limit"));
        CHECK(rep.problems.front().offset == at);
    }
}

TEST_CASE("file header problems") {
    CHECK(verify_recording({}, the_key).intact);
    CHECK(verify_recording({}, the_key).summary() == "incomplete: not sealed, empty file");
    const Built b = build(true);
    CHECK(verify_recording(cut(b.file, 5), the_key).intact);
    CHECK(verify_recording(cut(b.file, 5), the_key).trailing_bytes == 5);
    Bytes bad = b.file;
    bad[1] = std::byte{'X'};
    CHECK(has_message(verify_recording(bad, the_key), "bad magic"));
    Bytes v3 = b.file;
    v3[11] = std::byte{3};
    CHECK(has_message(verify_recording(v3, the_key), "unsupported recording format version 3"));
    // A version 1 file relabelled as version 2 (signed) without a signing key in its header.
    Bytes v2 = b.file;
    v2[11] = std::byte{2};
    CHECK(has_message(verify_recording(v2, the_key), "does not name a valid signing_key"));
    CHECK(has_message(verify_recording(to_bytes("hello world, not a recording"), the_key), "bad magic"));
}

TEST_CASE("structural problems: data after the seal, missing header, unknown integrity kind") {
    const Built b = build(true);
    Bytes after = b.file;
    after.push_back(std::byte{0});
    CHECK(has_message(verify_recording(after, the_key), "data after the seal"));

    // Header record removed: the first record is an event.
    Bytes no_header = erase_range(b.file, {recording_file_header_size, b.records.front().first});
    CHECK(has_message(verify_recording(no_header, the_key), "not the header"));

    // An event whose kind byte is changed to a reserved integrity kind (CRCs fixed).
    Bytes f = b.file;
    const auto r = b.records[b.data_records[0]];
    f[r.first + 12] = std::byte{0x05};
    fix_crcs(f, r);
    CHECK(has_message(verify_recording(f, the_key), "integrity range"));

    // Direction out of range.
    Bytes d = b.file;
    d[r.first + 13] = std::byte{0x03};
    fix_crcs(d, r);
    CHECK(has_message(verify_recording(d, the_key), "invalid direction"));

    // A timestamp going backwards (CRCs fixed).
    Bytes t = b.file;
    const auto r5 = b.records[b.data_records[5]];
    for (std::size_t i = 4; i < 12; ++i) t[r5.first + i] = std::byte{0};
    fix_crcs(t, r5);
    CHECK(has_message(verify_recording(t, the_key), "timestamp goes backwards"));
}

TEST_CASE("a zero-filled tail (lost write after a power cut) is an incomplete tail, not corruption") {
    const Built b = build(false);
    Bytes f = b.file;
    f.insert(f.end(), 4096, std::byte{0});
    const auto rep = verify_recording(f, the_key);
    CHECK(rep.intact);
    CHECK(rep.trailing_bytes == 4096);
    CHECK(rep.trailing_zero);
    CHECK(rep.events == b.events);
    CHECK(rep.summary().find("4096 trailing zero bytes") != std::string::npos);

    Bytes g = f;
    g.back() = std::byte{1};
    const auto broken = verify_recording(g, the_key);
    CHECK(has_message(broken, "record header CRC mismatch"));
    CHECK(broken.problems.front().offset == b.file.size());
    // Fed in pieces that cut the run of zeros, the reader examines each byte once.
    for (std::size_t k : {b.file.size() + 1, b.file.size() + 100, g.size() - 1}) {
        RecordingReader r(the_key);
        r.feed(ByteView(g).first(k));
        r.feed(ByteView(g).subspan(k));
        const auto rep2 = r.finish();
        CHECK(rep2.file_bytes == g.size());
        CHECK(has_message(rep2, "record header CRC mismatch"));
    }
}

TEST_CASE("random garbage and random mutations never crash the reader") {
    std::mt19937_64 rng(20240611);
    const Built b = build(true);
    Bytes prefix = cut(b.file, recording_file_header_size);
    for (int iter = 0; iter < 3000; ++iter) {
        Bytes f;
        switch (iter % 3) {
            case 0: {  // pure garbage, sometimes behind a valid file header
                if (iter % 2) f = prefix;
                const std::size_t n = rng() % 600;
                for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<std::byte>(rng()));
                break;
            }
            case 1: {  // a valid file with a few random byte changes
                f = b.file;
                for (int k = 0, m = 1 + static_cast<int>(rng() % 4); k < m; ++k) f[rng() % f.size()] = static_cast<std::byte>(rng());
                break;
            }
            default: {  // a valid file with a random slice removed or duplicated
                f = b.file;
                const std::size_t at = rng() % f.size();
                const std::size_t len = std::min<std::size_t>(rng() % 64, f.size() - at);
                if (rng() % 2) {
                    f.erase(f.begin() + static_cast<std::ptrdiff_t>(at), f.begin() + static_cast<std::ptrdiff_t>(at + len));
                } else {
                    Bytes slice(f.begin() + static_cast<std::ptrdiff_t>(at), f.begin() + static_cast<std::ptrdiff_t>(at + len));
                    f.insert(f.begin() + static_cast<std::ptrdiff_t>(at), slice.begin(), slice.end());
                }
                break;
            }
        }
        const auto rec = read_recording(f, the_key);
        CHECK(rec.report.intact == rec.report.problems.empty());
        CHECK(rec.events.size() == rec.report.events);
        CHECK(rec.report.authenticated_events <= rec.report.events);
        CHECK_FALSE(rec.report.summary().empty());
        if (rec.report.sealed && rec.report.intact) CHECK(f == b.file);
    }
}

TEST_SUITE_END();

// ---- Ed25519 signatures (format version 2) ----------------------------------------------------

TEST_SUITE_BEGIN("recording signatures");

TEST_CASE("known-answer vector of a signed (version 2) recording") {
    // docs/recording-format.md section 5.1: verified against an independent implementation (Python,
    // `cryptography` for Ed25519). Seed: RFC 8032 section 7.1 test 1.
    const auto seed = from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").value();
    RecordingHeader h;
    h.session_id = "s1";
    h.protocol = "ssh";
    h.started_unix_us = 1;
    RecordingEncoder enc(to_bytes("key"), h, seed);
    CHECK(enc.header().extra.at("signing_key").as_string() == "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    Bytes f = enc.begin();
    auto add = [&](Bytes b) { f.insert(f.end(), b.begin(), b.end()); };
    add(enc.encode(ev(5, EventKind::term_output, Direction::server_to_client, "hi")));
    add(enc.checkpoint(6));
    add(enc.seal(7));
    CHECK(f.size() == 551);
    CHECK(to_hex(crypto::sha256(f)) == "2f6246c4c04921113ab7fe1748ed48d40d89f7614ccb84ea18945aa47ee5e68e");
    CHECK(enc.chain_hash_hex() == "857c4d26017d35b7d359bf9e3761887d1916ec00dc9867d732ae8151d43f7229");
    const auto rep = verify_recording(f, {}, crypto::ed25519_public_from_seed(seed));
    CHECK(rep.intact);
    CHECK(rep.sealed);
    CHECK(rep.signatures == 2);
}

TEST_CASE("ed25519 key text: format, parse, fingerprint") {
    const auto text = ed25519_key_text(the_public);
    CHECK(text.rfind("ed25519:", 0) == 0);
    CHECK(text.size() == 8 + 44);
    CHECK(parse_ed25519_key_text(text) == the_public);
    CHECK(parse_ed25519_key_text("  " + text + "\n") == the_public);
    CHECK_FALSE(parse_ed25519_key_text(text.substr(8)).has_value());
    CHECK_FALSE(parse_ed25519_key_text("ed25519:AAAA").has_value());
    CHECK_FALSE(parse_ed25519_key_text("ssh-ed25519 " + text.substr(8)).has_value());
    CHECK_FALSE(parse_ed25519_key_text("").has_value());
    CHECK(ed25519_key_fingerprint(the_public).rfind("SHA256:", 0) == 0);
    CHECK(ed25519_key_fingerprint(the_public) != ed25519_key_fingerprint(other_public));
}

TEST_CASE("a signed recording verifies with the public key and no HMAC key") {
    const Built b = build(true, the_key, {}, the_seed);
    CHECK(b.file[11] == std::byte{2});
    const auto rec = read_recording(b.file, {}, the_public);
    CHECK(rec.report.intact);
    CHECK(rec.report.sealed);
    CHECK(rec.report.format_version == 2);
    CHECK_FALSE(rec.report.mac_checked);
    CHECK(rec.report.signatures == 3);  // two checkpoints and the seal
    CHECK(rec.report.checkpoints == 3);
    CHECK(rec.report.signing_key == ed25519_key_text(the_public));
    CHECK(rec.events.size() == 11);
    CHECK(matches_seal(rec.report, b.events, b.chain));
    CHECK(rec.header.extra.at("signing_key").as_string() == ed25519_key_text(the_public));
    CHECK(rec.header.extra.at("mode").as_string() == "breakglass");

    // The proxy host (HMAC key) checks MACs and, against the key the header names, the signatures.
    const auto host = verify_recording(b.file, the_key);
    CHECK(host.intact);
    CHECK(host.sealed);
    CHECK(host.mac_checked);
    CHECK(host.signatures == 3);
    const auto both = verify_recording(b.file, the_key, the_public);
    CHECK(both.intact);
    CHECK(both.signatures == 3);
    CHECK(has_message(verify_recording(b.file, other_key, the_public), "MAC invalid"));
    CHECK_THROWS_AS(RecordingReader(the_key, as_bytes("short")), std::invalid_argument);
}

TEST_CASE("signed recording: a change at any offset is detected by public-key verification") {
    // Small file: header, two events, a checkpoint, the seal.
    std::vector<Event> events = {ev(1, EventKind::term_output, Direction::server_to_client, "ab"),
                                 ev(2, EventKind::term_input, Direction::client_to_server, "c")};
    RecordingEncoder enc(the_key, test_header(), the_seed);
    Bytes file = enc.begin();
    std::vector<std::pair<std::size_t, std::size_t>> records;
    records.emplace_back(recording_file_header_size, file.size());
    auto add = [&](Bytes b) {
        records.emplace_back(file.size(), file.size() + b.size());
        file.insert(file.end(), b.begin(), b.end());
    };
    add(enc.encode(events[0]));
    add(enc.checkpoint(1));
    add(enc.encode(events[1]));
    add(enc.seal(3));
    REQUIRE(verify_recording(file, {}, the_public).sealed);
    for (std::size_t i = 0; i < file.size(); ++i) {
        // A plain flip (the CRCs catch it) ...
        Bytes f = file;
        f[i] ^= std::byte{0x01};
        const auto rep = verify_recording(f, {}, the_public);
        INFO("offset ", i, ": ", rep.summary());
        CHECK_FALSE(rep.intact);
        // ... and a forger's flip with both CRCs recomputed: only the chain and the signatures can tell.
        const auto r = std::find_if(records.begin(), records.end(), [&](auto x) { return i >= x.first && i < x.second; });
        if (r == records.end()) continue;  // the file header: covered by the plain flip
        const std::size_t at = i - r->first;
        if ((at >= 14 && at < 18) || i >= r->second - 4) continue;  // a CRC field itself
        Bytes g = file;
        g[i] ^= std::byte{0x01};
        fix_crcs(g, *r);
        const auto forged = verify_recording(g, {}, the_public);
        INFO("forged at ", i, ": ", forged.summary());
        CHECK_FALSE((forged.intact && forged.sealed));
    }
}

TEST_CASE("signed recording: a swapped or grafted checkpoint is detected") {
    const Built b = build(true, the_key, {}, the_seed);
    const auto c1 = b.records[b.checkpoints[0]];
    const auto c2 = b.records[b.checkpoints[1]];
    REQUIRE(c1.second - c1.first == c2.second - c2.first);
    auto graft = [&](const Bytes& from, std::pair<std::size_t, std::size_t> src, Bytes into,
                     std::pair<std::size_t, std::size_t> dst) {
        std::copy(from.begin() + static_cast<std::ptrdiff_t>(src.first), from.begin() + static_cast<std::ptrdiff_t>(src.second),
                  into.begin() + static_cast<std::ptrdiff_t>(dst.first));
        return into;
    };
    // Checkpoint 2 copied over checkpoint 1, and the two swapped.
    const Bytes copied = graft(b.file, c2, b.file, c1);
    const auto rc = verify_recording(copied, {}, the_public);
    CHECK_FALSE(rc.intact);
    CHECK(rc.authenticated_events == 0);
    const Bytes swapped = graft(b.file, c1, copied, c2);
    CHECK_FALSE(verify_recording(swapped, {}, the_public).intact);

    // Same timestamps everywhere, so only the counts, the chain and the signature can tell.
    std::vector<Event> same_t;
    for (int i = 0; i < 11; ++i) same_t.push_back(ev(7, EventKind::term_output, Direction::server_to_client, "line " + std::to_string(i)));
    const Built s = build(true, the_key, same_t, the_seed);
    const Bytes s_swapped = graft(s.file, s.records[s.checkpoints[0]],
                                  graft(s.file, s.records[s.checkpoints[1]], s.file, s.records[s.checkpoints[0]]),
                                  s.records[s.checkpoints[1]]);
    const auto rs = verify_recording(s_swapped, {}, the_public);
    CHECK(has_message(rs, "checkpoint 1: authenticates 8 events"));

    // A checkpoint from another recording signed by the same key: another session id ...
    RecordingHeader other_h = test_header();
    other_h.session_id = "01HZY3K6J7V4T1X9Q2M8N5B0ZZ";
    REQUIRE(other_h.session_id.size() == test_header().session_id.size());
    const Built o = build(true, the_key, {}, the_seed, other_h);
    CHECK(has_message(verify_recording(graft(o.file, o.records[o.checkpoints[0]], b.file, c1), {}, the_public),
                      "checkpoint 1: signature invalid"));
    // ... or the same session id with other content: the chain differs.
    const Built d = build(true, the_key, same_t, the_seed);
    REQUIRE(d.records[d.checkpoints[0]].second - d.records[d.checkpoints[0]].first == c1.second - c1.first);
    const auto rd = verify_recording(graft(d.file, d.records[d.checkpoints[0]], b.file, c1), {}, the_public);
    CHECK_FALSE(rd.intact);
    CHECK(rd.authenticated_events == 0);
    // The seal of another recording in place of this one's.
    const auto seal_b = b.records.back();
    const auto seal_o = o.records.back();
    CHECK(has_message(verify_recording(graft(o.file, seal_o, b.file, seal_b), {}, the_public), "seal: signature invalid"));
}

TEST_CASE("signed recording: another key is refused, even when the header is edited to name the expected one") {
    const Built b = build(true, the_key, {}, the_seed);
    const auto rep = verify_recording(b.file, {}, other_public);
    CHECK_FALSE(rep.intact);
    CHECK(has_message(rep, "signed by another key"));
    CHECK(rep.authenticated_events == 0);

    // The forger rewrites the header's signing_key (same length) and fixes the CRCs.
    Bytes f = b.file;
    const std::pair<std::size_t, std::size_t> h{recording_file_header_size, b.records.front().first};
    const std::string named = ed25519_key_text(the_public);
    const std::string wanted = ed25519_key_text(other_public);
    auto it = std::search(f.begin(), f.end(), as_bytes(named).begin(), as_bytes(named).end());
    REQUIRE(it != f.end());
    std::copy(as_bytes(wanted).begin(), as_bytes(wanted).end(), it);
    fix_crcs(f, h);
    const auto forged = verify_recording(f, {}, other_public);
    INFO(forged.summary());
    CHECK(has_message(forged, "checkpoint 1: signature invalid"));
    CHECK(forged.checkpoints == 0);

    // A file signed by the other key.
    const Built o = build(true, the_key, {}, other_seed);
    CHECK(has_message(verify_recording(o.file, {}, the_public), "signed by another key"));
    CHECK(verify_recording(o.file, {}, other_public).sealed);
}

TEST_CASE("signed recording: a truncated file is incomplete, authenticated up to its last checkpoint") {
    const Built b = build(true, the_key, {}, the_seed);
    const auto c2 = b.records[b.checkpoints[1]];
    const auto next = b.records[b.checkpoints[1] + 1];
    const auto rep = verify_recording(cut(b.file, next.second + 5), {}, the_public);
    CHECK(rep.intact);
    CHECK_FALSE(rep.sealed);
    CHECK(rep.authenticated_events == 8);
    CHECK(rep.signatures == 2);
    CHECK(rep.authenticated_bytes == c2.second);
    INFO(rep.summary());
    CHECK(rep.summary().rfind("incomplete: not sealed, 9 events, authenticated through checkpoint 2 (8 events)", 0) == 0);
    // Cut exactly after a checkpoint: the file alone cannot tell (docs section 6.2); matches_seal can.
    const auto at = verify_recording(cut(b.file, c2.second), {}, the_public);
    CHECK(at.intact);
    CHECK_FALSE(at.sealed);
    CHECK_FALSE(matches_seal(at, b.events, b.chain));
}

TEST_CASE("an unsigned version 1 file verifies with the HMAC key and is 'not signed' by public key") {
    const Built b = build(true);
    CHECK(b.file[11] == std::byte{1});
    const auto host = verify_recording(b.file, the_key);
    CHECK(host.intact);
    CHECK(host.sealed);
    CHECK(host.format_version == 1);
    CHECK(host.signatures == 0);
    CHECK(host.signing_key.empty());
    const auto pub = verify_recording(b.file, {}, the_public);
    CHECK_FALSE(pub.intact);
    CHECK(has_message(pub, "not signed"));
    CHECK(pub.signatures == 0);
    // Even with the HMAC key: public-key verification requires signatures.
    CHECK(has_message(verify_recording(b.file, the_key, the_public), "not signed"));
}

TEST_CASE("signed recording: integrity kinds of the other version are rejected") {
    const Built b = build(true, the_key, {}, the_seed);
    // A signed checkpoint relabelled as an unsigned one (kind 0x02, CRCs fixed).
    Bytes f = b.file;
    const auto c1 = b.records[b.checkpoints[0]];
    f[c1.first + 12] = std::byte{0x02};
    fix_crcs(f, c1);
    CHECK(has_message(verify_recording(f, the_key), "not valid in a version 2 file"));
    CHECK(has_message(verify_recording(f, {}, the_public), "not valid in a version 2 file"));
    // The version byte set back to 1: the chain starts differently and 0x04 is not a version 1 kind.
    Bytes v1 = b.file;
    v1[11] = std::byte{1};
    CHECK_FALSE(verify_recording(v1, the_key).intact);
    // An unsigned file's checkpoint relabelled 0x04 in a version 1 file.
    const Built u = build(true);
    Bytes g = u.file;
    const auto u1 = u.records[u.checkpoints[0]];
    g[u1.first + 12] = std::byte{0x04};
    fix_crcs(g, u1);
    CHECK(has_message(verify_recording(g, the_key), "not valid in a version 1 file"));
}

TEST_SUITE_END();
