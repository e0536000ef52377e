// The PostgreSQL regular-phase frame splitter (protocols/postgres/frame.hpp): decode_message,
// split_messages and scan_message must agree on every input, hand out views inside the input, and
// never ask for more than the limit allows. The stream is also fed in pieces (as a relay reads it)
// and must split into the same messages.
//   byte 0 : selects max_message (small limits reach the too_large paths)
//   rest   : the byte stream

#include <cstddef>
#include <cstdint>
#include <variant>

#include "fuzz_util.hpp"
#include "glassgate/protocols/postgres/frame.hpp"

using namespace gg;
using namespace gg::pg;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    Limits limits;
    switch (data[0] & 3u) {
        case 0: break;
        case 1: limits.max_message = 4; break;
        case 2: limits.max_message = 64; break;
        case 3: limits.max_message = data[0]; break;
    }
    const ByteView in = fuzz::view(data + 1, size - 1);

    // scan_message agrees with decode_message.
    auto d = decode_message(in, limits);
    auto s = scan_message(in, limits);
    if (!d.has_value()) {
        GG_FUZZ_CHECK(s.error && s.size == 0);
    } else if (const auto* more = std::get_if<NeedMore>(&*d)) {
        GG_FUZZ_CHECK(!s.error && s.size == 0 && s.need == more->at_least);
        GG_FUZZ_CHECK(more->at_least > in.size());
    } else {
        const auto& m = std::get<MessageDecoded>(*d);
        GG_FUZZ_CHECK(!s.error && s.size == m.consumed && s.type == m.message.type);
        GG_FUZZ_CHECK(m.consumed == m.message.size() && m.consumed <= in.size());
        GG_FUZZ_CHECK(fuzz::within(m.message.body, in));
        GG_FUZZ_CHECK(m.message.body.size() + 4 <= limits.max_message);
    }
    (void)describe_type(in.empty() ? '\0' : static_cast<char>(in[0]));

    // split_messages is decode_message applied until the input runs out.
    auto split = split_messages(in, limits);
    std::size_t at = 0;
    std::size_t count = 0;
    bool error = false;
    for (;;) {
        auto one = decode_message(in.subspan(at), limits);
        if (!one.has_value()) {
            error = true;
            break;
        }
        const auto* m = std::get_if<MessageDecoded>(&*one);
        if (m == nullptr) break;
        if (split.has_value()) {
            GG_FUZZ_CHECK(count < split->messages.size());
            GG_FUZZ_CHECK(split->messages[count].type == m->message.type);
            GG_FUZZ_CHECK(split->messages[count].body.data() == m->message.body.data());
            GG_FUZZ_CHECK(split->messages[count].body.size() == m->message.body.size());
        }
        at += m->consumed;
        ++count;
    }
    GG_FUZZ_CHECK(split.has_value() == !error);
    if (!split.has_value()) return 0;
    GG_FUZZ_CHECK(split->messages.size() == count && split->consumed == at);

    // A relay reading the same stream in pieces sees the same messages.
    fuzz::Splits splits(in);
    Bytes buffer;
    std::size_t seen = 0;
    for (auto piece : splits.chunks(in, 64)) {
        buffer.insert(buffer.end(), piece.begin(), piece.end());
        auto part = split_messages(buffer, limits);
        GG_FUZZ_CHECK(part.has_value());
        for (const auto& m : part->messages) {
            GG_FUZZ_CHECK(seen < split->messages.size());
            GG_FUZZ_CHECK(m.type == split->messages[seen].type && m.body.size() == split->messages[seen].body.size());
            ++seen;
        }
        buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(part->consumed));
    }
    GG_FUZZ_CHECK(seen == split->messages.size());
    return 0;
}
