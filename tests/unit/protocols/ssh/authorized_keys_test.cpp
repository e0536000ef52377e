#include <doctest/doctest.h>

#include <string>

#include "glassgate/protocols/ssh/authorized_keys.hpp"

using namespace gg::ssh;

namespace {
const PublicKeyLine old_key{"ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOLDoldOLDoldOLDoldOLDoldOLDoldOLDoldOLDold"};
const PublicKeyLine new_key{"ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAINEWnewNEWnewNEWnewNEWnewNEWnewNEWnewNEWnew"};
const std::string other = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0ther ops@laptop";
}  // namespace

TEST_SUITE_BEGIN("ssh authorized_keys");

TEST_CASE("adding the new key appends one line and keeps every other byte") {
    const std::string text = "# managed by ops\n" + other + "\n\nssh-ed25519 " + old_key.base64 + " glassgate\n";
    const auto out = authorized_keys_with(text, new_key, "glassgate-rotated-20261201T195000Z");
    CHECK(out == text + "ssh-ed25519 " + new_key.base64 + " glassgate-rotated-20261201T195000Z\n");
    CHECK(authorized_keys_has(out, new_key));
    CHECK(authorized_keys_has(out, old_key));
}

TEST_CASE("a file without a final newline gets one before the new line") {
    const std::string text = other;
    CHECK(authorized_keys_with(text, new_key, "c") == other + "\nssh-ed25519 " + new_key.base64 + " c\n");
    CHECK(authorized_keys_with("", new_key, "c") == "ssh-ed25519 " + new_key.base64 + " c\n");
}

TEST_CASE("adding a key that is already there changes nothing (idempotent re-run)") {
    const std::string text = other + "\nssh-ed25519 " + new_key.base64 + " glassgate-rotated-x\n";
    CHECK(authorized_keys_with(text, new_key, "glassgate-rotated-y") == text);
    // Also when the existing line carries options.
    const std::string with_opts = "from=\"10.0.0.0/8\",no-pty ssh-ed25519 " + new_key.base64 + "\n";
    CHECK(authorized_keys_with(with_opts, new_key, "x") == with_opts);
}

TEST_CASE("a comment that is not one printable word is left out") {
    CHECK(authorized_keys_with("", new_key, "two words") == "ssh-ed25519 " + new_key.base64 + "\n");
    CHECK(authorized_keys_with("", new_key, "evil\nssh-rsa AAAA") == "ssh-ed25519 " + new_key.base64 + "\n");
    CHECK(authorized_keys_with("", new_key, "") == "ssh-ed25519 " + new_key.base64 + "\n");
}

TEST_CASE("removing the old key drops exactly its lines, byte for byte otherwise") {
    const std::string text = "# header\r\n" + other + "\r\n" + "ssh-ed25519 " + old_key.base64 + " glassgate\r\n" +
                             "command=\"echo a b\",no-pty ssh-ed25519 " + old_key.base64 + "\n" +
                             "ssh-ed25519 " + new_key.base64 + " glassgate-rotated-x\n" + "\n   \n";
    const auto out = authorized_keys_without(text, old_key);
    CHECK(out == "# header\r\n" + other + "\r\nssh-ed25519 " + new_key.base64 + " glassgate-rotated-x\n\n   \n");
    CHECK_FALSE(authorized_keys_has(out, old_key));
    CHECK(authorized_keys_has(out, new_key));
}

TEST_CASE("removal keeps the last line's missing newline and removes a last line without one") {
    const std::string text = other + "\nssh-ed25519 " + old_key.base64;
    CHECK(authorized_keys_without(text, old_key) == other + "\n");
    CHECK(authorized_keys_without(other, old_key) == other);
}

TEST_CASE("commented-out lines, other key types and prefixes of the key never match") {
    const std::string text = "#ssh-ed25519 " + old_key.base64 + "\n" +
                             "# ssh-ed25519 " + old_key.base64 + "\n" +
                             "ssh-rsa " + old_key.base64 + "\n" +
                             "ssh-ed25519 " + old_key.base64.substr(0, 40) + "\n" +
                             "ssh-ed25519 " + old_key.base64 + "X\n";
    CHECK_FALSE(authorized_keys_has(text, old_key));
    CHECK(authorized_keys_without(text, old_key) == text);
}

TEST_CASE("options with quoted spaces that look like a key do not confuse the match") {
    // The key appears inside a quoted option value: not a key field.
    const std::string text = "command=\"echo ssh-ed25519 " + old_key.base64 + "\" ssh-ed25519 " + new_key.base64 + "\n";
    CHECK_FALSE(authorized_keys_has(text, old_key));
    CHECK(authorized_keys_has(text, new_key));
    CHECK(authorized_keys_without(text, old_key) == text);
    CHECK(authorized_keys_without(text, new_key).empty());
}

TEST_CASE("tabs separate fields like spaces") {
    const std::string text = "ssh-ed25519\t" + old_key.base64 + "\tcomment\n";
    CHECK(authorized_keys_has(text, old_key));
    CHECK(authorized_keys_without(text, old_key).empty());
}

TEST_SUITE_END();
