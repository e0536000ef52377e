// PostgreSQL startup-phase packets (protocols/postgres/frame.hpp decode_startup) and the `options`
// parameter they carry (protocols/postgres/startup.hpp split_options, take_glassgate_options).
// Bytes as a client sends them before any login: SSLRequest, GSSENCRequest, CancelRequest,
// StartupMessage.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <variant>

#include "fuzz_util.hpp"
#include "glassgate/protocols/postgres/frame.hpp"
#include "glassgate/protocols/postgres/startup.hpp"

using namespace gg;
using namespace gg::pg;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView in = fuzz::view(data, size);
    auto r = decode_startup(in);
    if (!r.has_value()) return 0;
    if (auto* more = std::get_if<NeedMore>(&*r)) {
        GG_FUZZ_CHECK(more->at_least > size);
        GG_FUZZ_CHECK(more->at_least <= Limits{}.max_startup);
        return 0;
    }
    const auto& d = std::get<StartupDecoded>(*r);
    GG_FUZZ_CHECK(d.consumed >= 8 && d.consumed <= size);
    // The packet alone decodes to the same thing: nothing after it was looked at.
    auto again = decode_startup(in.first(d.consumed));
    GG_FUZZ_CHECK(again.has_value() && std::holds_alternative<StartupDecoded>(*again));
    GG_FUZZ_CHECK(std::get<StartupDecoded>(*again).consumed == d.consumed);

    if (const auto* m = std::get_if<StartupMessage>(&d.packet)) {
        std::set<std::string> names;
        for (const auto& [name, value] : m->params) {
            GG_FUZZ_CHECK(names.insert(name).second);  // names are unique
            GG_FUZZ_CHECK(m->get(name) == value);
        }
        auto user = m->get("user");
        GG_FUZZ_CHECK(user && !user->empty());
        if (auto options = m->get("options")) {
            auto args = split_options(*options);
            // Joining and splitting again gives the same arguments back.
            GG_FUZZ_CHECK(split_options(join_options(args)) == args);
            // What is forwarded holds no glassgate.* setting: taking them out again changes nothing.
            auto own = take_glassgate_options(*options);
            if (own.forward) {
                auto retaken = take_glassgate_options(*own.forward);
                GG_FUZZ_CHECK(!retaken.reason.has_value() && retaken.forward == own.forward);
            }
        }
        for (const auto& [name, value] : m->params) (void)consumed_param(name);
    }
    return 0;
}
