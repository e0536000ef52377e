// What glassgate decides about SSH from what a client sends (protocols/ssh/decisions.hpp): the login
// name, channel requests with their detail (env names against allow-globs, subsystem names), channel
// types, and public key lines (known_hosts / authorized_keys / a pinned host key).
//   line 1 : the login name          line 2 : a channel request name
//   line 3 : the request's detail    line 4+: env allow-globs (the policy)
//   byte 0 : bit 0 allow_sftp, bit 1 allow_port_forwarding, bits 2-4 channel type

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "glassgate/protocols/ssh/decisions.hpp"
#include "glassgate/protocols/text.hpp"

using namespace gg;
using namespace gg::ssh;

namespace {

bool name_char(char c, bool identity) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || c == '.' || c == '_' ||
           c == '-' || (identity && (c == '@' || c == '+'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const unsigned flags = data[0];
    std::string_view rest = fuzz::text(data + 1, size - 1);
    std::vector<std::string_view> lines;
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        lines.push_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    }
    while (lines.size() < 3) lines.emplace_back();

    // The login name: TARGET or HINT:TARGET, names of the characters the config allows.
    auto login = parse_login(lines[0]);
    GG_FUZZ_CHECK(login.login.has_value() == login.problem.empty());
    if (login.login) {
        GG_FUZZ_CHECK(!login.login->target.empty());
        for (char c : login.login->target) GG_FUZZ_CHECK(name_char(c, false));
        for (char c : login.login->hint) GG_FUZZ_CHECK(name_char(c, true));
        const std::string back =
            login.login->hint.empty() ? login.login->target : login.login->hint + ":" + login.login->target;
        GG_FUZZ_CHECK(back == lines[0]);
    }

    RequestPolicy policy;
    policy.allow_sftp = (flags & 1u) != 0;
    for (std::size_t i = 3; i < lines.size() && i < 11; ++i) policy.env_allow.emplace_back(lines[i]);
    const auto kind = channel_request_kind(lines[1]);
    auto decision = decide_channel_request(kind, lines[2], policy);
    GG_FUZZ_CHECK(decision.relay == decision.message.empty());
    if (kind == ChannelRequest::subsystem && decision.relay) GG_FUZZ_CHECK(lines[2] == "sftp" && policy.allow_sftp);
    if (kind == ChannelRequest::x11_req || kind == ChannelRequest::auth_agent || kind == ChannelRequest::other) {
        GG_FUZZ_CHECK(!decision.relay);
    }
    // Globs match a name exactly like themselves when they hold no special character.
    for (const auto& g : policy.env_allow) {
        (void)glob_match(g, lines[2]);
        if (g.find_first_of("*?[\\") == std::string::npos) GG_FUZZ_CHECK(glob_match(g, g));
    }

    const auto type = static_cast<ChannelType>((flags >> 2) % 5);
    auto open = decide_channel_open(type, (flags & 2u) != 0);
    GG_FUZZ_CHECK(open.accept == open.message.empty());
    if (type == ChannelType::x11 || type == ChannelType::forwarded_tcpip || type == ChannelType::other) {
        GG_FUZZ_CHECK(!open.accept);
    }

    // Every line as a public key line.
    for (auto l : lines) {
        if (auto key = parse_public_key_line(l)) {
            GG_FUZZ_CHECK(!key->type.empty() && !key->base64.empty());
            GG_FUZZ_CHECK(key->type.find_first_of(" \t\r\n") == std::string::npos);
            GG_FUZZ_CHECK(key->base64.find_first_of(" \t\r\n") == std::string::npos);
            GG_FUZZ_CHECK(parse_public_key_line(key->type + " " + key->base64) == key);
            (void)hostkey_algorithms_for(key->type);
        }
    }
    return 0;
}
