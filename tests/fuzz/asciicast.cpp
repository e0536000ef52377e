// asciicast v2 export (session/asciicast.hpp) of a decoded recording: .ggrec input with its CRCs
// recomputed (fuzz_util.hpp), decoded with the seeds' key, exported. Every line of the export must
// be one JSON value in valid UTF-8; sanitize_utf8 of the raw input must be valid UTF-8 and leave
// valid UTF-8 unchanged.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>

#include "fuzz_util.hpp"
#include "glassgate/session/asciicast.hpp"
#include "recording_key.hpp"

using namespace gg;
using namespace gg::session;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto raw = fuzz::text(data, size);
    const std::string clean = sanitize_utf8(raw);
    boost::system::error_code ec;
    auto quoted = boost::json::parse(json_quote(clean), ec);
    GG_FUZZ_CHECK(!ec && quoted.is_string() && std::string_view(quoted.as_string()) == clean);
    GG_FUZZ_CHECK(sanitize_utf8(clean) == clean);

    Bytes file(fuzz::view(data, size).begin(), fuzz::view(data, size).end());
    (void)fuzz::fix_recording_crcs(file);
    const auto rec = read_recording(file, fuzz::recording_key());
    const std::string cast = to_asciicast_v2(rec);
    GG_FUZZ_CHECK(!cast.empty() && cast.back() == '\n');
    std::size_t at = 0;
    bool first = true;
    while (at < cast.size()) {
        const auto nl = cast.find('\n', at);
        GG_FUZZ_CHECK(nl != std::string::npos);
        auto v = boost::json::parse(std::string_view(cast).substr(at, nl - at), ec);
        GG_FUZZ_CHECK(!ec);
        GG_FUZZ_CHECK(first ? v.is_object() : (v.is_array() && v.as_array().size() == 3));
        first = false;
        at = nl + 1;
    }
    return 0;
}
