#include "glassgate/protocols/postgres/scram.hpp"

#include <openssl/evp.h>

#include <cctype>
#include <charconv>
#include <optional>

#include "glassgate/protocols/crypto.hpp"

namespace gg::pg {
namespace {

constexpr int min_iterations = 1000;  // PostgreSQL defaults to 4096; fewer is a downgrade
constexpr int max_iterations = 10'000'000;

/// The value of attribute `name` ("r", "s", "i", "v", "e") in a comma-separated SCRAM message.
std::optional<std::string_view> attr(std::string_view msg, char name) {
    std::size_t pos = 0;
    while (pos <= msg.size()) {
        auto end = msg.find(',', pos);
        auto part = msg.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        if (part.size() >= 2 && part[0] == name && part[1] == '=') return part.substr(2);
        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
    return std::nullopt;
}

Bytes hmac(ByteView key, std::string_view msg) {
    auto d = crypto::hmac_sha256(key, as_bytes(msg));
    return {d.begin(), d.end()};
}

}  // namespace

std::string base64_encode(ByteView b) {
    std::string out(4 * ((b.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b.data()), static_cast<int>(b.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<Bytes> base64_decode(std::string_view s) {
    if (s.size() % 4 != 0) return std::nullopt;
    for (char c : s) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return std::nullopt;
    }
    Bytes out(s.size() / 4 * 3);
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
    if (n < 0) return std::nullopt;
    std::size_t len = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts padding as data bytes.
    if (!s.empty() && s.back() == '=') --len;
    if (s.size() >= 2 && s[s.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

ScramClient::ScramClient(std::string_view password, std::string client_nonce)
    : password_(password), nonce_(std::move(client_nonce)) {}

ScramClient::~ScramClient() {
    crypto::cleanse(password_.data(), password_.size());
    crypto::cleanse(salted_.data(), salted_.size());
}

std::string ScramClient::client_first() {
    client_first_bare_ = "n=,r=" + nonce_;
    return "n,," + client_first_bare_;
}

Result<std::string> ScramClient::on_server_first(std::string_view server_first) {
    if (client_first_bare_.empty()) return Error{"SCRAM: server-first before client-first"};
    auto r = attr(server_first, 'r');
    auto s = attr(server_first, 's');
    auto i = attr(server_first, 'i');
    if (!r || !s || !i) return Error{"SCRAM: malformed server-first message"};
    if (r->size() <= nonce_.size() || r->substr(0, nonce_.size()) != nonce_) {
        return Error{"SCRAM: the server nonce does not extend the client nonce"};
    }
    int iterations = 0;
    auto [p, ec] = std::from_chars(i->data(), i->data() + i->size(), iterations);
    if (ec != std::errc() || p != i->data() + i->size() || iterations < min_iterations || iterations > max_iterations) {
        return Error{"SCRAM: unacceptable iteration count \"" + std::string(i->substr(0, 16)) + "\""};
    }
    auto salt = base64_decode(*s);
    if (!salt || salt->empty()) return Error{"SCRAM: invalid salt"};

    salted_.assign(32, std::byte{0});
    if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                          reinterpret_cast<const unsigned char*>(salt->data()), static_cast<int>(salt->size()),
                          iterations, EVP_sha256(), 32, reinterpret_cast<unsigned char*>(salted_.data())) != 1) {
        return Error{"SCRAM: PBKDF2 failed"};
    }
    const Bytes client_key = hmac(salted_, "Client Key");
    const auto stored_key = crypto::sha256(client_key);
    const std::string without_proof = "c=biws,r=" + std::string(*r);
    auth_message_ = client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
    const auto signature = crypto::hmac_sha256(stored_key, as_bytes(auth_message_));
    Bytes proof(client_key.size());
    for (std::size_t k = 0; k < proof.size(); ++k) proof[k] = client_key[k] ^ signature[k];
    return Result<std::string>(boost::system::in_place_value, without_proof + ",p=" + base64_encode(proof));
}

Result<bool> ScramClient::on_server_final(std::string_view server_final) {
    if (auth_message_.empty()) return Error{"SCRAM: server-final before server-first"};
    if (auto e = attr(server_final, 'e')) return Error{"SCRAM: server reported error \"" + std::string(e->substr(0, 64)) + "\""};
    auto v = attr(server_final, 'v');
    if (!v) return Error{"SCRAM: malformed server-final message"};
    auto got = base64_decode(*v);
    const Bytes server_key = hmac(salted_, "Server Key");
    const auto expected = crypto::hmac_sha256(server_key, as_bytes(auth_message_));
    if (!got || !crypto::constant_time_equal(*got, expected)) {
        return Error{"SCRAM: wrong server signature (the server does not know the password)"};
    }
    return true;
}

std::string scram_client_nonce() { return base64_encode(crypto::random_bytes(18)); }

std::string md5_password(std::string_view user, std::string_view password, const std::array<std::byte, 4>& salt) {
    auto md5hex = [](ByteView in) {
        unsigned char d[16];
        unsigned int n = 0;
        EVP_Digest(in.data(), in.size(), d, &n, EVP_md5(), nullptr);
        return to_hex(ByteView(reinterpret_cast<const std::byte*>(d), n));
    };
    std::string inner = std::string(password) + std::string(user);
    std::string first = md5hex(as_bytes(inner));
    Bytes second = to_bytes(first);
    second.insert(second.end(), salt.begin(), salt.end());
    crypto::cleanse(inner.data(), inner.size());
    return "md5" + md5hex(second);
}

}  // namespace gg::pg
