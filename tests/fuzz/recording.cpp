// The recording reader/verifier (session/recording.hpp), fed .ggrec files with a fixed key:
// read_recording() over the whole file and RecordingReader over the same bytes cut into chunks
// (boundaries derived from the input) must agree on every event and the whole report. The file is
// also read again with its record CRCs recomputed, so that mutated lengths, kinds and payloads reach
// the checks behind the CRCs (chain, checkpoints, header, seal).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_util.hpp"
#include "glassgate/session/recording.hpp"
#include "recording_key.hpp"

using namespace gg;
using namespace gg::session;

namespace {

void read_both_ways(ByteView file) {
    const auto key = fuzz::recording_key();
    const auto whole = read_recording(file, key);
    const auto& rep = whole.report;
    GG_FUZZ_CHECK(rep.file_bytes == file.size());
    GG_FUZZ_CHECK(rep.intact == rep.problems.empty());
    GG_FUZZ_CHECK(rep.problems.size() <= 1);
    GG_FUZZ_CHECK(rep.authenticated_events <= rep.events);
    GG_FUZZ_CHECK(rep.authenticated_bytes <= rep.file_bytes);
    GG_FUZZ_CHECK(rep.trailing_bytes <= rep.file_bytes);
    GG_FUZZ_CHECK(whole.events.size() == rep.events);
    for (const auto& e : whole.events) {
        GG_FUZZ_CHECK(!is_integrity_kind(e.kind));
        GG_FUZZ_CHECK(e.payload.size() <= recording_max_payload);
        (void)event_kind_name(e.kind);
    }
    (void)rep.summary();
    (void)matches_seal(rep, rep.events, rep.final_chain_hex);

    fuzz::Splits splits(file);
    RecordingReader reader(key);
    std::vector<Event> events;
    for (auto chunk : splits.chunks(file, 97)) reader.feed(chunk, &events);
    const auto chunked = reader.finish();
    if (rep.problems.empty()) GG_FUZZ_CHECK(chunked.summary() == rep.summary());
    GG_FUZZ_CHECK(chunked.events == rep.events && chunked.authenticated_events == rep.authenticated_events);
    GG_FUZZ_CHECK(chunked.records == rep.records && chunked.checkpoints == rep.checkpoints);
    GG_FUZZ_CHECK(chunked.authenticated_bytes == rep.authenticated_bytes);
    GG_FUZZ_CHECK(chunked.trailing_bytes == rep.trailing_bytes && chunked.trailing_zero == rep.trailing_zero);
    GG_FUZZ_CHECK(chunked.final_chain_hex == rep.final_chain_hex);
    GG_FUZZ_CHECK(chunked.problems.size() == rep.problems.size());
    if (!rep.problems.empty()) {
        GG_FUZZ_CHECK(chunked.problems[0].offset == rep.problems[0].offset);
        GG_FUZZ_CHECK(chunked.problems[0].message == rep.problems[0].message);
    }
    GG_FUZZ_CHECK(events == whole.events);
    GG_FUZZ_CHECK(reader.header() == whole.header);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    read_both_ways(fuzz::view(data, size));
    Bytes fixed(fuzz::view(data, size).begin(), fuzz::view(data, size).end());
    if (fuzz::fix_recording_crcs(fixed)) read_both_ways(fixed);
    return 0;
}
