// Break-glass text input (session/breakglass.hpp): passphrases as a person types them, the stated
// reason, and the records kept in the state store (declarations, accounts) read back.
//   byte 0 % 4 = 0 : a typed passphrase; one that normalizes must give 20 bytes that format back
//                    to the normalized form
//   byte 0 % 4 = 1 : a reason (trimmed, bounded, no control characters)
//   byte 0 % 4 = 2 : a stored emergency declaration (JSON), which must serialize back to itself
//   byte 0 % 4 = 3 : a stored account (JSON), likewise

#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/json/serialize.hpp>

#include "fuzz_util.hpp"
#include "glassgate/session/breakglass.hpp"

using namespace gg;
using namespace gg::session::breakglass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const auto text = fuzz::text(data + 1, size - 1);
    switch (data[0] % 4) {
        case 0: {
            auto norm = normalize_passphrase(text);
            auto bytes = passphrase_to_bytes(text);
            GG_FUZZ_CHECK(norm.has_value() == bytes.has_value());
            if (norm) {
                GG_FUZZ_CHECK(bytes->size() == passphrase_bytes);
                GG_FUZZ_CHECK(format_passphrase(*bytes) == *norm);
                GG_FUZZ_CHECK(normalize_passphrase(*norm) == norm);
            }
            return 0;
        }
        case 1: {
            if (auto r = clean_reason(text)) {
                GG_FUZZ_CHECK(r->size() <= 200);
                for (char c : *r) GG_FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F);
                GG_FUZZ_CHECK(clean_reason(*r) == r);
            }
            return 0;
        }
        case 2: {
            if (auto d = declaration_from_json(text)) {
                auto again = declaration_from_json(boost::json::serialize(to_json(*d)));
                GG_FUZZ_CHECK(again.has_value());
                GG_FUZZ_CHECK(again->reason == d->reason && again->declared_by == d->declared_by);
                GG_FUZZ_CHECK(again->declared_at == d->declared_at && again->until == d->until);
            }
            return 0;
        }
        default: {
            if (auto a = account_from_json(text)) {
                auto again = account_from_json(serialize(*a));
                GG_FUZZ_CHECK(again.has_value());
                GG_FUZZ_CHECK(again->name == a->name && again->state == a->state && again->hash == a->hash);
                GG_FUZZ_CHECK(again->generation == a->generation && again->history == a->history);
                GG_FUZZ_CHECK(again->staged_at == a->staged_at && again->last_used == a->last_used);
            }
            return 0;
        }
    }
}
