#include "glassgate/protocols/postgres/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace gg::pg {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (categories are
// never deleted through a base pointer); -Wnon-virtual-dtor cannot know that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class Category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "postgres"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::too_large: return "length above the limit";
            case errc::bad_length: return "invalid length";
            case errc::unsupported_protocol: return "unsupported frontend protocol";
            case errc::bad_startup: return "invalid startup packet layout";
            case errc::truncated: return "truncated message";
            case errc::trailing_bytes: return "unexpected bytes after the message";
            case errc::bad_value: return "invalid field value";
            case errc::scram_malformed: return "malformed SCRAM message";
            case errc::scram_refused: return "refused SCRAM parameter";
            case errc::scram_server_error: return "SCRAM error reported by the server";
            case errc::scram_bad_signature: return "wrong SCRAM server signature";
            case errc::scram_out_of_order: return "SCRAM step out of order";
            case errc::crypto_failure: return "cryptographic library failure";
        }
        return "unknown postgres error";
    }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& pg_category() noexcept {
    static const Category category;
    return category;
}

boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), pg_category()};
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
    boost::throw_exception(boost::system::system_error(make_error_code(e.code), e.reason), loc);
}

}  // namespace gg::pg
