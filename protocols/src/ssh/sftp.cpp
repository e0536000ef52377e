#include "glassgate/protocols/ssh/sftp.hpp"

#include "glassgate/protocols/text.hpp"

#include <boost/json.hpp>

#include <optional>

namespace gg::ssh {
namespace {

enum : int {
    fx_init = 1, fx_version = 2, fx_open = 3, fx_close = 4, fx_read = 5, fx_write = 6, fx_opendir = 11,
    fx_remove = 13, fx_mkdir = 14, fx_rmdir = 15, fx_rename = 18,
    fx_status = 101, fx_handle = 102, fx_data = 103, fx_extended = 200,
};

std::optional<ByteView> read_view(ByteReader& r) {
    auto n = r.u32();
    if (!n) return std::nullopt;
    return r.take(*n);
}

std::optional<std::string> read_string(ByteReader& r) {
    auto v = read_view(r);
    if (!v) return std::nullopt;
    return std::string(as_chars(*v));
}

std::string event(boost::json::object o) { return boost::json::serialize(o); }

/// Adds a path to an event. SFTP (version 3) paths are bytes, but the events are JSON, which is UTF-8:
/// a path that is not valid UTF-8 is written with U+FFFD for each ill-formed byte, and its exact bytes
/// go in hex under "<key>_hex", so the record stays readable by any JSON parser and still names the file.
void put_path(boost::json::object& o, std::string_view key, const std::string& path) {
    if (is_utf8(path)) {
        o[key] = path;
        return;
    }
    o[key] = to_utf8_lossy(path);
    o[std::string(key) + "_hex"] = to_hex(as_bytes(path));
}

boost::json::object op_event(std::string_view op, const std::string& path) {
    boost::json::object o{{"op", op}};
    put_path(o, "path", path);
    return o;
}

std::string status_text(std::uint32_t code) {
    switch (code) {
        case 0: return "ok";
        case 1: return "eof";
        case 2: return "no such file";
        case 3: return "permission denied";
        case 4: return "failure";
        default: return "error " + std::to_string(code);
    }
}

}  // namespace

void SftpObserver::client_bytes(ByteView data, std::vector<std::string>& events) { feed(client_buf_, data, true, events); }
void SftpObserver::server_bytes(ByteView data, std::vector<std::string>& events) { feed(server_buf_, data, false, events); }

void SftpObserver::feed(Bytes& buf, ByteView data, bool from_client, std::vector<std::string>& events) {
    if (failed()) return;
    buf.insert(buf.end(), data.begin(), data.end());
    std::size_t off = 0;
    while (buf.size() - off >= 4) {
        ByteReader r(ByteView(buf).subspan(off, 4));
        const auto len = *r.u32();
        if (len == 0 || len > max_packet_) {
            fail("SFTP packet of " + std::to_string(len) + " bytes from the " + (from_client ? "client" : "server"));
            buf.clear();
            return;
        }
        if (buf.size() - off - 4 < len) break;
        const auto packet = ByteView(buf).subspan(off + 4, len);
        if (from_client) {
            client_packet(packet, events);
        } else {
            server_packet(packet, events);
        }
        off += 4 + len;
        if (failed()) {
            buf.clear();
            return;
        }
    }
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(off));
}

void SftpObserver::client_packet(ByteView p, std::vector<std::string>& /*events: requests complete with their replies*/) {
    ByteReader r(p);
    const int type = *r.u8();
    if (type == fx_init) return;
    auto id = r.u32();
    if (!id) return fail("truncated SFTP request");
    Pending q;
    q.type = type;
    switch (type) {
        case fx_open:
        case fx_opendir:
        case fx_remove:
        case fx_mkdir:
        case fx_rmdir: {
            auto path = read_string(r);
            if (!path) return fail("malformed SFTP request");
            q.path = std::move(*path);
            break;
        }
        case fx_extended: {
            // OpenSSH's sftp renames with posix-rename@openssh.com when the server offers it.
            auto name = read_string(r);
            if (!name) return fail("malformed SFTP extended request");
            if (*name != "posix-rename@openssh.com") return;
            q.type = fx_rename;
            [[fallthrough]];
        }
        case fx_rename: {
            auto a = read_string(r);
            auto b = read_string(r);
            if (!a || !b) return fail("malformed SFTP rename");
            q.path = std::move(*a);
            q.path2 = std::move(*b);
            break;
        }
        case fx_close: {
            auto h = read_string(r);
            if (!h) return fail("malformed SFTP close");
            q.handle = std::move(*h);
            break;
        }
        case fx_read: {
            auto h = read_string(r);
            auto o = r.u64();
            if (!h || !o) return fail("malformed SFTP read");
            q.handle = std::move(*h);
            q.offset = *o;
            break;
        }
        case fx_write: {
            auto h = read_string(r);
            auto o = r.u64();
            auto d = read_view(r);
            if (!h || !o || !d) return fail("malformed SFTP write");
            if (auto it = handles_.find(*h); it != handles_.end()) {
                auto& f = *it->second;
                f.written += d->size();
                if (*o == f.next_write) {
                    f.write_hash.update(*d);
                    f.next_write += d->size();
                } else {
                    f.sequential = false;
                }
            }
            return;  // the STATUS reply only matters when it is an error, which we do not track per write
        }
        default:
            return;  // stat, readdir, realpath, ...: not file transfers
    }
    if (pending_.size() >= 4096) return fail("too many outstanding SFTP requests");
    pending_[*id] = std::move(q);
}

void SftpObserver::server_packet(ByteView p, std::vector<std::string>& events) {
    ByteReader r(p);
    const int type = *r.u8();
    if (type == fx_version) return;
    auto id = r.u32();
    if (!id) return fail("truncated SFTP reply");
    auto it = pending_.find(*id);
    if (it == pending_.end()) return;
    Pending q = std::move(it->second);
    pending_.erase(it);
    if (type == fx_handle) {
        auto h = read_string(r);
        if (!h) return fail("malformed SFTP handle");
        if (q.type == fx_open || q.type == fx_opendir) {
            auto f = std::make_unique<Handle>();
            f->path = q.path;
            f->dir = q.type == fx_opendir;
            if (!f->dir) events.push_back(event(op_event("open", q.path)));
            if (handles_.size() < 1024) handles_[*h] = std::move(f);
        }
        return;
    }
    if (type == fx_data) {
        auto d = read_view(r);
        if (!d) return fail("malformed SFTP data");
        if (q.type == fx_read) {
            if (auto h = handles_.find(q.handle); h != handles_.end()) {
                auto& f = *h->second;
                f.read += d->size();
                if (q.offset == f.next_read) {
                    f.read_hash.update(*d);
                    f.next_read += d->size();
                } else {
                    f.sequential = false;
                }
            }
        }
        return;
    }
    if (type != fx_status) return;
    auto code = r.u32();
    if (!code) return fail("malformed SFTP status");
    const std::string status = status_text(*code);
    switch (q.type) {
        case fx_close: {
            auto h = handles_.find(q.handle);
            if (h == handles_.end()) return;
            auto f = std::move(h->second);
            handles_.erase(h);
            if (f->dir) return;
            auto o = op_event("close", f->path);
            o["read"] = f->read;
            o["written"] = f->written;
            const auto digest = f->written > 0 ? f->write_hash.finish() : f->read_hash.finish();
            if (f->sequential) {
                o["sha256"] = to_hex(digest);
            } else {
                o["sha256"] = nullptr;
                o["note"] = "non-sequential transfer: no whole-file hash";
            }
            if (*code != 0) o["status"] = status;
            events.push_back(event(std::move(o)));
            return;
        }
        case fx_open:
        case fx_remove:
        case fx_mkdir:
        case fx_rmdir:
        case fx_rename: {
            const char* op = q.type == fx_open     ? "open"
                             : q.type == fx_remove ? "remove"
                             : q.type == fx_mkdir  ? "mkdir"
                             : q.type == fx_rmdir  ? "rmdir"
                                                   : "rename";
            auto o = op_event(op, q.path);
            if (q.type == fx_rename) put_path(o, "to", q.path2);
            o["status"] = status;
            events.push_back(event(std::move(o)));
            return;
        }
        default:
            return;
    }
}

}  // namespace gg::ssh
