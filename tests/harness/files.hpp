// Small file helpers for tests and peers, plus where the harness finds the source tree.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace gg::harness {

/// A directory for one test or peer: mkdtemp under /tmp, removed recursively by the destructor unless the
/// environment has GG_KEEP_TEST_DIRS=1 (then its path is printed to stderr) or it was made by keep_at().
class TempDir {
 public:
    /// Creates /tmp/<prefix>-XXXXXX (mode 0700). Throws std::system_error.
    explicit TempDir(std::string_view prefix = "gg-test");
    /// Uses (and creates if needed) `dir`, made absolute; never removed.
    static TempDir keep_at(const std::filesystem::path& dir);
    ~TempDir();
    TempDir(TempDir&& other) noexcept;
    TempDir& operator=(TempDir&& other) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
    /// Do not remove the directory at destruction.
    void keep() noexcept { keep_ = true; }
    [[nodiscard]] bool kept() const noexcept { return keep_; }

 private:
    struct Adopt {};
    explicit TempDir(Adopt) noexcept {}
    void remove() noexcept;
    std::filesystem::path path_;
    bool keep_ = false;
};

/// Writes `content` to `path` (truncating) and sets `mode`. Throws std::system_error.
void write_file(const std::filesystem::path& path, std::string_view content, mode_t mode = 0644);
/// Appends `content` to `path`, creating it with mode 0644. Throws std::system_error.
void append_file(const std::filesystem::path& path, std::string_view content);
/// The whole file. Throws std::system_error when it cannot be read.
[[nodiscard]] std::string read_file(const std::filesystem::path& path);
/// The last `lines` lines of a file (empty when it does not exist), for error messages.
[[nodiscard]] std::string tail_file(const std::filesystem::path& path, std::size_t lines = 30);
/// Waits up to `timeout` until the file holds `marker` and, after it, `end`; returns the text between them
/// (e.g. the sign-in URL a client printed), or nothing when `timeout` passes first.
[[nodiscard]] std::optional<std::string> wait_for_text(const std::filesystem::path& path, std::string_view marker,
                                                       char end, std::chrono::milliseconds timeout);
/// The file's bytes from `offset` on (empty when it does not exist or is shorter).
[[nodiscard]] std::string read_file_from(const std::filesystem::path& path, std::uintmax_t offset);
/// chown -R to `user` (and that user's primary group). Throws std::system_error / PeerError.
void chown_recursive(const std::filesystem::path& path, const std::string& user);

/// The glassgate source tree: $GG_SOURCE_DIR if set, else the directory CMake configured the harness from.
[[nodiscard]] std::filesystem::path source_dir();
/// Directory of the PostgreSQL server programs: $GG_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin.
/// Throws PeerError when none is installed.
[[nodiscard]] std::filesystem::path postgres_bindir();

/// `'text'` for POSIX shells (single quotes, embedded ones as '\'').
[[nodiscard]] std::string shell_quote(std::string_view text);
/// Random lowercase hex characters (from /dev/urandom), for passwords and names.
[[nodiscard]] std::string random_hex(std::size_t chars);

/// Self-signed TLS certificate (EC P-256) made with the openssl CLI: CN=`common_name`,
/// subjectAltName IP:127.0.0.1 and DNS:localhost. Writes <dir>/<name>.crt and <dir>/<name>.key (0600).
struct CertFiles {
    std::filesystem::path cert{};
    std::filesystem::path key{};
};
CertFiles make_self_signed_cert(const std::filesystem::path& dir, std::string_view name,
                                std::string_view common_name = "localhost");

}  // namespace gg::harness
