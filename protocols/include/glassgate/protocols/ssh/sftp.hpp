#pragma once
// Watches an SFTP stream (draft-ietf-secsh-filexfer-02, version 3 as OpenSSH speaks it) in both
// directions and reports file-level operations for the recording: open/close with the bytes read
// and written and a SHA-256 of the transferred data, remove, rename, mkdir, rmdir, and errors.
// Sans-IO: the caller feeds the bytes it relays; nothing is modified.
//
//   packet := u32 length | byte type | body            (length counts type + body)
//   request bodies start with u32 id; OPEN = string path | u32 pflags | ATTRS,
//   READ = string handle | u64 offset | u32 len, WRITE = string handle | u64 offset | string data,
//   CLOSE = string handle; replies: STATUS = id | u32 code | string msg | string lang,
//   HANDLE = id | string handle, DATA = id | string data.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/crypto.hpp"

namespace gg::ssh {

class SftpObserver {
public:
    /// Packets longer than `max_packet` make the observer give up (see failed()).
    explicit SftpObserver(std::size_t max_packet = 1u << 20) : max_packet_(max_packet) {}

    /// Bytes the client sent / the server sent. Each completed operation appends one JSON object
    /// (one line, no newline) to `events`, e.g.
    /// {"op":"close","path":"/tmp/a","read":0,"written":1048576,"sha256":"…"}. Events are valid JSON
    /// in UTF-8: a path that is not UTF-8 has U+FFFD for each ill-formed byte, and its exact bytes in
    /// hex under "path_hex" (or "to_hex" for a rename's new name).
    void client_bytes(ByteView data, std::vector<std::string>& events);
    void server_bytes(ByteView data, std::vector<std::string>& events);

    /// True once the stream could not be parsed (malformed or oversized packet); no more events
    /// come from then on and the caller must record the raw bytes instead.
    [[nodiscard]] bool failed() const noexcept { return !failure_.empty(); }
    [[nodiscard]] const std::string& failure() const noexcept { return failure_; }

private:
    struct Handle {
        std::string path;
        bool dir = false;
        std::uint64_t read = 0;
        std::uint64_t written = 0;
        std::uint64_t next_read = 0;   // offset the hash of read data has reached
        std::uint64_t next_write = 0;
        bool sequential = true;
        crypto::Sha256 read_hash;
        crypto::Sha256 write_hash;
    };
    struct Pending {
        int type = 0;
        std::string path;   // OPEN, OPENDIR, REMOVE, MKDIR, RMDIR, RENAME (old)
        std::string path2;  // RENAME (new)
        std::string handle; // READ, WRITE, CLOSE
        std::uint64_t offset = 0;
    };
    void feed(Bytes& buf, ByteView data, bool from_client, std::vector<std::string>& events);
    void client_packet(ByteView p, std::vector<std::string>& events);
    void server_packet(ByteView p, std::vector<std::string>& events);
    void fail(std::string why) {
        if (failure_.empty()) failure_ = std::move(why);
    }

    std::size_t max_packet_;
    Bytes client_buf_, server_buf_;
    std::map<std::uint32_t, Pending> pending_;
    std::map<std::string, std::unique_ptr<Handle>> handles_;
    std::string failure_;
};

}  // namespace gg::ssh
