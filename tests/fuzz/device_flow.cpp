// The OAuth 2.0 device flow (protocols/oidc/device_flow.hpp): the device authorization response and
// the token-endpoint responses the polling machine is fed. Records are separated by 0x1E:
//   record 1   : the device authorization response body (HTTP 200)
//   record 2.. : one token-endpoint response: byte 0 the HTTP status (index into a table), byte 1
//                seconds elapsed since the previous one, then the body
// The machine honours its limits (interval, lifetime) and ends exactly once.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_util.hpp"
#include "glassgate/protocols/oidc/device_flow.hpp"

using namespace gg;
using namespace gg::oidc;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view rest = fuzz::text(data, size);
    std::vector<std::string_view> records;
    while (!rest.empty()) {
        const auto sep = rest.find('\x1e');
        records.push_back(rest.substr(0, sep));
        rest = sep == std::string_view::npos ? std::string_view{} : rest.substr(sep + 1);
    }
    if (records.empty()) return 0;
    const DeviceLimits limits;
    auto auth = parse_device_authorization(records[0], limits);
    if (!auth.has_value()) {
        GG_FUZZ_CHECK(!auth.error().reason.empty());
        return 0;
    }
    GG_FUZZ_CHECK(!auth->device_code.empty() && !auth->user_code.empty());
    GG_FUZZ_CHECK(auth->expires_in.count() > 0);
    (void)form_urlencode(auth->user_code);
    (void)device_token_request_body(auth->device_code, "glassgate");

    static constexpr int statuses[] = {200, 400, 401, 403, 429, 500, 503, 302};
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
    DevicePoll poll(*auth, limits);
    const auto first = poll.start(now);
    GG_FUZZ_CHECK(first.duration >= limits.min_interval && first.duration <= limits.max_interval);
    GG_FUZZ_CHECK(poll.expires_at() > now && poll.expires_at() <= now + limits.max_expires_in);
    bool ended = false;
    for (std::size_t i = 1; i < records.size(); ++i) {
        const auto rec = records[i];
        const int status = rec.empty() ? 200 : statuses[static_cast<unsigned char>(rec[0]) % 8];
        if (rec.size() > 1) now += std::chrono::seconds(static_cast<unsigned char>(rec[1]) * 8);
        const auto body = rec.size() > 2 ? rec.substr(2) : std::string_view{};
        auto step = poll.on_token_response(status, body, now);
        if (ended) {
            const auto* f = std::get_if<Failed>(&step);
            GG_FUZZ_CHECK(f != nullptr && f->kind == DeviceFailure::finished);
            continue;
        }
        if (const auto* w = std::get_if<Wait>(&step)) {
            GG_FUZZ_CHECK(w->duration >= limits.min_interval && w->duration <= limits.max_interval);
            GG_FUZZ_CHECK(now < poll.expires_at());
            GG_FUZZ_CHECK(!poll.finished());
        } else if (const auto* d = std::get_if<Done>(&step)) {
            GG_FUZZ_CHECK(status == 200 && !d->id_token.empty());
            ended = true;
        } else {
            GG_FUZZ_CHECK(std::get<Failed>(step).kind != DeviceFailure::finished);
            ended = true;
        }
        GG_FUZZ_CHECK(poll.finished() == ended);
        if (!ended) {
            if (auto e = poll.check_expiry(now)) {
                GG_FUZZ_CHECK(e->kind == DeviceFailure::expired);
                ended = true;
            }
        }
    }
    return 0;
}
