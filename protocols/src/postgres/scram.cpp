#include "glassgate/protocols/postgres/scram.hpp"

#include <openssl/evp.h>

#include <charconv>
#include <optional>
#include <vector>

#include "glassgate/protocols/crypto.hpp"

namespace gg::pg {
namespace {

constexpr std::string_view gs2_header = "n,,";
constexpr std::string_view gs2_header_base64 = "biws";  // base64("n,,")

Error fail(errc code, std::string reason) { return Error{code, std::move(reason)}; }

/// RFC 5802 "printable": %x21-2B / %x2D-7E (ASCII graphic characters except ',').
bool printable(std::string_view s) noexcept {
    for (char c : s) {
        if (c < 0x21 || c > 0x7E || c == ',') return false;
    }
    return !s.empty();
}

/// The value of `part` if it is "<name>=<value>".
std::optional<std::string_view> attribute(std::string_view part, char name) noexcept {
    if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
    return part.substr(2);
}

std::vector<std::string_view> split_commas(std::string_view s) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto comma = s.find(',');
        parts.push_back(s.substr(0, comma));
        if (comma == std::string_view::npos) return parts;
        s.remove_prefix(comma + 1);
    }
}

/// At most 64 printable characters of a server-supplied string, for error reasons.
std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7F) ? c : '?';
    return out;
}

template <typename Digest>
void wipe(Digest& d) noexcept {
    crypto::cleanse(d.data(), d.size());
}

}  // namespace

ScramClient::ScramClient(std::string_view password, std::string client_nonce, const ScramKeys* cached)
    : password_(password), nonce_(std::move(client_nonce)), cached_(cached) {}

ScramKeys::~ScramKeys() {
    crypto::cleanse(client_key.data(), client_key.size());
    crypto::cleanse(server_key.data(), server_key.size());
}

ScramClient::~ScramClient() {
    crypto::cleanse(password_.data(), password_.size());
    crypto::cleanse(server_key_.data(), server_key_.size());
}

std::string ScramClient::client_first() {
    state_ = State::first_sent;
    client_first_bare_ = "n=,r=" + nonce_;
    return std::string(gs2_header) + client_first_bare_;
}

// RFC 5802 section 7 (as libpq reads it: exactly these three attributes, in this order)
//   server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
//   nonce = "r=" c-nonce s-nonce | salt = "s=" base64 | iteration-count = "i=" posit-number
// RFC 5802 section 3: SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, i)
//   ClientKey = HMAC(SaltedPassword, "Client Key")   StoredKey = H(ClientKey)
//   AuthMessage = client-first-bare "," server-first "," client-final-without-proof
//   ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)
//   ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)
Result<std::string> ScramClient::on_server_first(std::string_view server_first) {
    if (state_ != State::first_sent) {
        state_ = State::failed;
        return fail(errc::scram_out_of_order, "SCRAM: server-first message out of order");
    }
    state_ = State::failed;  // until the end of this function
    if (server_first.starts_with("m=")) {
        return fail(errc::scram_refused, "SCRAM: the server requires an unsupported extension (m=)");
    }
    const auto parts = split_commas(server_first);
    if (parts.size() != 3) {
        return fail(errc::scram_malformed, "SCRAM: malformed server-first message (expected r=,s=,i=)");
    }
    const auto nonce = attribute(parts[0], 'r');
    const auto salt_b64 = attribute(parts[1], 's');
    const auto iter_text = attribute(parts[2], 'i');
    if (!nonce || !salt_b64 || !iter_text) {
        return fail(errc::scram_malformed, "SCRAM: malformed server-first message (expected r=,s=,i=)");
    }
    if (!printable(*nonce)) return fail(errc::scram_malformed, "SCRAM: the server nonce has invalid characters");
    // The server must keep our nonce and add its own: otherwise the exchange could be a replay.
    if (nonce->size() <= nonce_.size() || !nonce->starts_with(nonce_)) {
        return fail(errc::scram_refused, "SCRAM: the server nonce does not extend the client nonce");
    }
    int iterations = 0;
    const char* end = iter_text->data() + iter_text->size();
    auto [ptr, ec] = std::from_chars(iter_text->data(), end, iterations);
    if (iter_text->empty() || ec != std::errc() || ptr != end) {
        return fail(errc::scram_malformed, "SCRAM: invalid iteration count \"" + excerpt(*iter_text) + "\"");
    }
    if (iterations < min_iterations || iterations > max_iterations) {
        return fail(errc::scram_refused, "SCRAM: refused iteration count " + std::to_string(iterations) + " (allowed " +
                                             std::to_string(min_iterations) + ".." + std::to_string(max_iterations) + ")");
    }
    const auto salt = base64_decode(*salt_b64);
    if (!salt || salt->empty()) return fail(errc::scram_refused, "SCRAM: invalid salt");

    crypto::Digest client_key{};
    if (cached_ && cached_->iterations == iterations && cached_->salt_b64 == *salt_b64) {
        // The same verifier as last time: PBKDF2 would yield the same keys.
        client_key = cached_->client_key;
        server_key_.assign(cached_->server_key.begin(), cached_->server_key.end());
        keys_ = *cached_;
        used_cache_ = true;
    } else {
        crypto::Digest salted{};
        if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                              reinterpret_cast<const unsigned char*>(salt->data()), static_cast<int>(salt->size()),
                              iterations, EVP_sha256(), static_cast<int>(salted.size()),
                              reinterpret_cast<unsigned char*>(salted.data())) != 1) {
            return fail(errc::crypto_failure, "SCRAM: PBKDF2 failed");
        }
        client_key = crypto::hmac_sha256(salted, as_bytes("Client Key"));
        const auto server_key = crypto::hmac_sha256(salted, as_bytes("Server Key"));
        server_key_.assign(server_key.begin(), server_key.end());
        wipe(salted);
        keys_.salt_b64 = std::string(*salt_b64);
        keys_.iterations = iterations;
        keys_.client_key = client_key;
        keys_.server_key = server_key;
    }
    auto stored_key = crypto::sha256(client_key);

    std::string final_without_proof = "c=" + std::string(gs2_header_base64) + ",r=" + std::string(*nonce);
    auth_message_ = client_first_bare_ + "," + std::string(server_first) + "," + final_without_proof;
    auto signature = crypto::hmac_sha256(stored_key, as_bytes(auth_message_));
    crypto::Digest proof{};
    for (std::size_t k = 0; k < proof.size(); ++k) proof[k] = client_key[k] ^ signature[k];
    wipe(client_key);
    wipe(stored_key);
    wipe(signature);
    state_ = State::final_sent;
    return final_without_proof + ",p=" + base64_encode(proof);
}

// RFC 5802 section 7 (as libpq reads it: nothing after the attribute)
//   server-final-message = (server-error / verifier) ["," extensions]
//   server-error = "e=" server-error-value | verifier = "v=" base64
Result<void> ScramClient::on_server_final(std::string_view server_final) {
    if (state_ != State::final_sent) {
        state_ = State::failed;
        return fail(errc::scram_out_of_order, "SCRAM: server-final message out of order");
    }
    state_ = State::failed;
    if (auto e = attribute(server_final, 'e')) {
        return fail(errc::scram_server_error, "SCRAM: the server reported \"" + excerpt(*e) + "\"");
    }
    const auto v = attribute(server_final, 'v');
    if (!v || v->find(',') != std::string_view::npos) {
        return fail(errc::scram_malformed, "SCRAM: malformed server-final message");
    }
    const auto got = base64_decode(*v);
    if (!got) return fail(errc::scram_malformed, "SCRAM: server signature is not base64");
    const auto expected = crypto::hmac_sha256(server_key_, as_bytes(auth_message_));
    if (!crypto::constant_time_equal(*got, expected)) {
        return fail(errc::scram_bad_signature, "SCRAM: wrong server signature (the server does not know the password)");
    }
    state_ = State::done;
    return {};
}

std::string scram_client_nonce() { return base64_encode(crypto::random_bytes(18)); }

std::string md5_password(std::string_view user, std::string_view password, const std::array<std::byte, 4>& salt) {
    auto md5hex = [](ByteView in) {
        std::array<unsigned char, EVP_MAX_MD_SIZE> d{};
        unsigned int n = 0;
        if (EVP_Digest(in.data(), in.size(), d.data(), &n, EVP_md5(), nullptr) != 1 || n != 16) {
            throw crypto::CryptoError("MD5 is not available from OpenSSL");
        }
        auto hex = to_hex(ByteView(reinterpret_cast<const std::byte*>(d.data()), n));
        crypto::cleanse(d.data(), d.size());
        return hex;
    };
    std::string inner;
    inner.reserve(password.size() + user.size());
    inner.append(password).append(user);
    std::string first = md5hex(as_bytes(inner));
    crypto::cleanse(inner.data(), inner.size());
    Bytes second = to_bytes(first);
    second.insert(second.end(), salt.begin(), salt.end());
    crypto::cleanse(first.data(), first.size());
    auto out = "md5" + md5hex(second);
    crypto::cleanse(second.data(), second.size());
    return out;
}

}  // namespace gg::pg
