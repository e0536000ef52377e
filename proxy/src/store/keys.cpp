#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "glassgate/proxy/io/unique_fd.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/store/state_dir.hpp"

namespace gg::proxy {
namespace {

constexpr std::size_t master_key_size = 32;

std::string errno_text(int e) { return std::generic_category().message(e); }

void ensure_dir(const std::filesystem::path& p) {
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
        throw OperationalError("cannot create directory " + p.string() + ": " + errno_text(errno));
    }
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) throw OperationalError("cannot access " + p.string() + ": " + errno_text(errno));
    if (!S_ISDIR(st.st_mode)) throw OperationalError(p.string() + " exists but is not a directory");
    if (::access(p.c_str(), R_OK | W_OK | X_OK) != 0) {
        throw OperationalError("state directory " + p.string() + " is not writable: " + errno_text(errno));
    }
}

Bytes read_key_file(const std::filesystem::path& p, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw OperationalError("cannot stat " + p.string() + ": " + errno_text(errno));
    if ((st.st_mode & 077) != 0) {
        throw OperationalError("refusing to use " + p.string() +
                               ": it is readable or writable by group/others (run: chmod 600 " + p.string() + ")");
    }
    Bytes key(master_key_size + 1);
    ssize_t n = ::read(fd, key.data(), key.size());
    if (n < 0) throw OperationalError("cannot read " + p.string() + ": " + errno_text(errno));
    if (static_cast<std::size_t>(n) != master_key_size) {
        throw OperationalError(p.string() + " is corrupt: expected " + std::to_string(master_key_size) +
                               " bytes, found " + std::to_string(n));
    }
    key.resize(master_key_size);
    return key;
}

Bytes load_or_create_master_key(const std::filesystem::path& p) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        UniqueFd existing(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (existing) {
            struct stat st {};
            ::fstat(existing.get(), &st);
            if (st.st_size == 0) {  // another process is creating it right now
                existing.reset();
                ::usleep(20000);
                continue;
            }
            return read_key_file(p, existing.get());
        }
        if (errno != ENOENT) throw OperationalError("cannot open " + p.string() + ": " + errno_text(errno));
        // Create under a temporary name, fsync, then link into place: a crash never leaves a short key.
        auto tmp = p;
        tmp += ".tmp." + std::to_string(::getpid());
        UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd) throw OperationalError("cannot create " + tmp.string() + ": " + errno_text(errno));
        Bytes key = crypto::random_bytes(master_key_size);
        bool ok = ::write(fd.get(), key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd.get()) == 0;
        int err = errno;
        if (const int cerr = fd.close(); ok && cerr != 0) {
            ok = false;
            err = cerr;
        }
        if (!ok) {
            ::unlink(tmp.c_str());
            throw OperationalError("cannot write " + tmp.string() + ": " + errno_text(err));
        }
        if (::link(tmp.c_str(), p.c_str()) != 0) {  // link fails with EEXIST if another process won
            err = errno;
            ::unlink(tmp.c_str());
            if (err == EEXIST) continue;
            throw OperationalError("cannot create " + p.string() + ": " + errno_text(err));
        }
        ::unlink(tmp.c_str());
        return key;
    }
    throw OperationalError("timed out waiting for " + p.string() + " to be written");
}

}  // namespace

StateDir::StateDir(std::filesystem::path root, std::filesystem::path master_key_file)
    : root_(std::move(root)), master_key_file_(master_key_file.empty() ? root_ / "master.key" : std::move(master_key_file)) {
    ensure_dir(root_);
    ensure_dir(recordings_dir());
    Bytes master = load_or_create_master_key(master_key_file_);
    key_id_ = to_hex(crypto::hkdf_sha256(master, "glassgate key id v1", 16));
    secrets_key_ = crypto::hkdf_sha256(master, "glassgate secrets aes-256-gcm v1", 32);
    recording_key_ = crypto::hkdf_sha256(master, "glassgate recording checkpoint hmac v1", 32);
    audit_key_ = crypto::hkdf_sha256(master, "glassgate audit hmac v1", 32);
    signing_seed_ = crypto::hkdf_sha256(master, "glassgate signing ed25519 v1", crypto::ed25519_seed_size);
    crypto::cleanse(master.data(), master.size());
    signing_public_key_ = crypto::ed25519_public_from_seed(signing_seed_);
}

StateDir::~StateDir() {
    crypto::cleanse(secrets_key_.data(), secrets_key_.size());
    crypto::cleanse(recording_key_.data(), recording_key_.size());
    crypto::cleanse(audit_key_.data(), audit_key_.size());
    crypto::cleanse(signing_seed_.data(), signing_seed_.size());
}

}  // namespace gg::proxy
