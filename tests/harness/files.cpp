#include "harness/files.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "harness/process.hpp"

#ifndef GG_SOURCE_DIR
#error "GG_SOURCE_DIR must be defined by the build (the glassgate source tree)"
#endif

namespace gg::harness {
namespace {

std::system_error sys_error(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

bool keep_requested() {
    const char* keep = std::getenv("GG_KEEP_TEST_DIRS");
    return keep != nullptr && std::string_view(keep) == "1";
}

}  // namespace

// ---------------------------------------------------------------------------------------------- TempDir

TempDir::TempDir(std::string_view prefix) {
    std::string pattern = "/tmp/" + std::string(prefix) + "-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
        throw sys_error("mkdtemp " + pattern);
    }
    path_ = pattern;
    keep_ = keep_requested();
}

TempDir TempDir::keep_at(const std::filesystem::path& dir) {
    TempDir d{Adopt{}};
    d.path_ = std::filesystem::absolute(dir).lexically_normal();
    std::filesystem::create_directories(d.path_);
    d.keep_ = true;
    return d;
}

TempDir::~TempDir() { remove(); }

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, {})), keep_(other.keep_) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
    if (this != &other) {
        remove();
        path_ = std::exchange(other.path_, {});
        keep_ = other.keep_;
    }
    return *this;
}

void TempDir::remove() noexcept {
    if (path_.empty()) {
        return;
    }
    if (keep_) {
        if (keep_requested()) {
            std::cerr << "gg-harness: kept " << path_.string() << " (GG_KEEP_TEST_DIRS=1)\n";
        }
    } else {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
        if (ec) {
            std::cerr << "gg-harness: could not remove " << path_.string() << ": " << ec.message() << "\n";
        }
    }
    path_.clear();
}

// ---------------------------------------------------------------------------------------------- files

void write_file(const std::filesystem::path& path, std::string_view content, mode_t mode) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        throw sys_error("open " + path.string());
    }
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            auto e = sys_error("write " + path.string());
            close(fd);
            throw e;
        }
        done += static_cast<std::size_t>(n);
    }
    if (fchmod(fd, mode) != 0) {
        auto e = sys_error("chmod " + path.string());
        close(fd);
        throw e;
    }
    close(fd);
}

void append_file(const std::filesystem::path& path, std::string_view content) {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << content;
    if (!out) {
        throw std::system_error(std::make_error_code(std::errc::io_error), "append " + path.string());
    }
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::system_error(std::make_error_code(std::errc::no_such_file_or_directory),
                                "read " + path.string());
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string read_file_from(const std::filesystem::path& path, std::uintmax_t offset) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return {};
    }
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in) {
        return {};
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string tail_file(const std::filesystem::path& path, std::size_t lines) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) {
        return "(no log at " + path.string() + ")\n";
    }
    constexpr std::uintmax_t window = 64 * 1024;
    const std::string text = read_file_from(path, size > window ? size - window : 0);
    std::vector<std::string_view> all;
    std::string_view rest(text);
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        all.push_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
        out.append(all[i]);
        out += '\n';
    }
    return out;
}

std::optional<std::string> wait_for_text(const std::filesystem::path& path, std::string_view marker, char end,
                                         std::chrono::milliseconds timeout) {
    std::string found;
    const bool shown = wait_until([&] {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            return false;
        }
        const auto text = read_file(path);
        const auto at = text.find(marker);
        if (at == std::string::npos) {
            return false;
        }
        const auto from = at + marker.size();
        const auto to = text.find(end, from);
        if (to == std::string::npos) {
            return false;
        }
        found = text.substr(from, to - from);
        return true;
    }, timeout);
    if (!shown) {
        return std::nullopt;
    }
    return found;
}

void chown_recursive(const std::filesystem::path& path, const std::string& user) {
    std::array<char, 16384> buffer{};
    passwd pw{};
    passwd* found = nullptr;
    if (getpwnam_r(user.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        throw PeerError("chown: no such user: " + user);
    }
    auto one = [&](const std::filesystem::path& p) {
        if (lchown(p.c_str(), pw.pw_uid, pw.pw_gid) != 0) {
            throw sys_error("chown " + p.string());
        }
    };
    one(path);
    if (std::filesystem::is_directory(path)) {
        for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
            one(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------- paths

std::filesystem::path source_dir() {
    if (const char* dir = std::getenv("GG_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
        return dir;
    }
    return GG_SOURCE_DIR;
}

std::filesystem::path postgres_bindir() {
    if (const char* dir = std::getenv("GG_PG_BINDIR"); dir != nullptr && *dir != '\0') {
        return dir;
    }
    std::vector<std::pair<int, std::filesystem::path>> found;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
        const auto bin = entry.path() / "bin";
        const std::string version = entry.path().filename().string();
        if (std::filesystem::exists(bin / "postgres") && !version.empty() &&
            std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            found.emplace_back(std::stoi(version), bin);
        }
    }
    if (found.empty()) {
        throw PeerError(
            "no PostgreSQL server found under /usr/lib/postgresql/*/bin (install postgresql-15 with "
            "scripts/install-deps.sh, or set GG_PG_BINDIR)");
    }
    std::sort(found.begin(), found.end());
    return found.back().second;
}

// ---------------------------------------------------------------------------------------------- text

std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

std::string random_hex(std::size_t chars) {
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    std::string bytes((chars + 1) / 2, '\0');
    urandom.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!urandom) {
        throw std::system_error(std::make_error_code(std::errc::io_error), "read /dev/urandom");
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    out.resize(chars);
    return out;
}

CertFiles make_self_signed_cert(const std::filesystem::path& dir, std::string_view name,
                                std::string_view common_name) {
    CertFiles files{dir / (std::string(name) + ".crt"), dir / (std::string(name) + ".key")};
    const auto result = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                             "-nodes", "-keyout", files.key.string(), "-out", files.cert.string(), "-days", "7",
                             "-subj", "/CN=" + std::string(common_name), "-addext",
                             "subjectAltName=IP:127.0.0.1,DNS:localhost"},
                            RunOptions{.timeout = std::chrono::seconds(30)});
    if (result.exit_code != 0) {
        throw PeerError("openssl could not make a self-signed certificate:\n" + result.describe());
    }
    if (chmod(files.key.c_str(), 0600) != 0) {
        throw sys_error("chmod " + files.key.string());
    }
    return files;
}

}  // namespace gg::harness
