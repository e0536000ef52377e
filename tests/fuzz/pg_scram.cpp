// The client side of SCRAM-SHA-256 (protocols/postgres/scram.hpp), fed what a PostgreSQL server
// sends: server-first (AuthenticationSASLContinue) and server-final (AuthenticationSASLFinal).
//   byte 0 : bit 0 hand the client cached keys for the seeds' salt and count (skips PBKDF2)
//   rest   : server-first '\n' server-final (server-final absent: stop after server-first)
// Inputs with an iteration count above 4096 are skipped: the count is capped at 10 000 000 by
// design (seconds of PBKDF2), which would only slow the fuzzer down.
// glassgate's server side of SCRAM is PostgreSQL's: it only runs the client side.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "glassgate/protocols/postgres/scram.hpp"

using namespace gg;
using namespace gg::pg;

namespace {

constexpr std::string_view password = "pencil";
constexpr std::string_view client_nonce = "rOprNGfwEbeRWgbNEkqO";

const ScramKeys& cached_keys() {
    static const ScramKeys keys = [] {
        ScramClient c(password, std::string(client_nonce));
        (void)c.client_first();
        auto r = c.on_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        GG_FUZZ_CHECK(r.has_value());
        return c.keys();
    }();
    return keys;
}

/// True if some "i=" attribute asks for more than 4096 iterations.
bool expensive(std::string_view s) {
    for (std::size_t at = s.find("i="); at != std::string_view::npos; at = s.find("i=", at + 1)) {
        const char* p = s.data() + at + 2;
        const char* end = s.data() + s.size();
        long long v = 0;
        auto [ptr, ec] = std::from_chars(p, end, v);
        if (ec == std::errc::result_out_of_range || (ec == std::errc() && v > 4096)) return true;
        (void)ptr;
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view rest = fuzz::text(data + 1, size - 1);
    const auto nl = rest.find('\n');
    const std::string_view first = rest.substr(0, nl);
    if (expensive(first)) return 0;

    ScramClient client(password, std::string(client_nonce), (data[0] & 1u) != 0 ? &cached_keys() : nullptr);
    // Out of order: server-first before client-first is refused.
    if ((data[0] & 2u) != 0) {
        GG_FUZZ_CHECK(!client.on_server_first(first).has_value());
        return 0;
    }
    const std::string cf = client.client_first();
    GG_FUZZ_CHECK(cf == "n,,n=,r=" + std::string(client_nonce));
    auto final_msg = client.on_server_first(first);
    if (!final_msg.has_value()) {
        // A failed exchange stays failed.
        GG_FUZZ_CHECK(!client.on_server_final("v=").has_value());
        return 0;
    }
    GG_FUZZ_CHECK(final_msg->rfind("c=biws,r=" + std::string(client_nonce), 0) == 0);
    GG_FUZZ_CHECK(client.keys().iterations >= ScramClient::min_iterations);
    if (nl == std::string_view::npos) return 0;
    auto done = client.on_server_final(rest.substr(nl + 1));
    // A second server-final is out of order whatever the first one was.
    GG_FUZZ_CHECK(!client.on_server_final(rest.substr(nl + 1)).has_value());
    (void)done;
    return 0;
}
