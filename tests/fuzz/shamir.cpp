// Break-glass Shamir shares (session/breakglass.hpp): share lines as an operator types or pastes
// them ("gg1-K-X-<hex y>-<check>"), combined back into a secret.
//   byte 0 bit 0 = 0 : the rest is share lines ('\n'); bit 1 recomputes each line's check first (so
//                      the fields behind it are reached); parsed shares are combined
//   byte 0 bit 0 = 1 : a secret and its parameters from the input are split; every K of the shares,
//                      printed and parsed again, give the secret back

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_util.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/session/breakglass.hpp"

using namespace gg;
using namespace gg::session::breakglass;

namespace {

std::string with_check(std::string_view line) {
    auto last = line.rfind('-');
    if (last == std::string_view::npos) return std::string(line);
    const auto body = line.substr(0, last);
    const auto d = crypto::sha256(as_bytes(body));
    return std::string(body) + "-" + to_hex(ByteView(d).first(2));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const unsigned flags = data[0];
    if ((flags & 1u) == 0) {
        std::string_view rest = fuzz::text(data + 1, size - 1);
        std::vector<Share> shares;
        while (!rest.empty()) {
            const auto nl = rest.find('\n');
            const auto line = rest.substr(0, nl);
            rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
            auto s = (flags & 2u) != 0 ? parse_share(with_check(line)) : parse_share(line);
            if (!s) continue;
            GG_FUZZ_CHECK(s->threshold >= 2 && s->x >= 1 && !s->y.empty());
            // A parsed share prints to a line that parses to the same share.
            auto back = parse_share(format_share(*s));
            GG_FUZZ_CHECK(back && back->threshold == s->threshold && back->x == s->x && back->y == s->y);
            shares.push_back(std::move(*s));
        }
        if (auto secret = combine(shares)) {
            GG_FUZZ_CHECK(!shares.empty() && secret->size() == shares[0].y.size());
            GG_FUZZ_CHECK(shares.size() >= shares[0].threshold);
        }
        return 0;
    }

    FuzzedDataProvider in(data + 1, size - 1);
    const int n = in.ConsumeIntegralInRange<int>(0, 12);
    const int k = in.ConsumeIntegralInRange<int>(0, 12);
    const auto secret = in.ConsumeBytes<std::uint8_t>(in.ConsumeIntegralInRange<std::size_t>(0, 40));
    const Bytes secret_b(reinterpret_cast<const std::byte*>(secret.data()),
                         reinterpret_cast<const std::byte*>(secret.data()) + secret.size());
    Bytes random(static_cast<std::size_t>(k > 1 ? k - 1 : 0) * secret_b.size());
    for (auto& b : random) b = static_cast<std::byte>(in.ConsumeIntegral<std::uint8_t>());
    auto shares = split(secret_b, n, k, random);
    const bool valid_args = k >= 2 && k <= n && n <= 255 && !secret_b.empty();
    if (!shares) {
        GG_FUZZ_CHECK(!valid_args || secret_b.empty());
        return 0;
    }
    GG_FUZZ_CHECK(shares->size() == static_cast<std::size_t>(n));
    // Any k consecutive shares (from an offset the input picks), through their text form.
    const auto from = in.ConsumeIntegralInRange<std::size_t>(0, shares->size() - static_cast<std::size_t>(k));
    std::vector<Share> picked;
    for (std::size_t i = from; i < from + static_cast<std::size_t>(k); ++i) {
        auto s = parse_share(format_share((*shares)[i]));
        GG_FUZZ_CHECK(s.has_value());
        picked.push_back(*s);
    }
    auto back = combine(picked);
    GG_FUZZ_CHECK(back.has_value() && *back == secret_b);
    // One share fewer than the threshold recovers nothing.
    picked.pop_back();
    GG_FUZZ_CHECK(!combine(picked).has_value());
    return 0;
}
