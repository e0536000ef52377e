#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <set>
#include <string>
#include <vector>

#include "../base64_vectors.hpp"
#include "glassgate/protocols/postgres/scram.hpp"
#include "test_util.hpp"

using namespace gg::pg::test;

TEST_SUITE_BEGIN("postgres");

namespace {

// ---- an independent reference, straight from RFC 5802 section 3 with OpenSSL ---------------------
using Block = std::array<unsigned char, 32>;

Block ref_hmac(const unsigned char* key, std::size_t key_len, std::string_view msg) {
    Block out{};
    unsigned int n = 0;
    REQUIRE(HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const unsigned char*>(msg.data()),
                 msg.size(), out.data(), &n) != nullptr);
    REQUIRE(n == 32);
    return out;
}
Block ref_sha256(const Block& in) {
    Block out{};
    unsigned int n = 0;
    REQUIRE(EVP_Digest(in.data(), in.size(), out.data(), &n, EVP_sha256(), nullptr) == 1);
    return out;
}
std::string ref_base64(const unsigned char* p, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(len));
    return out;
}

struct Reference {
    std::string client_final;
    std::string server_final;
};

/// What client-final and server-final must be for this password, nonces, salt and count.
Reference reference(std::string_view password, std::string_view client_nonce, std::string_view full_nonce,
                    const std::vector<unsigned char>& salt, int iterations) {
    Block salted{};
    REQUIRE(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                              static_cast<int>(salt.size()), iterations, EVP_sha256(), 32, salted.data()) == 1);
    const Block client_key = ref_hmac(salted.data(), 32, "Client Key");
    const Block stored_key = ref_sha256(client_key);
    const Block server_key = ref_hmac(salted.data(), 32, "Server Key");
    const std::string server_first = "r=" + std::string(full_nonce) + ",s=" + ref_base64(salt.data(), salt.size()) +
                                     ",i=" + std::to_string(iterations);
    const std::string without_proof = "c=biws,r=" + std::string(full_nonce);
    // PostgreSQL: empty user name in client-first-bare.
    const std::string auth_message = "n=,r=" + std::string(client_nonce) + "," + server_first + "," + without_proof;
    const Block client_signature = ref_hmac(stored_key.data(), 32, auth_message);
    Block proof{};
    for (std::size_t i = 0; i < 32; ++i) proof[i] = client_key[i] ^ client_signature[i];
    const Block server_signature = ref_hmac(server_key.data(), 32, auth_message);
    return {without_proof + ",p=" + ref_base64(proof.data(), 32), "v=" + ref_base64(server_signature.data(), 32)};
}

const std::string password = "pencil";
const std::string client_nonce = "rOprNGfwEbeRWgbNEkqO";
const std::string full_nonce = client_nonce + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const std::vector<unsigned char> salt = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                         0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
const std::string salt_b64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
const std::string server_first = "r=" + full_nonce + ",s=" + salt_b64 + ",i=4096";

/// A SCRAM exchange driven step by step, as the backend connection drives it.
struct Exchange {
    ScramClient client{password, client_nonce};
    std::string first = client.client_first();
};

}  // namespace

TEST_CASE("scram: client-first as PostgreSQL wants it") {
    ScramClient c(password, client_nonce);
    CHECK(c.client_first() == "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
}

TEST_CASE("scram: client-final and server signature match an independent RFC 5802 computation") {
    REQUIRE(ref_base64(salt.data(), salt.size()) == salt_b64);
    for (int iterations : {4096, 1000, 10000}) {
        CAPTURE(iterations);
        const auto ref = reference(password, client_nonce, full_nonce, salt, iterations);
        Exchange ex;
        auto final_msg = ex.client.on_server_first("r=" + full_nonce + ",s=" + salt_b64 + ",i=" + std::to_string(iterations));
        REQUIRE(final_msg.has_value());
        CHECK(*final_msg == ref.client_final);
        auto done = ex.client.on_server_final(ref.server_final);
        CHECK(done.has_value());
    }
    // A password with bytes a shell would mangle, and a nonce as production makes them.
    const std::string pw = "p@ss w0rd,=\"'\\";
    const std::string nonce = scram_client_nonce();
    const std::string full = nonce + "SRVxyz/+=";
    const auto ref = reference(pw, nonce, full, salt, 4096);
    ScramClient c(pw, nonce);
    (void)c.client_first();
    auto f = c.on_server_first("r=" + full + ",s=" + salt_b64 + ",i=4096");
    REQUIRE(f.has_value());
    CHECK(*f == ref.client_final);
    CHECK(c.on_server_final(ref.server_final).has_value());
}

TEST_CASE("scram: cached keys give the same client-final and verify the same server signature") {
    const auto ref = reference(password, client_nonce, full_nonce, salt, 4096);
    Exchange first;
    REQUIRE(first.client.on_server_first(server_first).has_value());
    CHECK_FALSE(first.client.used_cached_keys());
    const ScramKeys keys = first.client.keys();
    CHECK(keys.salt_b64 == salt_b64);
    CHECK(keys.iterations == 4096);

    ScramClient cached(password, client_nonce, &keys);
    (void)cached.client_first();
    auto f = cached.on_server_first(server_first);
    REQUIRE(f.has_value());
    CHECK(cached.used_cached_keys());
    CHECK(*f == ref.client_final);
    CHECK(cached.on_server_final(ref.server_final).has_value());

    // Another salt or iteration count (the verifier was changed): the keys are not used.
    for (int iterations : {4096, 10000}) {
        const std::vector<unsigned char> salt2 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        const auto& s = iterations == 4096 ? salt2 : salt;
        const auto r2 = reference(password, client_nonce, full_nonce, s, iterations);
        ScramClient other(password, client_nonce, &keys);
        (void)other.client_first();
        auto f2 = other.on_server_first("r=" + full_nonce + ",s=" + ref_base64(s.data(), s.size()) + ",i=" +
                                        std::to_string(iterations));
        REQUIRE(f2.has_value());
        CHECK_FALSE(other.used_cached_keys());
        CHECK(*f2 == r2.client_final);
        CHECK(other.on_server_final(r2.server_final).has_value());
    }
}

TEST_CASE("scram: a wrong server signature is refused") {
    const auto ref = reference(password, client_nonce, full_nonce, salt, 4096);
    const auto wrong_password = reference("pencil2", client_nonce, full_nonce, salt, 4096);
    std::string flipped = ref.server_final;
    flipped[5] = flipped[5] == 'A' ? 'B' : 'A';
    const std::string bad[] = {wrong_password.server_final, flipped, "v=" + std::string(44, 'A').substr(0, 43) + "=",
                               "v=AAAA"};
    for (const auto& server_final : bad) {
        CAPTURE(server_final);
        Exchange ex;
        REQUIRE(ex.client.on_server_first(server_first).has_value());
        auto r = ex.client.on_server_final(server_final);
        REQUIRE(r.has_error());
        CHECK(r.error().code == errc::scram_bad_signature);
    }
}

TEST_CASE("scram: server-final errors and malformed messages") {
    struct Case {
        std::string message;
        errc code;
    };
    const Case cases[] = {
        {"e=invalid-proof", errc::scram_server_error},
        {"", errc::scram_malformed},
        {"x=abc", errc::scram_malformed},
        {"v=not base64!", errc::scram_malformed},
        {reference(password, client_nonce, full_nonce, salt, 4096).server_final + ",x=ext", errc::scram_malformed},
    };
    for (const auto& c : cases) {
        CAPTURE(c.message);
        Exchange ex;
        REQUIRE(ex.client.on_server_first(server_first).has_value());
        auto r = ex.client.on_server_final(c.message);
        REQUIRE(r.has_error());
        CHECK(r.error().code == c.code);
    }
}

TEST_CASE("scram: server-first checks") {
    struct Case {
        const char* name;
        std::string message;
        errc code;
    };
    const Case cases[] = {
        {"nonce not extending ours", "r=XXprNGfwEbeRWgbNEkqO%hvY,s=" + salt_b64 + ",i=4096", errc::scram_refused},
        {"nonce equal to ours", "r=" + client_nonce + ",s=" + salt_b64 + ",i=4096", errc::scram_refused},
        {"nonce a prefix of ours", "r=rOprNG,s=" + salt_b64 + ",i=4096", errc::scram_refused},
        {"iteration count 0", "r=" + full_nonce + ",s=" + salt_b64 + ",i=0", errc::scram_refused},
        {"iteration count 999", "r=" + full_nonce + ",s=" + salt_b64 + ",i=999", errc::scram_refused},
        {"iteration count negative", "r=" + full_nonce + ",s=" + salt_b64 + ",i=-4096", errc::scram_refused},
        {"iteration count huge", "r=" + full_nonce + ",s=" + salt_b64 + ",i=2147483647", errc::scram_refused},
        {"iteration count overflow", "r=" + full_nonce + ",s=" + salt_b64 + ",i=99999999999", errc::scram_malformed},
        {"iteration count not a number", "r=" + full_nonce + ",s=" + salt_b64 + ",i=4k", errc::scram_malformed},
        {"iteration count empty", "r=" + full_nonce + ",s=" + salt_b64 + ",i=", errc::scram_malformed},
        {"salt not base64", "r=" + full_nonce + ",s=W22ZaJ0SNY7s*EsUEjb6gQ==,i=4096", errc::scram_refused},
        {"salt empty", "r=" + full_nonce + ",s=,i=4096", errc::scram_refused},
        {"empty message", "", errc::scram_malformed},
        {"nonce only", "r=" + full_nonce, errc::scram_malformed},
        {"attributes out of order", "s=" + salt_b64 + ",r=" + full_nonce + ",i=4096", errc::scram_malformed},
        {"extension after i", server_first + ",x=1", errc::scram_malformed},
        {"mandatory extension", "m=ext," + server_first, errc::scram_refused},
        {"nonce with a control character", "r=" + client_nonce + "\x01xyz,s=" + salt_b64 + ",i=4096",
         errc::scram_malformed},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        Exchange ex;
        auto r = ex.client.on_server_first(c.message);
        REQUIRE(r.has_error());
        CHECK(r.error().code == c.code);
        CHECK_FALSE(r.error().reason.empty());
        // After a failure nothing goes on.
        auto next = ex.client.on_server_final("v=AAAA");
        REQUIRE(next.has_error());
        CHECK(next.error().code == errc::scram_out_of_order);
    }
}

TEST_CASE("scram: steps out of order") {
    {
        ScramClient c(password, client_nonce);
        auto r = c.on_server_first(server_first);
        REQUIRE(r.has_error());
        CHECK(r.error().code == errc::scram_out_of_order);
    }
    {
        Exchange ex;
        auto r = ex.client.on_server_final("v=AAAA");
        REQUIRE(r.has_error());
        CHECK(r.error().code == errc::scram_out_of_order);
    }
    {
        // A replayed server-first after the first one.
        Exchange ex;
        REQUIRE(ex.client.on_server_first(server_first).has_value());
        auto again = ex.client.on_server_first(server_first);
        REQUIRE(again.has_error());
        CHECK(again.error().code == errc::scram_out_of_order);
    }
    {
        // Done means done.
        const auto ref = reference(password, client_nonce, full_nonce, salt, 4096);
        Exchange ex;
        REQUIRE(ex.client.on_server_first(server_first).has_value());
        REQUIRE(ex.client.on_server_final(ref.server_final).has_value());
        CHECK(ex.client.on_server_final(ref.server_final).error().code == errc::scram_out_of_order);
    }
}

TEST_CASE("scram: client nonces are 24 printable characters and differ") {
    std::set<std::string> seen;
    for (int i = 0; i < 50; ++i) {
        const auto n = scram_client_nonce();
        CHECK(n.size() == 24);
        for (char c : n) CHECK((c > 0x20 && c < 0x7f && c != ','));
        seen.insert(n);
    }
    CHECK(seen.size() == 50);
}

TEST_CASE("base64: RFC 4648 vectors and strict decoding") {
    const gg::test::Base64Vector vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    gg::test::check_base64_vectors(vectors, [](ByteView b) { return base64_encode(b); },
                                   [](std::string_view s) { return base64_decode(s); });
    Bytes all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<std::byte>(i));
    for (std::size_t n = 0; n <= all.size(); n += 7) {
        const ByteView part = ByteView(all).first(n);
        CHECK(base64_encode(part) == ref_base64(reinterpret_cast<const unsigned char*>(part.data()), part.size()));
        CHECK(base64_decode(base64_encode(part)).value() == Bytes(part.begin(), part.end()));
    }
    for (std::string_view bad : {"Zg", "Zg=", "Z===", "====", "Zm9v Yg==", "Zg==Zg==", "Zh==", "Zm9=", "Zm-_", "Zm\n9v"}) {
        CAPTURE(bad);
        CHECK_FALSE(base64_decode(bad).has_value());
    }
}

TEST_CASE("md5: PostgreSQL's md5 password response") {
    // Reference: "md5" + md5hex(md5hex("secret" + "postgres") + salt), computed with EVP here.
    auto md5hex = [](const Bytes& in) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        REQUIRE(EVP_Digest(in.data(), in.size(), d, &n, EVP_md5(), nullptr) == 1);
        return to_hex(ByteView(reinterpret_cast<const std::byte*>(d), n));
    };
    const std::string inner = md5hex(to_bytes("secretpostgres"));
    const std::string expected = "md5" + md5hex(cat(inner, bytes({0x01, 0x02, 0x03, 0x04})));
    const std::array<std::byte, 4> s{std::byte{0x01}, std::byte{0x02}, std::byte{0x03}, std::byte{0x04}};
    const auto got = md5_password("postgres", "secret", s);
    CHECK(got == expected);
    CHECK(got.size() == 35);
    CHECK(got.starts_with("md5"));
    CHECK(md5_password("postgres", "secret", {}) != got);  // the salt matters
}

TEST_SUITE_END();
