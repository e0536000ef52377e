#pragma once
// Backend secrets (passwords, private keys) encrypted at rest with AES-256-GCM under the state
// directory's secrets key. Each ciphertext is bound to its target name (as AAD), so swapping two
// targets' ciphertexts in the store is detected. Secrets are read from the store at every use, so
// a running `serve` sees a changed secret on the next connection without a restart.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glassgate/protocols/secret.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy {

class SecretStore {
public:
    SecretStore(StateStore& store, Bytes key) : store_(store), key_(std::move(key)) {}

    /// Encrypts and stores the secret for `target`, replacing any previous one.
    void set(std::string_view target, const Secret& value);
    /// The secret for `target`; std::nullopt if none is stored. Throws StoreError if the stored value
    /// fails authentication (tampered, or encrypted under another master key).
    std::optional<Secret> get(std::string_view target);
    /// Targets with a stored secret, sorted.
    std::vector<std::string> targets();
    bool erase(std::string_view target);

private:
    StateStore& store_;
    Bytes key_;
};

}  // namespace gg::proxy
