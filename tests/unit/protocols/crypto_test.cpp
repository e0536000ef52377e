#include <doctest/doctest.h>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/secret.hpp"

#include <sstream>

using namespace gg;

TEST_SUITE_BEGIN("crypto");

TEST_CASE("SHA-256 known answers (FIPS 180-2)") {
    CHECK(to_hex(crypto::sha256(as_bytes("abc"))) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(to_hex(crypto::sha256(as_bytes(""))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto::Sha256 h;
    h.update(as_bytes("a"));
    h.update(as_bytes("bc"));
    CHECK(to_hex(h.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    h.update(as_bytes("abc"));  // reusable after finish
    CHECK(to_hex(h.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("HMAC-SHA-256 known answer (RFC 4231 test case 2)") {
    CHECK(to_hex(crypto::hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"))) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("HKDF-SHA-256 known answer (RFC 5869 test case 1)") {
    auto ikm = from_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b").value();
    auto salt = from_hex("000102030405060708090a0b0c").value();
    auto info = from_hex("f0f1f2f3f4f5f6f7f8f9").value();
    auto okm = crypto::hkdf_sha256(ikm, as_chars(info), 42, salt);
    CHECK(to_hex(okm) ==
          "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST_CASE("Ed25519 known answers (RFC 8032 section 7.1, tests 1 and 2)") {
    const auto seed1 = from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").value();
    CHECK(to_hex(crypto::ed25519_public_from_seed(seed1)) ==
          "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    CHECK(to_hex(crypto::ed25519_sign(seed1, {})) ==
          "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    const auto seed2 = from_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb").value();
    const auto msg2 = from_hex("72").value();
    crypto::Ed25519Signer signer(seed2);
    CHECK(to_hex(signer.public_key()) == "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    const auto sig2 = signer.sign(msg2);
    CHECK(to_hex(sig2) ==
          "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
    CHECK(crypto::ed25519_verify(signer.public_key(), msg2, sig2));
    CHECK_FALSE(crypto::ed25519_verify(signer.public_key(), as_bytes("s"), sig2));
    CHECK_FALSE(crypto::ed25519_verify(crypto::ed25519_public_from_seed(seed1), msg2, sig2));
    for (std::size_t i = 0; i < sig2.size() * 8; ++i) {
        auto bad = sig2;
        bad[i / 8] ^= static_cast<std::byte>(1u << (i % 8));
        CHECK_FALSE(crypto::ed25519_verify(signer.public_key(), msg2, bad));
    }
    CHECK_FALSE(crypto::ed25519_verify(as_bytes("short"), msg2, sig2));
    CHECK_FALSE(crypto::ed25519_verify(signer.public_key(), msg2, ByteView(sig2).first(63)));
    CHECK_THROWS_AS(crypto::Ed25519Signer(as_bytes("short")), crypto::CryptoError);
}

TEST_CASE("AES-256-GCM seals, opens, and detects every single-bit change") {
    auto key = crypto::random_bytes(32);
    auto sealed = crypto::aes256gcm_seal(key, as_bytes("hunter2"), as_bytes("aad"));
    REQUIRE(sealed.size() == 12 + 7 + 16);
    auto opened = crypto::aes256gcm_open(key, sealed, as_bytes("aad"));
    REQUIRE(opened.has_value());
    CHECK(as_chars(*opened) == "hunter2");
    CHECK_FALSE(crypto::aes256gcm_open(key, sealed, as_bytes("other")).has_value());
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        auto t = sealed;
        t[i] ^= std::byte{0x01};
        CHECK_FALSE(crypto::aes256gcm_open(key, t, as_bytes("aad")).has_value());
    }
    CHECK_FALSE(crypto::aes256gcm_open(key, ByteView(sealed).first(20), as_bytes("aad")).has_value());
    auto other = crypto::random_bytes(32);
    CHECK_FALSE(crypto::aes256gcm_open(other, sealed, as_bytes("aad")).has_value());
    // Nonces are random: two seals of the same plaintext differ.
    CHECK(crypto::aes256gcm_seal(key, as_bytes("x"), {}) != crypto::aes256gcm_seal(key, as_bytes("x"), {}));
}

TEST_CASE("constant_time_equal") {
    CHECK(crypto::constant_time_equal(as_bytes("abc"), as_bytes("abc")));
    CHECK_FALSE(crypto::constant_time_equal(as_bytes("abc"), as_bytes("abd")));
    CHECK_FALSE(crypto::constant_time_equal(as_bytes("abc"), as_bytes("ab")));
    CHECK(crypto::constant_time_equal({}, {}));
}

TEST_CASE("Secret never prints its value") {
    Secret s("hunter2");
    std::ostringstream os;
    os << s;
    CHECK(os.str() == "***");
    CHECK(s.reveal() == "hunter2");
    Secret moved(std::move(s));
    CHECK(moved.reveal() == "hunter2");
    CHECK(s.empty());  // NOLINT(bugprone-use-after-move): the moved-from secret is wiped
}

TEST_SUITE_END();
