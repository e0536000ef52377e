// Rewriting an authorized_keys file for key rotation (protocols/ssh/authorized_keys.hpp): the file
// comes from the backend host, so any bytes. The key is glassgate's own (a key type and base64 as
// ssh-keygen writes them): inputs whose key has other characters are skipped.
//   line 1 : "<type> <base64> [comment]" the key to add or remove
//   rest   : the authorized_keys file

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "glassgate/protocols/ssh/authorized_keys.hpp"

using namespace gg;
using namespace gg::ssh;

namespace {

bool key_chars(std::string_view s) {
    for (char c : s) {
        const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
                        c == '/' || c == '=' || c == '-' || c == '@' || c == '.';
        if (!ok) return false;
    }
    return !s.empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = fuzz::text(data, size);
    const auto nl = in.find('\n');
    if (nl == std::string_view::npos) return 0;
    const std::string_view first = in.substr(0, nl);
    const std::string_view file = in.substr(nl + 1);
    auto key = parse_public_key_line(first);
    if (!key || !key_chars(key->type) || !key_chars(key->base64)) return 0;
    const auto sp = first.find(' ', first.find(key->base64));
    const std::string_view comment = sp == std::string_view::npos ? std::string_view{} : first.substr(sp + 1);

    const bool had = authorized_keys_has(file, *key);
    const std::string with = authorized_keys_with(file, *key, comment);
    const std::string without = authorized_keys_without(file, *key);
    GG_FUZZ_CHECK(authorized_keys_has(with, *key));
    GG_FUZZ_CHECK(!authorized_keys_has(without, *key));
    GG_FUZZ_CHECK(without.size() <= file.size());
    if (had) {
        GG_FUZZ_CHECK(with == file);
        GG_FUZZ_CHECK(without.size() < file.size());
    } else {
        GG_FUZZ_CHECK(without == file);
        GG_FUZZ_CHECK(with.compare(0, file.size(), file) == 0);
        GG_FUZZ_CHECK(!with.empty() && with.back() == '\n');
        // Adding then removing gives the file back, with a final newline added if it had none.
        const std::string back = authorized_keys_without(with, *key);
        std::string expected(file);
        if (!expected.empty() && expected.back() != '\n') expected += '\n';
        GG_FUZZ_CHECK(back == expected);
    }
    // Removing twice changes nothing more.
    GG_FUZZ_CHECK(authorized_keys_without(without, *key) == without);
    return 0;
}
