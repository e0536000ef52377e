#include "glassgate/protocols/postgres/startup.hpp"

#include <algorithm>

namespace gg::pg {

StartupNegotiation::StartupNegotiation(StartupFacts facts, TargetLookup targets, Limits limits)
    : facts_(facts), targets_(std::move(targets)), limits_(limits) {}

StartupStep StartupNegotiation::end(StartupAction action, std::size_t consumed) {
    state_ = State::done;
    return {std::move(action), consumed};
}

void StartupNegotiation::tls_started(std::string_view alpn) {
    const bool direct = state_ == State::awaiting_direct_tls;
    tls_ = true;
    // As PostgreSQL 17 does: direct TLS only with ALPN "postgresql", so that a TLS connection meant
    // for another protocol is never taken for a PostgreSQL one.
    state_ = direct && alpn != "postgresql" ? State::alpn_missing : State::negotiating;
}

StartupStep StartupNegotiation::next(ByteView in) {
    switch (state_) {
        case State::negotiating: break;
        case State::alpn_missing:
            return end(Disconnect{"08P01", "direct TLS connection without ALPN protocol \"postgresql\"",
                                  "direct TLS without ALPN \"postgresql\"; closing"});
        case State::awaiting_tls:
        case State::awaiting_direct_tls:  // tls_started() was not called: fail closed
        case State::done: return end(Disconnect{});
    }
    if (rounds_ >= max_rounds) return end(Disconnect{"08P01", "too many negotiation requests", {}});
    if (in.empty()) return {ReadMore{1}, 0};
    // Direct TLS: the first byte of a TLS handshake record instead of a startup packet.
    if (rounds_ == 0 && std::to_integer<unsigned>(in[0]) == 0x16) {
        ++rounds_;
        if (!facts_.tls_configured) return end(Disconnect{{}, {}, "direct TLS attempted but [tls] is not configured"});
        state_ = State::awaiting_direct_tls;
        return {StartTls{}, in.size()};
    }
    auto decoded = decode_startup(in, limits_);
    if (!decoded) {
        const auto& why = decoded.error().reason;
        return end(Disconnect{"08P01", "invalid startup packet: " + why, "bad startup packet: " + why});
    }
    if (const auto* more = std::get_if<NeedMore>(&*decoded)) return {ReadMore{more->at_least}, 0};
    const auto& d = std::get<StartupDecoded>(*decoded);
    ++rounds_;
    if (std::holds_alternative<SslRequest>(d.packet)) {
        if (tls_) return end(Disconnect{"08P01", "SSLRequest inside TLS", {}});
        if (!facts_.tls_configured) return {Answer{'N'}, d.consumed};
        // Bytes behind an SSLRequest arrived unencrypted and may have been injected by a
        // man-in-the-middle before the handshake (CVE-2021-23222 class): refuse them.
        if (in.size() > d.consumed) {
            const auto behind = std::to_string(in.size() - d.consumed);
            return end(Disconnect{{}, {}, behind + " unencrypted byte(s) after SSLRequest; closing"});
        }
        state_ = State::awaiting_tls;
        return {StartTls{.answer_s = true}, d.consumed};
    }
    // No GSSAPI encryption: the client goes on in the clear (or asks for TLS), so what follows the
    // request is read as plaintext, as it is sent.
    if (std::holds_alternative<GssEncRequest>(d.packet)) return {Answer{'N'}, d.consumed};
    if (const auto* c = std::get_if<CancelRequest>(&d.packet)) return end(ForwardCancel{c->pid, c->key}, d.consumed);
    return end(login(std::get<StartupMessage>(d.packet)), d.consumed);
}

StartupAction StartupNegotiation::login(const StartupMessage& m) const {
    const std::string user = m.get("user").value_or("");  // decode_startup guarantees a non-empty one
    if (!tls_ && !facts_.plaintext_allowed) {
        return Deny{"28000", "TLS required: connect with sslmode=require", "plaintext connection refused", user, {}};
    }
    if (m.get("replication")) {
        return Deny{"28000", "replication connections are not allowed through glassgate",
                    "replication connection refused", user, {}};
    }
    // dbname = target, or target/database.
    const std::string dbparam = m.get("database").value_or(user);
    const auto slash = dbparam.find('/');
    Proceed p{.user = user, .target = dbparam.substr(0, slash), .tls = tls_};
    const auto target = targets_ ? targets_(p.target) : std::nullopt;
    if (!target) {
        return Deny{"3D000", "no PostgreSQL target \"" + p.target + "\" on this proxy", "unknown target", user,
                    p.target};
    }
    if (slash == std::string::npos) {
        p.database = target->database;
    } else {
        p.database = dbparam.substr(slash + 1);
        if (p.database != target->database &&
            std::find(target->databases.begin(), target->databases.end(), p.database) == target->databases.end()) {
            return Deny{"3D000", "target \"" + p.target + "\" does not allow database \"" + p.database + "\"",
                        "database not allowed by target", user, p.target};
        }
    }
    GlassgateOptions options;
    if (auto o = m.get("options")) options = take_glassgate_options(*o);
    p.reason = std::move(options.reason);
    for (const auto& [name, value] : m.params) {
        if (!consumed_param(name)) p.forward.emplace_back(name, value);
    }
    if (options.forward) p.forward.emplace_back("options", std::move(*options.forward));
    return p;
}

// ---- options ------------------------------------------------------------------------------------

bool consumed_param(std::string_view name) noexcept {
    return name == "user" || name == "database" || name == "replication" || name == "options";
}

namespace {

/// What separates arguments in pg_split_opts: isspace() in the C locale.
bool option_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

std::vector<std::string> split_options(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    bool in = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (option_space(c)) {
            if (in) out.push_back(std::move(cur));
            cur.clear();
            in = false;
            continue;
        }
        in = true;
        if (c == '\\' && i + 1 < s.size()) {
            cur += s[++i];
        } else {
            cur += c;
        }
    }
    if (in) out.push_back(std::move(cur));
    return out;
}

std::string join_options(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& a : args) {
        if (!out.empty()) out += ' ';
        for (char c : a) {
            // Every separator is escaped, not only space and tab: an argument holding a newline
            // (which a client can send escaped) must reach the server as one argument.
            if (option_space(c) || c == '\\') out += '\\';
            out += c;
        }
    }
    return out;
}

GlassgateOptions take_glassgate_options(std::string_view options) {
    GlassgateOptions out;
    auto args = split_options(options);
    // A setting name=value; glassgate.* is ours. glassgate.reason is read in the first pass only.
    auto ours = [&](std::string_view kv, bool read_reason) {
        if (!kv.starts_with("glassgate.")) return false;
        const auto eq = kv.find('=');
        if (read_reason && eq != std::string_view::npos && kv.substr(0, eq) == "glassgate.reason") {
            out.reason = std::string(kv.substr(eq + 1));
        }
        return true;
    };
    // Taking an argument out can leave a kept "-c" next to an argument that was not its value before
    // ("-c -cglassgate.x glassgate.y=1": the server would read "-c glassgate.y=1"), so passes repeat
    // until one takes nothing out: what is forwarded never holds a glassgate.* setting.
    for (bool first = true;; first = false) {
        std::vector<std::string> keep;
        for (std::size_t i = 0; i < args.size(); ++i) {
            const std::string_view a = args[i];
            if (a == "-c" && i + 1 < args.size()) {
                if (ours(args[i + 1], first)) {
                    ++i;
                    continue;
                }
            } else if (a.starts_with("-c") && a.size() > 2 && ours(a.substr(2), first)) {
                continue;
            } else if (a.starts_with("--") && ours(a.substr(2), first)) {
                continue;
            }
            keep.push_back(args[i]);
        }
        const bool removed = keep.size() != args.size();
        args = std::move(keep);
        if (!removed) break;
    }
    if (!args.empty()) out.forward = join_options(args);
    return out;
}

}  // namespace gg::pg
