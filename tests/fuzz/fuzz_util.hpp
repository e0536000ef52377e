#pragma once
// Helpers shared by the libFuzzer targets (tests/fuzz). Each target is one LLVMFuzzerTestOneInput
// that must return normally for every input; a property that does not hold calls GG_FUZZ_CHECK,
// which aborts, so libFuzzer keeps the input as a crash artifact.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <libdeflate.h>

#include "glassgate/protocols/bytes.hpp"

#define GG_FUZZ_CHECK(cond)                                                                      \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "fuzz property failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
            std::abort();                                                                        \
        }                                                                                        \
    } while (0)

namespace gg::fuzz {

inline ByteView view(const std::uint8_t* data, std::size_t size) noexcept {
    return {reinterpret_cast<const std::byte*>(data), size};
}
inline std::string_view text(const std::uint8_t* data, std::size_t size) noexcept {
    return {reinterpret_cast<const char*>(data), size};
}

/// True if `inner` lies within `outer` (views a parser hands out must point into its input).
inline bool within(ByteView inner, ByteView outer) noexcept {
    return inner.empty() ||
           (inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size());
}
inline bool within(std::string_view inner, ByteView outer) noexcept { return within(as_bytes(inner), outer); }

/// A small deterministic generator (splitmix64) seeded from the input, for choices that must not
/// consume input bytes (chunk boundaries): the same input always takes the same path.
class Splits {
public:
    explicit Splits(ByteView data) noexcept {
        std::uint64_t h = 1469598103934665603ull;  // FNV-1a
        for (auto b : data) h = (h ^ std::to_integer<std::uint8_t>(b)) * 1099511628211ull;
        state_ = h;
    }
    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    /// `data` cut into consecutive chunks of 1..max_chunk bytes (some empty chunks too).
    std::vector<ByteView> chunks(ByteView data, std::size_t max_chunk) {
        std::vector<ByteView> out;
        std::size_t at = 0;
        while (at < data.size()) {
            std::size_t n = static_cast<std::size_t>(next() % (max_chunk + 1));
            if (n > data.size() - at) n = data.size() - at;
            out.push_back(data.subspan(at, n));
            at += n;
        }
        return out;
    }

private:
    std::uint64_t state_ = 0;
};

/// Rewrites the two CRC-32 fields of every complete record of a .ggrec file (session/recording.hpp)
/// so that mutations of lengths, kinds and payloads get past the CRC checks and reach the decoding
/// behind them. Returns false if nothing was changed.
inline bool fix_recording_crcs(Bytes& file) {
    constexpr std::size_t file_header = 12;
    constexpr std::size_t head = 18;
    auto crc = [&](std::size_t at, std::size_t n) {
        return static_cast<std::uint32_t>(libdeflate_crc32(0, file.data() + at, n));
    };
    auto put = [&](std::size_t at, std::uint32_t v) {
        bool changed = false;
        for (std::size_t i = 0; i < 4; ++i) {
            auto b = static_cast<std::byte>((v >> (24 - 8 * i)) & 0xFFu);
            changed |= file[at + i] != b;
            file[at + i] = b;
        }
        return changed;
    };
    bool changed = false;
    std::size_t pos = file_header;
    while (file.size() >= pos + head) {
        std::uint32_t len = 0;
        for (std::size_t i = 0; i < 4; ++i) len = (len << 8) | std::to_integer<std::uint8_t>(file[pos + i]);
        changed |= put(pos + 14, crc(pos, 14));
        if (file.size() - pos - head < std::size_t{len} + 4) break;
        changed |= put(pos + head + len, crc(pos, head + len));
        pos += head + len + 4;
    }
    return changed;
}

}  // namespace gg::fuzz
