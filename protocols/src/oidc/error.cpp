#include "glassgate/protocols/oidc/error.hpp"

#include "glassgate/protocols/error_category.hpp"

namespace gg::oidc {
namespace {

const char* describe(errc e) noexcept {
    switch (e) {
        case errc::too_large: return "document too large";
        case errc::not_json: return "not a JSON document";
        case errc::bad_shape: return "missing or mistyped member";
        case errc::bad_value: return "refused member value";
        case errc::wrong_issuer: return "document of another issuer";
    }
    return nullptr;
}

}  // namespace

const boost::system::error_category& oidc_category() noexcept {
    static const EnumCategory<errc> category("oidc", describe);
    return category;
}

boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), oidc_category()};
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) { throw_codec_error(e, loc); }

}  // namespace gg::oidc
