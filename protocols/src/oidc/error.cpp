#include "glassgate/protocols/oidc/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace gg::oidc {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (categories are
// never deleted through a base pointer); -Wnon-virtual-dtor cannot know that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class Category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "oidc"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::too_large: return "document too large";
            case errc::not_json: return "not a JSON document";
            case errc::bad_shape: return "missing or mistyped member";
            case errc::bad_value: return "refused member value";
            case errc::wrong_issuer: return "document of another issuer";
        }
        return "unknown oidc error";
    }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& oidc_category() noexcept {
    static const Category category;
    return category;
}

boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), oidc_category()};
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
    boost::throw_exception(boost::system::system_error(make_error_code(e.code), e.reason), loc);
}

}  // namespace gg::oidc
