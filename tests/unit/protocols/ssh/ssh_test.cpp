// SSH decisions (login names, env allow-list, pinned keys, channel requests) and the SFTP observer,
// with byte-level packets.

#include <doctest/doctest.h>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"
#include "glassgate/protocols/ssh/sftp.hpp"

using namespace gg;
using namespace gg::ssh;

TEST_SUITE_BEGIN("ssh");

TEST_CASE("login names: TARGET or HINT:TARGET") {
    auto a = parse_login("web01");
    REQUIRE(a.login);
    CHECK(a.login->hint.empty());
    CHECK(a.login->target == "web01");
    auto b = parse_login("alice@example.com:web-01.prod");
    REQUIRE(b.login);
    CHECK(b.login->hint == "alice@example.com");
    CHECK(b.login->target == "web-01.prod");
    for (const char* bad : {"", ":web01", "alice:", "a b", "web01/x", "alice:web01:x;", "bob:we$b"}) {
        auto r = parse_login(bad);
        CHECK_MESSAGE(!r.login, bad);
        CHECK_MESSAGE(!r.problem.empty(), bad);
    }
    CHECK(!parse_login(std::string(129, 'a')).login);
}

TEST_CASE("env allow-list globs") {
    const std::vector<std::string> globs = {"LANG", "LC_*"};
    CHECK(env_allowed(globs, "LANG"));
    CHECK(env_allowed(globs, "LC_ALL"));
    CHECK(!env_allowed(globs, "LD_PRELOAD"));
    CHECK(!env_allowed(globs, "LANGUAGE"));
    CHECK(!env_allowed({}, "LANG"));
}

TEST_CASE("pinned host keys compare type and key, never the comment") {
    auto a = parse_public_key_line("ssh-ed25519 AAAAC3NzaC1 host-a");
    auto b = parse_public_key_line("  ssh-ed25519\tAAAAC3NzaC1\n");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a == *b);
    CHECK(a->type == "ssh-ed25519");
    CHECK(!(*a == *parse_public_key_line("ssh-ed25519 AAAAC3NzaC2")));
    CHECK(!parse_public_key_line("ssh-ed25519"));
    CHECK(!parse_public_key_line(""));
    CHECK(hostkey_algorithms_for("ssh-rsa") == "rsa-sha2-512,rsa-sha2-256");
    CHECK(hostkey_algorithms_for("ssh-ed25519") == "ssh-ed25519");
}

TEST_CASE("channel requests and channel types") {
    RequestPolicy policy{{"LANG"}, true};
    for (auto k : {ChannelRequest::pty_req, ChannelRequest::shell, ChannelRequest::exec, ChannelRequest::window_change,
                   ChannelRequest::signal}) {
        CHECK(decide_channel_request(k, "", policy).relay);
    }
    CHECK(decide_channel_request(ChannelRequest::env, "LANG", policy).relay);
    auto env = decide_channel_request(ChannelRequest::env, "FOO", policy);
    CHECK(!env.relay);
    CHECK(env.message.find("FOO") != std::string::npos);
    CHECK(decide_channel_request(ChannelRequest::subsystem, "sftp", policy).relay);
    CHECK(!decide_channel_request(ChannelRequest::subsystem, "netconf", policy).relay);
    CHECK(!decide_channel_request(ChannelRequest::x11_req, "x11-req", policy).relay);
    CHECK(!decide_channel_request(ChannelRequest::auth_agent, "", policy).relay);
    CHECK(channel_request_kind("auth-agent-req@openssh.com") == ChannelRequest::auth_agent);
    CHECK(channel_request_kind("frob") == ChannelRequest::other);
    CHECK(decide_channel_open(ChannelType::session, false).accept);
    CHECK(!decide_channel_open(ChannelType::direct_tcpip, false).accept);
    CHECK(decide_channel_open(ChannelType::direct_tcpip, true).accept);
    CHECK(!decide_channel_open(ChannelType::forwarded_tcpip, true).accept);
    CHECK(!decide_channel_open(ChannelType::x11, true).accept);
}

namespace {

struct Packet {
    ByteWriter w;
    explicit Packet(std::uint8_t type) { w.u8(type); }
    Packet& u32(std::uint32_t v) { w.u32(v); return *this; }
    Packet& u64(std::uint64_t v) { w.u64(v); return *this; }
    Packet& str(std::string_view s) { w.u32(static_cast<std::uint32_t>(s.size())); w.str(s); return *this; }
    [[nodiscard]] Bytes wire() const {
        ByteWriter out;
        out.u32(static_cast<std::uint32_t>(w.data().size()));
        out.bytes(w.data());
        return out.data();
    }
};

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// SHA-256("abcdef") and SHA-256("abc")
const std::string sha_abcdef = "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721";
const std::string sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

}  // namespace

TEST_CASE("sftp: an upload in two writes is one close event with size and SHA-256, at any split") {
    const Bytes client = cat({Packet(1).u32(3).wire(),                                    // INIT v3
                              Packet(3).u32(7).str("/tmp/up.bin").u32(0x1a).u32(0).wire(),  // OPEN, empty ATTRS
                              Packet(6).u32(8).str("H1").u64(0).str("abc").wire(),         // WRITE
                              Packet(6).u32(9).str("H1").u64(3).str("def").wire(),
                              Packet(4).u32(10).str("H1").wire()});                         // CLOSE
    const Bytes server_open = Packet(102).u32(7).str("H1").wire();
    const Bytes server_rest = cat({Packet(101).u32(8).u32(0).str("").str("").wire(),
                                   Packet(101).u32(9).u32(0).str("").str("").wire(),
                                   Packet(101).u32(10).u32(0).str("").str("").wire()});
    for (std::size_t split = 0; split <= client.size(); ++split) {
        SftpObserver o;
        std::vector<std::string> ev;
        o.server_bytes(Packet(2).u32(3).wire(), ev);  // VERSION
        // The client's OPEN goes first, then the server's HANDLE, then the writes and close.
        const std::size_t open_end = Packet(1).u32(3).wire().size() +
                                     Packet(3).u32(7).str("/tmp/up.bin").u32(0x1a).u32(0).wire().size();
        o.client_bytes(ByteView(client).first(open_end), ev);
        o.server_bytes(server_open, ev);
        const auto rest = ByteView(client).subspan(open_end);
        const auto cut = std::min(split, rest.size());
        o.client_bytes(rest.first(cut), ev);
        o.client_bytes(rest.subspan(cut), ev);
        o.server_bytes(server_rest, ev);
        REQUIRE_MESSAGE(ev.size() == 2, split);
        CHECK(ev[0] == R"({"op":"open","path":"/tmp/up.bin"})");
        CHECK(ev[1] == R"({"op":"close","path":"/tmp/up.bin","read":0,"written":6,"sha256":")" + sha_abcdef + "\"}");
        CHECK(!o.failed());
    }
}

TEST_CASE("sftp: a download hashes the DATA replies; remove, rename, mkdir report their status") {
    SftpObserver o;
    std::vector<std::string> ev;
    o.client_bytes(Packet(3).u32(1).str("/etc/motd").u32(1).u32(0).wire(), ev);
    o.server_bytes(Packet(102).u32(1).str("h").wire(), ev);
    o.client_bytes(cat({Packet(5).u32(2).str("h").u64(0).u32(32768).wire(), Packet(5).u32(3).str("h").u64(3).u32(32768).wire()}), ev);
    o.server_bytes(cat({Packet(103).u32(2).str("abc").wire(), Packet(101).u32(3).u32(1).str("EOF").str("").wire()}), ev);
    o.client_bytes(Packet(4).u32(4).str("h").wire(), ev);
    o.server_bytes(Packet(101).u32(4).u32(0).str("").str("").wire(), ev);
    o.client_bytes(cat({Packet(13).u32(5).str("/tmp/x").wire(), Packet(200).u32(6).str("posix-rename@openssh.com").str("/a").str("/b").wire(),
                        Packet(14).u32(7).str("/d").u32(0).wire()}),
                   ev);
    o.server_bytes(cat({Packet(101).u32(5).u32(2).str("No such file").str("").wire(),
                        Packet(101).u32(6).u32(0).str("").str("").wire(), Packet(101).u32(7).u32(3).str("").str("").wire()}),
                   ev);
    REQUIRE(ev.size() == 5);
    CHECK(ev[1] == R"({"op":"close","path":"/etc/motd","read":3,"written":0,"sha256":")" + sha_abc + "\"}");
    CHECK(ev[2] == R"({"op":"remove","path":"/tmp/x","status":"no such file"})");
    CHECK(ev[3] == R"({"op":"rename","path":"/a","to":"/b","status":"ok"})");
    CHECK(ev[4] == R"({"op":"mkdir","path":"/d","status":"permission denied"})");
}

TEST_CASE("sftp: a path that is not UTF-8 makes valid JSON, with its exact bytes in hex") {
    SftpObserver o;
    std::vector<std::string> ev;
    o.client_bytes(cat({Packet(13).u32(5).str("/tmp/caf\xe9").wire(),                      // Latin-1 name
                        Packet(18).u32(6).str("/tmp/caf\xc3\xa9").str("/tmp/\xed\xa0\x80").wire()}),  // UTF-8, surrogate
                   ev);
    o.server_bytes(cat({Packet(101).u32(5).u32(0).str("").str("").wire(), Packet(101).u32(6).u32(0).str("").str("").wire()}),
                   ev);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0] == "{\"op\":\"remove\",\"path\":\"/tmp/caf\xef\xbf\xbd\",\"path_hex\":\"2f746d702f636166e9\",\"status\":\"ok\"}");
    CHECK(ev[1] == "{\"op\":\"rename\",\"path\":\"/tmp/caf\xc3\xa9\",\"to\":\"/tmp/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
                   "\"to_hex\":\"2f746d702feda080\",\"status\":\"ok\"}");
}

TEST_CASE("sftp: out-of-order writes get no whole-file hash; bad packets make the observer give up") {
    SftpObserver o;
    std::vector<std::string> ev;
    o.client_bytes(Packet(3).u32(1).str("/f").u32(0x1a).u32(0).wire(), ev);
    o.server_bytes(Packet(102).u32(1).str("h").wire(), ev);
    o.client_bytes(cat({Packet(6).u32(2).str("h").u64(3).str("def").wire(), Packet(6).u32(3).str("h").u64(0).str("abc").wire(),
                        Packet(4).u32(4).str("h").wire()}),
                   ev);
    o.server_bytes(Packet(101).u32(4).u32(0).str("").str("").wire(), ev);
    REQUIRE(ev.size() == 2);
    CHECK(ev[1].find("\"sha256\":null") != std::string::npos);
    CHECK(ev[1].find("non-sequential") != std::string::npos);

    SftpObserver big(1024);
    const Bytes huge = {std::byte{0}, std::byte{0}, std::byte{8}, std::byte{0}, std::byte{3}};  // 2048-byte packet
    big.client_bytes(huge, ev);
    CHECK(big.failed());
    CHECK(big.failure().find("2048") != std::string::npos);
    SftpObserver truncated;
    truncated.client_bytes(Packet(3).u32(1).u32(99).wire(), ev);  // OPEN whose path length runs past the packet
    CHECK(truncated.failed());
    SftpObserver zero;
    zero.server_bytes(Bytes(4, std::byte{0}), ev);
    CHECK(zero.failed());
}

TEST_SUITE_END();
