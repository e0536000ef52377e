// `glassgate login` and `glassgate status`.

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "internal.hpp"
#include "glassgate/proxy/io/unique_fd.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/proxy/identity/identity_provider.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::proxy::cli {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::filesystem::path token_cache_file(const config::IdpConfig& idp) {
    std::filesystem::path dir;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
        dir = x;
    } else if (const char* h = std::getenv("HOME"); h && *h) {
        dir = std::filesystem::path(h) / ".cache";
    } else {
        throw OperationalError("--cache needs $XDG_CACHE_HOME or $HOME");
    }
    auto id = to_hex(crypto::sha256(as_bytes(idp.issuer + "\n" + idp.client_id))).substr(0, 16);
    return dir / "glassgate" / ("token-" + id + ".jwt");
}

/// Seconds until the token's `exp` (unverified: this is the user's own cache, the proxy verifies).
std::optional<std::int64_t> seconds_left(const std::string& token) {
    auto a = token.find('.');
    auto b = token.find('.', a + 1);
    if (a == std::string::npos || b == std::string::npos) return std::nullopt;
    auto payload = oidc::base64url_decode(std::string_view(token).substr(a + 1, b - a - 1));
    if (!payload) return std::nullopt;
    boost::system::error_code ec;
    auto v = boost::json::parse(as_chars(*payload), ec);
    if (ec || !v.is_object()) return std::nullopt;
    auto* exp = v.as_object().if_contains("exp");
    if (!exp || !exp->is_number()) return std::nullopt;
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return static_cast<std::int64_t>(exp->to_number<double>()) - now;
}

void write_cache(const std::filesystem::path& file, const std::string& token) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    ::chmod(file.parent_path().c_str(), 0700);
    auto tmp = file;
    tmp += ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw OperationalError("cannot write " + tmp.string() + ": " + std::strerror(errno));
    bool ok = ::write(fd.get(), token.data(), token.size()) == static_cast<ssize_t>(token.size());
    ok = fd.close() == 0 && ok;
    if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) {
        throw OperationalError("cannot write " + file.string() + ": " + std::strerror(errno));
    }
}

}  // namespace

int cmd_login(const Args& args, Io& io) {
    config::IdpConfig idp;
    if (args.has("issuer") || args.has("client-id")) {
        if (!args.has("issuer") || !args.has("client-id")) throw UsageError("--issuer and --client-id go together");
        if (args.has("config")) throw UsageError("give --config or --issuer/--client-id, not both");
        idp.issuer = *args.get("issuer");
        idp.client_id = *args.get("client-id");
        if (auto ca = args.get("ca-file")) idp.ca_file = *ca;
        while (!idp.issuer.empty() && idp.issuer.back() == '/') idp.issuer.pop_back();
    } else {
        auto cfg = load_config_or_throw(args, io);
        if (!cfg.idp) throw ConfigError("no [idp] section in " + cfg.source.string());
        idp = *cfg.idp;
    }
    if (idp.audience.empty()) idp.audience = {idp.client_id};

    std::optional<std::filesystem::path> cache;
    if (args.has("cache")) {
        cache = token_cache_file(idp);
        std::ifstream in(*cache);
        std::string tok;
        if (in && std::getline(in, tok)) {
            if (auto left = seconds_left(tok); left && *left > 60) {
                io.err << "using the cached token (valid for " << *left / 60 << " more minute(s))\n";
                io.out << tok << "\n";
                return exit_ok;
            }
        }
    }

    asio::io_context ctx;
    auto task = [&]() -> asio::awaitable<identity::DeviceLoginResult> {
        auto f = co_await identity::fetch_discovery_and_jwks(idp, 10s);
        if (!f.keys) {
            co_return identity::DeviceLoginResult{{}, {}, "cannot use the identity provider " + idp.issuer + ": " + f.error, ""};
        }
        oidc::VerifyOptions vo;
        vo.issuer = idp.issuer;
        vo.audience = idp.audience;
        vo.client_id = idp.client_id;
        vo.username_claim = idp.username_claim;
        vo.groups_claim = idp.groups_claim;
        vo.skew = std::chrono::duration_cast<std::chrono::seconds>(idp.clock_skew);
        auto keys = std::make_shared<oidc::KeySet>(std::move(*f.keys));
        std::function<void(const oidc::DeviceAuthorization&)> show = [&io](const oidc::DeviceAuthorization& a) {
            io.err << "To sign in, open " << a.verification_uri_complete.value_or(a.verification_uri) << "\n";
            io.err << "and confirm the code " << a.user_code;
            if (!a.verification_uri_complete) io.err << " (enter it at " << a.verification_uri << ")";
            io.err << ". Waiting for approval..." << std::endl;
        };
        std::function<asio::awaitable<oidc::VerifyResult>(std::string)> verify =
            [keys, vo](std::string tok) -> asio::awaitable<oidc::VerifyResult> {
            co_return oidc::verify_jwt(tok, *keys, vo, std::chrono::system_clock::now());
        };
        std::function<void(bool, const std::string&)> on_http = [](bool, const std::string&) {};
        auto disc = *f.discovery;
        co_return co_await identity::run_device_login(idp, disc, std::move(show), std::move(verify), std::move(on_http));
    };
    auto fut = asio::co_spawn(ctx, task(), asio::use_future);
    ctx.run();
    auto res = fut.get();
    if (!res.identity) throw OperationalError(res.reason);
    io.err << "signed in as " << res.identity->username << "\n";
    if (cache) write_cache(*cache, res.id_token);
    io.out << res.id_token << "\n";
    return exit_ok;
}

int cmd_status(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const auto& path = cfg.server.admin_socket;
    asio::io_context ctx;
    asio::local::stream_protocol::socket sock(ctx);
    boost::system::error_code ec;
    sock.connect(asio::local::stream_protocol::endpoint(path.string()), ec);
    if (ec) throw OperationalError("glassgate serve is not running (no answer on " + path.string() + ": " + ec.message() + ")");
    std::string req = R"({"cmd":"status"})" "\n";
    asio::write(sock, asio::buffer(req), ec);
    asio::streambuf buf;
    if (!ec) asio::read_until(sock, buf, '\n', ec);
    if (ec) throw OperationalError("no status from " + path.string() + ": " + ec.message());
    std::string line{std::istreambuf_iterator<char>(&buf), {}};
    boost::system::error_code jec;
    auto v = boost::json::parse(line, jec);
    if (jec || !v.is_object()) throw OperationalError("unreadable status from " + path.string());
    const auto& o = v.as_object();
    if (args.has("json")) {
        io.out << boost::json::serialize(o) << "\n";
        return exit_ok;
    }
    auto str = [](const boost::json::value* x) -> std::string {
        if (!x || x->is_null()) return "-";
        if (x->is_string()) return std::string(x->as_string());
        return boost::json::serialize(*x);
    };
    io.out << "glassgate   " << str(o.if_contains("version")) << ", pid " << str(o.if_contains("pid")) << ", up since "
           << str(o.if_contains("started")) << "\n";
    io.out << "mode        " << str(o.if_contains("mode"));
    if (auto r = str(o.if_contains("mode_reason")); r != "-" && !r.empty()) io.out << " (" << r << ")";
    io.out << "\n";
    if (auto* i = o.if_contains("idp"); i && i->is_object()) {
        const auto& idp = i->as_object();
        io.out << "idp         " << str(idp.if_contains("state")) << " since " << str(idp.if_contains("since")) << " ("
               << str(idp.if_contains("issuer")) << ")\n";
        if (auto* lp = idp.if_contains("last_probe"); lp && lp->is_object()) {
            const auto& p = lp->as_object();
            io.out << "last probe  " << str(p.if_contains("at")) << ": "
                   << (p.at("ok").is_bool() && p.at("ok").as_bool() ? "ok" : "FAILED") << ": " << str(p.if_contains("evidence")) << "\n";
        } else {
            io.out << "last probe  -\n";
        }
        io.out << "jwks        " << str(idp.if_contains("cached_keys")) << " key(s), fetched " << str(idp.if_contains("jwks_fetched_at")) << "\n";
    } else {
        io.out << "idp         not configured\n";
    }
    if (auto* d = o.if_contains("declaration"); d && d->is_object()) {
        const auto& dd = d->as_object();
        io.out << "declared    by " << str(dd.if_contains("declared_by")) << " at " << str(dd.if_contains("declared_at")) << ": "
               << str(dd.if_contains("reason"));
        if (dd.contains("until")) io.out << " (until " << str(dd.if_contains("until")) << ")";
        io.out << "\n";
    }
    if (auto* r = o.if_contains("rotation_pending"); r && r->is_array()) {
        for (const auto& j : r->as_array()) {
            if (!j.is_object()) continue;
            const auto& jo = j.as_object();
            io.out << "rotation    " << str(jo.if_contains("target")) << " rotation-pending since " << str(jo.if_contains("queued_at"))
                   << ", " << str(jo.if_contains("attempts")) << " attempt(s)";
            if (auto e = str(jo.if_contains("last_error")); e != "-" && !e.empty()) io.out << ", last error: " << e;
            io.out << "\n";
        }
    }
    io.out << "sessions    " << str(o.if_contains("active_sessions")) << " active\n";
    if (auto* sh = o.if_contains("recordings_unshipped"); sh && sh->is_object()) {
        const auto& so = sh->as_object();
        if (auto n = str(so.if_contains("count")); n != "0" && n != "-") {
            io.out << "shipping    " << n << " recording(s) not yet in the state store";
            if (auto e = str(so.if_contains("last_error")); e != "-" && !e.empty()) io.out << ", last error: " << e;
            io.out << "\n";
        }
    }
    if (auto* in = o.if_contains("instances"); in && in->is_array()) {
        for (const auto& entry : in->as_array()) {
            if (!entry.is_object()) continue;
            const auto& i = entry.as_object();
            io.out << "instance    " << str(i.if_contains("instance")) << " " << str(i.if_contains("status")) << ", heartbeat "
                   << str(i.if_contains("heartbeat")) << ", idp " << (str(i.if_contains("idp")).empty() ? "-" : str(i.if_contains("idp")))
                   << ", " << str(i.if_contains("active_sessions")) << " session(s), host " << str(i.if_contains("host"));
            if (auto b = str(i.if_contains("reaped_by")); !b.empty() && b != "-") io.out << " (sessions closed by " << b << ")";
            io.out << "\n";
        }
    }
    return exit_ok;
}

}  // namespace gg::proxy::cli
