#pragma once
// The error category of a codec's `errc` enumeration, shared by every codec (postgres, oidc, ...):
// each supplies its name and a describe(errc) function; everything else is here once.

#include <string>

#include <boost/assert/source_location.hpp>
#include <boost/system/error_category.hpp>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace gg {

// boost::system::error_category has a protected non-virtual destructor by design (categories are
// never deleted through a base pointer); -Wnon-virtual-dtor cannot know that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
template <class Errc>
class EnumCategory final : public boost::system::error_category {
public:
    /// The text of one code; nullptr for a value the enumeration does not have.
    using Describe = const char* (*)(Errc) noexcept;
    EnumCategory(const char* name, Describe describe) noexcept : name_(name), describe_(describe) {}
    const char* name() const noexcept override { return name_; }
    std::string message(int ev) const override {
        const char* text = describe_(static_cast<Errc>(ev));
        return text ? std::string(text) : "unknown " + std::string(name_) + " error";
    }

private:
    const char* name_;
    Describe describe_;
};
#pragma GCC diagnostic pop

/// For a codec's throw_exception_from_error: its Error {code, reason} as boost::system::system_error,
/// so that Result<T>::value() throws with both.
template <class Error>
[[noreturn]] void throw_codec_error(const Error& e, const boost::source_location& loc) {
    boost::throw_exception(boost::system::system_error(make_error_code(e.code), e.reason), loc);
}

}  // namespace gg
