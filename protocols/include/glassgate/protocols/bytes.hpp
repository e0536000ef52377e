#pragma once
// Bounds-checked big-endian readers and writers over byte spans. Sans-IO building blocks used by
// every codec (PostgreSQL wire protocol, recording format). A failed read never throws: it returns
// std::nullopt and leaves the reader in a failed state, so a parser checks once at the end or at
// each step, whichever reads better.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gg {

using Bytes = std::vector<std::byte>;
using ByteView = std::span<const std::byte>;

inline ByteView as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) {
    auto v = as_bytes(s);
    return {v.begin(), v.end()};
}

/// Reads big-endian integers and byte ranges from a span; every read is bounds-checked.
class ByteReader {
public:
    explicit ByteReader(ByteView data) noexcept : data_(data) {}

    [[nodiscard]] std::size_t remaining() const noexcept { return data_.size() - pos_; }
    [[nodiscard]] std::size_t position() const noexcept { return pos_; }
    [[nodiscard]] bool ok() const noexcept { return ok_; }

    std::optional<std::uint8_t> u8() noexcept { return read_be<std::uint8_t>(); }
    std::optional<std::uint16_t> u16() noexcept { return read_be<std::uint16_t>(); }
    std::optional<std::uint32_t> u32() noexcept { return read_be<std::uint32_t>(); }
    std::optional<std::uint64_t> u64() noexcept { return read_be<std::uint64_t>(); }
    std::optional<std::int32_t> i32() noexcept {
        auto v = u32();
        if (!v) return std::nullopt;
        return static_cast<std::int32_t>(*v);
    }

    /// Takes the next n bytes as a view into the underlying buffer.
    std::optional<ByteView> take(std::size_t n) noexcept {
        if (!ok_ || remaining() < n) {
            ok_ = false;
            return std::nullopt;
        }
        auto v = data_.subspan(pos_, n);
        pos_ += n;
        return v;
    }

    /// Reads a NUL-terminated string (PostgreSQL "String"); fails if no terminator is present.
    std::optional<std::string_view> cstring() noexcept {
        if (!ok_) return std::nullopt;
        for (std::size_t i = pos_; i < data_.size(); ++i) {
            if (data_[i] == std::byte{0}) {
                std::string_view s(reinterpret_cast<const char*>(data_.data()) + pos_, i - pos_);
                pos_ = i + 1;
                return s;
            }
        }
        ok_ = false;
        return std::nullopt;
    }

private:
    template <typename T>
    std::optional<T> read_be() noexcept {
        if (!ok_ || remaining() < sizeof(T)) {
            ok_ = false;
            return std::nullopt;
        }
        T v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            v = static_cast<T>((static_cast<std::uint64_t>(v) << 8) |
                               std::to_integer<std::uint8_t>(data_[pos_ + i]));
        }
        pos_ += sizeof(T);
        return v;
    }

    ByteView data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

/// Appends big-endian integers and bytes to a growing buffer.
class ByteWriter {
public:
    ByteWriter() = default;
    explicit ByteWriter(Bytes& out) noexcept : out_(&out) {}

    void u8(std::uint8_t v) { put_be(v); }
    void u16(std::uint16_t v) { put_be(v); }
    void u32(std::uint32_t v) { put_be(v); }
    void u64(std::uint64_t v) { put_be(v); }
    void i32(std::int32_t v) { put_be(static_cast<std::uint32_t>(v)); }
    void bytes(ByteView b) { buf().insert(buf().end(), b.begin(), b.end()); }
    void str(std::string_view s) { bytes(as_bytes(s)); }
    void cstring(std::string_view s) {
        str(s);
        u8(0);
    }
    /// Overwrites a big-endian u32 at an earlier offset (for length prefixes).
    void patch_u32(std::size_t at, std::uint32_t v) {
        for (std::size_t i = 0; i < 4; ++i) {
            buf()[at + i] = static_cast<std::byte>((v >> (24 - 8 * i)) & 0xFFu);
        }
    }
    [[nodiscard]] std::size_t size() const noexcept { return out_ ? out_->size() : own_.size(); }
    Bytes take() { return std::move(buf()); }
    [[nodiscard]] const Bytes& data() const noexcept { return out_ ? *out_ : own_; }

private:
    Bytes& buf() noexcept { return out_ ? *out_ : own_; }
    template <typename T>
    void put_be(T v) {
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            buf().push_back(static_cast<std::byte>((static_cast<std::uint64_t>(v) >> (8 * (sizeof(T) - 1 - i))) & 0xFFu));
        }
    }

    Bytes own_;
    Bytes* out_ = nullptr;
};

/// Lower-case hex of a byte range.
std::string to_hex(ByteView b);
/// Parses lower- or upper-case hex; std::nullopt on odd length or a non-hex character.
std::optional<Bytes> from_hex(std::string_view s);

}  // namespace gg
