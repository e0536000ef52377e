#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>

#include "glassgate/proxy/store/secret_store.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "temp_dir.hpp"

using namespace gg;
using namespace gg::proxy;
using gg::test::TempDir;

namespace {
mode_t mode_of(const std::filesystem::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 07777;
}
}  // namespace

TEST_SUITE_BEGIN("secrets");

TEST_CASE("the state dir is created private, with a 0600 master key that persists") {
    TempDir tmp;
    auto root = tmp / "state";
    Bytes k1;
    {
        StateDir d(root);
        CHECK(mode_of(root) == 0700);
        CHECK(mode_of(root / "master.key") == 0600);
        CHECK(std::filesystem::file_size(root / "master.key") == 32);
        CHECK(std::filesystem::is_directory(d.recordings_dir()));
        k1 = d.secrets_key();
        CHECK(d.secrets_key() != d.audit_key());
        CHECK(d.audit_key() != d.recording_key());
    }
    StateDir again(root);
    CHECK(again.secrets_key() == k1);
}

TEST_CASE("the signing key: an Ed25519 pair derived from the master key, stable, distinct per state dir") {
    TempDir tmp;
    crypto::Ed25519PublicKey pub{};
    {
        StateDir d(tmp / "state");
        CHECK(d.signing_seed().size() == 32);
        CHECK(d.signing_seed() != d.recording_key());
        CHECK(d.signing_seed() != d.audit_key());
        CHECK(d.signing_seed() != d.secrets_key());
        CHECK(crypto::ed25519_public_from_seed(d.signing_seed()) == d.signing_public_key());
        pub = d.signing_public_key();
    }
    CHECK(StateDir(tmp / "state").signing_public_key() == pub);  // no extra file: it follows master.key
    CHECK_FALSE(std::filesystem::exists(tmp / "state" / "signing.key"));
    CHECK(StateDir(tmp / "other").signing_public_key() != pub);
}

TEST_CASE("a group/world-readable master key is refused (fail closed)") {
    TempDir tmp;
    auto root = tmp / "state";
    { StateDir d(root); }
    ::chmod((root / "master.key").c_str(), 0644);
    CHECK_THROWS_WITH_AS(StateDir{root}, doctest::Contains("chmod 600"), OperationalError);
}

TEST_CASE("a short master key is refused") {
    TempDir tmp;
    auto root = tmp / "state";
    std::filesystem::create_directories(root);
    { std::ofstream(root / "master.key") << "short"; }
    ::chmod((root / "master.key").c_str(), 0600);
    CHECK_THROWS_WITH_AS(StateDir{root}, doctest::Contains("corrupt"), OperationalError);
}

TEST_CASE("a state dir path that is a file is reported by name") {
    TempDir tmp;
    { std::ofstream(tmp / "file") << "x"; }
    CHECK_THROWS_WITH_AS(StateDir{tmp / "file"}, doctest::Contains("not a directory"), OperationalError);
}

TEST_CASE("secrets are encrypted at rest and bound to their target") {
    TempDir tmp;
    StateDir d(tmp / "state");
    auto store = open_sqlite_store(d.store_file(), d.audit_key());
    SecretStore secrets(*store, d.secrets_key());
    secrets.set("appdb", Secret("s3cret-password"));
    secrets.set("web01", Secret("-----BEGIN OPENSSH PRIVATE KEY-----\n...\n"));
    CHECK(secrets.get("appdb").value().reveal() == "s3cret-password");
    CHECK_FALSE(secrets.get("nope").has_value());
    CHECK(secrets.targets() == std::vector<std::string>{"appdb", "web01"});

    auto raw = store->get("secret", "appdb").value();
    CHECK(raw.find("s3cret") == std::string::npos);  // not stored in clear

    // Swapping ciphertexts between targets is detected (the target name is authenticated data).
    store->put("secret", "appdb", store->get("secret", "web01").value());
    CHECK_THROWS_AS(secrets.get("appdb"), StoreError);

    // Tampering is detected.
    auto w = store->get("secret", "web01").value();
    w[20] = static_cast<char>(w[20] ^ 1);
    store->put("secret", "web01", w);
    CHECK_THROWS_WITH_AS(secrets.get("web01"), doctest::Contains("tampered"), StoreError);
}

TEST_CASE("a changed secret is seen by another store connection at once (no restart)") {
    TempDir tmp;
    StateDir d(tmp / "state");
    auto serve_side = open_sqlite_store(d.store_file(), d.audit_key());
    auto cli_side = open_sqlite_store(d.store_file(), d.audit_key());
    SecretStore reader(*serve_side, d.secrets_key());
    SecretStore writer(*cli_side, d.secrets_key());
    writer.set("appdb", Secret("one"));
    CHECK(reader.get("appdb").value().reveal() == "one");
    writer.set("appdb", Secret("two"));
    CHECK(reader.get("appdb").value().reveal() == "two");
}

TEST_SUITE_END();
