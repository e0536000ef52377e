// The psql-like transcript of a recorded PostgreSQL session (session/pg_transcript.hpp), which
// decodes the recorded frontend/backend messages again: .ggrec input with its CRCs recomputed
// (fuzz_util.hpp), decoded with the seeds' key, rendered with and without rows.

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "glassgate/session/pg_transcript.hpp"
#include "recording_key.hpp"

using namespace gg;
using namespace gg::session;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Bytes file(fuzz::view(data, size).begin(), fuzz::view(data, size).end());
    (void)fuzz::fix_recording_crcs(file);
    const auto rec = read_recording(file, fuzz::recording_key());
    TranscriptOptions opts;
    const std::string full = render_pg_transcript(rec, opts);
    opts.rows = false;
    opts.max_value = size % 7;
    const std::string short_form = render_pg_transcript(rec, opts);
    (void)full;
    (void)short_form;
    return 0;
}
