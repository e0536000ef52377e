// The audit chain reader (session/audit_chain.hpp AuditVerifier), as `glassgate audit verify` feeds
// it the stored lines.
//   byte 0 bit 0 = 0 : the rest is the log, one line per '\n', fed as is
//   byte 0 bit 0 = 1 : events built from the input (any bytes, also ill-formed UTF-8) are written with
//                      make_audit_line; the chain must verify, and must stop verifying once one byte of
//                      one line is changed.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_util.hpp"
#include "glassgate/session/audit_chain.hpp"

using namespace gg;
using namespace gg::session;

namespace {

const Bytes& key() {
    static const Bytes k = to_bytes("glassgate fuzz audit key");
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    if ((data[0] & 1u) == 0) {
        AuditVerifier v(key());
        std::string_view rest = fuzz::text(data + 1, size - 1);
        std::uint64_t fed = 0;
        while (!rest.empty()) {
            const auto nl = rest.find('\n');
            const bool ok = v.feed(rest.substr(0, nl));
            ++fed;
            GG_FUZZ_CHECK(ok == v.ok());
            rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        }
        GG_FUZZ_CHECK(v.entries() <= fed);
        GG_FUZZ_CHECK(v.ok() == v.problem().empty());
        return 0;
    }

    FuzzedDataProvider in(data + 1, size - 1);
    const int n = in.ConsumeIntegralInRange<int>(1, 8);
    std::vector<std::string> lines;
    crypto::Digest prev{};
    for (int i = 1; i <= n; ++i) {
        AuditEvent ev;
        // Times a clock gives: 1970 to about 2100 (the formatter works in nanoseconds).
        ev.time = TimePoint(std::chrono::microseconds(in.ConsumeIntegralInRange<std::int64_t>(0, 4'102'444'800'000'000)));
        ev.type = in.ConsumeRandomLengthString(32);
        ev.session_id = in.ConsumeRandomLengthString(32);
        ev.identity = in.ConsumeRandomLengthString(32);
        ev.target = in.ConsumeRandomLengthString(32);
        ev.reason = in.ConsumeRandomLengthString(64);
        const int details = in.ConsumeIntegralInRange<int>(0, 3);
        for (int d = 0; d < details; ++d) {
            const std::string k = in.ConsumeRandomLengthString(16);
            if (in.ConsumeBool()) {
                ev.details[k] = in.ConsumeRandomLengthString(32);
            } else {
                ev.details[k] = in.ConsumeIntegral<std::int64_t>();
            }
        }
        auto line = make_audit_line(ev, static_cast<std::uint64_t>(i), prev, key());
        GG_FUZZ_CHECK(line.text.find('\n') == std::string::npos);
        prev = line.hash;
        lines.push_back(std::move(line.text));
    }
    AuditVerifier good(key());
    for (const auto& l : lines) GG_FUZZ_CHECK(good.feed(l));
    GG_FUZZ_CHECK(good.ok() && good.entries() == static_cast<std::uint64_t>(n) && good.head() == prev);

    const auto which = in.ConsumeIntegralInRange<std::size_t>(0, lines.size() - 1);
    auto& victim = lines[which];
    const auto at = in.ConsumeIntegralInRange<std::size_t>(0, victim.size() - 1);
    victim[at] = static_cast<char>(victim[at] ^ 1);
    AuditVerifier bad(key());
    for (const auto& l : lines) bad.feed(l);
    GG_FUZZ_CHECK(!bad.ok());
    GG_FUZZ_CHECK(bad.entries() == which);
    return 0;
}
