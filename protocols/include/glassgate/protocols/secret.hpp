#pragma once
// A secret value (backend password, private key, passphrase). Formats as "***", is wiped on
// destruction, and is read only through reveal() — grep for reveal( to audit every use.

#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "glassgate/protocols/crypto.hpp"

namespace gg {

class Secret {
public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}
    Secret(const Secret&) = default;
    Secret& operator=(const Secret&) = default;
    Secret(Secret&& o) noexcept : value_(std::move(o.value_)) { o.wipe(); }
    Secret& operator=(Secret&& o) noexcept {
        if (this != &o) {
            wipe();
            value_ = std::move(o.value_);
            o.wipe();
        }
        return *this;
    }
    ~Secret() { wipe(); }

    /// The plaintext. Every call site is a place where the secret leaves this wrapper.
    [[nodiscard]] std::string_view reveal() const noexcept { return value_; }
    [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return value_.size(); }

    friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "***"; }

private:
    void wipe() noexcept {
        if (!value_.empty()) crypto::cleanse(value_.data(), value_.size());
        value_.clear();
    }
    std::string value_;
};

}  // namespace gg
