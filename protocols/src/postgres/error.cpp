#include "glassgate/protocols/postgres/error.hpp"

#include "glassgate/protocols/error_category.hpp"

namespace gg::pg {
namespace {

const char* describe(errc e) noexcept {
    switch (e) {
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
    return nullptr;
}

}  // namespace

const boost::system::error_category& pg_category() noexcept {
    static const EnumCategory<errc> category("postgres", describe);
    return category;
}

boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), pg_category()};
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) { throw_codec_error(e, loc); }

}  // namespace gg::pg
