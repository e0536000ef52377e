#pragma once
// The state directory: its layout, creation with safe permissions, and the proxy's keys.
//
//   state_dir/            0700
//     glassgate.db        state store (SQLite, WAL)
//     master.key          32 random bytes, 0600, created on first use; every other key derives from it
//     recordings/         one <session-id>.ggrec per session
//
// Keys are derived from the master key with HKDF-SHA-256 and distinct labels, so the secrets
// encryption key, the recording checkpoint key, the audit MAC key and the signing key are independent.
//
// The signing key is an Ed25519 key pair whose 32-byte private key (seed) is HKDF(master, "glassgate
// signing ed25519 v1"). It signs recording checkpoints and seals and audit lines; its public key
// (`glassgate keys show`) lets anyone verify them without the proxy's secrets. Deriving it rather
// than storing a second key file: master.key is already the one secret that must be protected and
// backed up (whoever reads it can forge every MAC anyway, and would read a signing.key next to it as
// easily); one file means no second creation race, permission check or backup to forget, and the
// public key stays the same for as long as the master key does. Replacing master.key replaces the
// signing key too: keep the old public key to verify older recordings.

#include <filesystem>
#include <stdexcept>
#include <string>

#include "glassgate/protocols/crypto.hpp"

#include "glassgate/protocols/bytes.hpp"

namespace gg::proxy {

/// A start-up or CLI failure that should print one line and exit 1 (operational error).
struct OperationalError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class StateDir {
public:
    /// Creates `root` (0700) and its subdirectories if needed, then loads or creates the master key
    /// (`master_key_file`, default root/master.key). Throws OperationalError naming the path on any
    /// failure, or when the key file is readable by group/others (fail closed: a leaked key would let
    /// anyone forge recordings).
    explicit StateDir(std::filesystem::path root, std::filesystem::path master_key_file = {});
    ~StateDir();
    StateDir(const StateDir&) = delete;
    StateDir& operator=(const StateDir&) = delete;

    [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }
    [[nodiscard]] std::filesystem::path store_file() const { return root_ / "glassgate.db"; }
    [[nodiscard]] std::filesystem::path recordings_dir() const { return root_ / "recordings"; }

    [[nodiscard]] const Bytes& secrets_key() const noexcept { return secrets_key_; }
    [[nodiscard]] const Bytes& recording_key() const noexcept { return recording_key_; }
    [[nodiscard]] const Bytes& audit_key() const noexcept { return audit_key_; }
    /// The Ed25519 private key (32-byte seed) that signs recordings and audit lines.
    [[nodiscard]] const Bytes& signing_seed() const noexcept { return signing_seed_; }
    /// Its public key (`glassgate keys show` prints it as "ed25519:<base64>").
    [[nodiscard]] const crypto::Ed25519PublicKey& signing_public_key() const noexcept { return signing_public_key_; }
    /// A public fingerprint of the master key (hex of HKDF(master, "glassgate key id v1"), 16 bytes): the
    /// instances of a deployment compare it through the shared store to refuse a mismatched key.
    [[nodiscard]] const std::string& key_id() const noexcept { return key_id_; }
    [[nodiscard]] const std::filesystem::path& master_key_file() const noexcept { return master_key_file_; }

private:
    std::filesystem::path root_;
    std::filesystem::path master_key_file_;
    std::string key_id_;
    Bytes secrets_key_;
    Bytes recording_key_;
    Bytes audit_key_;
    Bytes signing_seed_;
    crypto::Ed25519PublicKey signing_public_key_{};
};

}  // namespace gg::proxy
