// JSON Web Key Sets (protocols/oidc/jwk.hpp KeySet::parse) as an IdP publishes them at jwks_uri.
// Every key that loads is usable: its kid is unique, find() returns it, unfit_for() answers for
// every algorithm, and verifying a junk signature with it fails cleanly.
//   byte 0 : bit 0 small policy (max_keys 2, min_rsa_bits 512, shallow JSON), rest: the document

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_util.hpp"
#include "glassgate/protocols/oidc/jwk.hpp"

using namespace gg;
using namespace gg::oidc;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    KeyPolicy policy;
    if ((data[0] & 1u) != 0) {
        policy.max_keys = 2;
        policy.min_rsa_bits = 512;
        policy.max_json_depth = 3;
    }
    auto set = KeySet::parse(fuzz::text(data + 1, size - 1), policy);
    if (!set.has_value()) {
        GG_FUZZ_CHECK(!set.error().reason.empty());
        return 0;
    }
    GG_FUZZ_CHECK(set->size() <= policy.max_keys);
    std::set<std::string> kids;
    const auto junk = as_bytes("junk signature, not a real one at all, sixty-four bytes long......");
    for (const auto& key : set->keys()) {
        if (!key.kid().empty()) {
            GG_FUZZ_CHECK(kids.insert(key.kid()).second);
            GG_FUZZ_CHECK(set->find(key.kid()) == &key);
        }
        if (key.kty() == KeyType::rsa) {
            GG_FUZZ_CHECK(key.bits() >= policy.min_rsa_bits && key.bits() <= policy.max_rsa_bits);
        }
        for (auto alg : {JwsAlg::rs256, JwsAlg::rs384, JwsAlg::rs512, JwsAlg::ps256, JwsAlg::es256, JwsAlg::es384,
                         JwsAlg::eddsa}) {
            (void)key.unfit_for(alg);
            GG_FUZZ_CHECK(!key.verify(alg, as_bytes("header.claims"), junk));
        }
    }
    for (const auto& r : set->rejected()) {
        GG_FUZZ_CHECK(!r.reason.empty());
        for (char c : r.kid) GG_FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F);
    }
    return 0;
}
