// The configuration loader (config/loader.hpp load_config_string: the same code path as
// load_config_file without the file read) and the value parsers behind it.
//   byte 0 % 4 = 0, 1 : the rest is a TOML file (relative paths resolve against /etc/glassgate)
//   byte 0 % 4 = 2    : a duration ("1h30m"), which must print back to a value that parses the same
//   byte 0 % 4 = 3    : a socket address ("db.internal:5432", "[::1]:6432")
// Every problem must come back as an issue with a location, never as an exception (the loader's
// catch-all "internal error" counts as a failure here).

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "glassgate/config/loader.hpp"

using namespace gg;
using namespace gg::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const auto text = fuzz::text(data + 1, size - 1);
    switch (data[0] % 4) {
        case 2: {
            auto d = parse_duration(text);
            GG_FUZZ_CHECK(d.value.has_value() == d.error.empty());
            if (d.value) {
                GG_FUZZ_CHECK(d.value->count() >= 0);
                auto again = parse_duration(format_duration(*d.value));
                GG_FUZZ_CHECK(again.value == d.value);
            }
            return 0;
        }
        case 3: {
            auto a = parse_socket_address(text);
            GG_FUZZ_CHECK(a.value.has_value() == a.error.empty());
            return 0;
        }
        default: break;
    }
    auto r = load_config_string(text, "fuzz.toml", "/etc/glassgate");
    GG_FUZZ_CHECK(r.ok() == r.issues.empty());
    for (const auto& issue : r.issues) {
        GG_FUZZ_CHECK(!issue.message.empty());
        GG_FUZZ_CHECK(issue.message.rfind("internal error", 0) != 0);
        (void)issue.to_string();
    }
    return 0;
}
