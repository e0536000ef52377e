#include "glassgate/proxy/store/secret_store.hpp"

namespace gg::proxy {
namespace {
constexpr std::string_view ns = "secret";
std::string aad_for(std::string_view target) { return "glassgate-secret-v1:" + std::string(target); }
}  // namespace

void SecretStore::set(std::string_view target, const Secret& value) {
    auto sealed = crypto::aes256gcm_seal(key_, as_bytes(value.reveal()), as_bytes(aad_for(target)));
    store_.put(ns, target, as_chars(sealed));
}

std::optional<Secret> SecretStore::get(std::string_view target) {
    auto stored = store_.get(ns, target);
    if (!stored) return std::nullopt;
    auto plain = crypto::aes256gcm_open(key_, as_bytes(*stored), as_bytes(aad_for(target)));
    if (!plain) {
        throw StoreError("secret for target '" + std::string(target) +
                         "' fails authentication: it was tampered with or encrypted under another master key");
    }
    Secret s(std::string(as_chars(*plain)));
    crypto::cleanse(plain->data(), plain->size());
    return s;
}

std::vector<std::string> SecretStore::targets() {
    std::vector<std::string> out;
    for (auto& [k, v] : store_.list(ns)) out.push_back(k);
    return out;
}

bool SecretStore::erase(std::string_view target) { return store_.erase(ns, target); }

}  // namespace gg::proxy
