#include "keys.hpp"

#include <sys/stat.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"
#include "glassgate/proxy/ssh/host_key.hpp"
#include "glassgate/proxy/store/state_dir.hpp"

namespace gg::proxy::ssh {

std::string public_key_line(ssh_key key) {
    CharHandle b64;
    if (ssh_pki_export_pubkey_base64(key, b64.out()) != SSH_OK || !b64) return {};
    return std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " + b64.get();
}

std::string key_fingerprint(ssh_key key) {
    HashHandle hash;
    size_t len = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, hash.out(), &len) != 0) return {};
    CharHandle fp(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash.get(), len));
    return fp ? std::string(fp.get()) : std::string();
}

KeyHandle load_or_create_host_key(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        std::filesystem::create_directories(path.parent_path(), ec);
        KeyHandle key;
        if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, key.out()) != SSH_OK) {
            throw OperationalError("cannot generate an Ed25519 SSH host key");
        }
        const mode_t old = ::umask(0077);
        const int rc = ssh_pki_export_privkey_file(key.get(), nullptr, nullptr, nullptr, path.c_str());
        ::umask(old);
        if (rc != SSH_OK) throw OperationalError("cannot write the SSH host key " + path.string());
        ::chmod(path.c_str(), 0600);
        spdlog::info("ssh: generated a new Ed25519 host key in {}", path.string());
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw OperationalError("cannot read the SSH host key " + path.string());
    if ((st.st_mode & 077) != 0) {
        throw OperationalError("SSH host key " + path.string() + " is readable by group or others (chmod 600 it)");
    }
    KeyHandle key;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, key.out()) != SSH_OK) {
        throw OperationalError("cannot load the SSH host key " + path.string() + " (expected an OpenSSH private key)");
    }
    return key;
}

bool is_private_key(std::string_view credential) {
    return credential.find("PRIVATE KEY-----") != std::string_view::npos;
}

KeyHandle import_private_key(std::string_view pem_text) {
    std::string pem(pem_text);
    KeyHandle key;
    const int rc = ssh_pki_import_privkey_base64(pem.c_str(), nullptr, nullptr, nullptr, key.out());
    crypto::cleanse(pem.data(), pem.size());
    if (rc != SSH_OK) key.reset();
    return key;
}

void set_client_options(ssh_session s, const config::SocketAddress& address, const ClientOptions& o) {
    const bool process_config = false;
    const int verbosity = SSH_LOG_NOLOG;
    const unsigned int port = address.port;
    ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &process_config);
    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    ssh_options_set(s, SSH_OPTIONS_HOST, address.host.c_str());
    ssh_options_set(s, SSH_OPTIONS_PORT, &port);
    if (o.user) ssh_options_set(s, SSH_OPTIONS_USER, o.user);
    if (o.timeout_s) ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &*o.timeout_s);
    ssh_options_set(s, SSH_OPTIONS_HOSTKEYS, o.hostkeys.c_str());
    if (o.ciphers) {
        ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, o.ciphers);
        ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, o.ciphers);
    }
    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    if (o.fd) ssh_options_set(s, SSH_OPTIONS_FD, &*o.fd);
}

std::string presented_host_key(ssh_session s) {
    KeyHandle key;
    if (ssh_get_server_publickey(s, key.out()) != SSH_OK) return {};
    return public_key_line(key.get());
}

bool host_key_matches(std::string_view presented, std::string_view pinned) {
    const auto got = gg::ssh::parse_public_key_line(presented);
    const auto want = gg::ssh::parse_public_key_line(pinned);
    return got && want && *got == *want;
}

std::string fetch_host_key(const config::Target& target, std::chrono::milliseconds timeout) {
    SessionHandle s(ssh_new());
    if (!s) throw OperationalError("cannot create an SSH session");
    const long secs =
        std::max<long>(1, static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    set_client_options(s.get(), target.address,
                       {.timeout_s = secs, .hostkeys = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"});
    if (ssh_connect(s.get()) != SSH_OK) {
        throw OperationalError("cannot connect to " + target.address.to_string() + ": " + ssh_get_error(s.get()));
    }
    const auto line = presented_host_key(s.get());
    ssh_disconnect(s.get());
    if (line.empty()) throw OperationalError("the target presented no usable host key");
    return line;
}

}  // namespace gg::proxy::ssh
