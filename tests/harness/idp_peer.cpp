#include "harness/idp_peer.hpp"

#include <boost/json.hpp>

#include <utility>

#include "harness/net.hpp"

namespace gg::harness {
namespace {

TempDir make_dir(const IdpOptions& options) {
    return options.dir.empty() ? TempDir("gg-idp") : TempDir::keep_at(options.dir);
}

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

}  // namespace

std::filesystem::path IdpPeer::scripts_dir() { return source_dir() / "tests" / "peers" / "idp"; }

IdpPeer::IdpPeer(IdpOptions options) : options_(std::move(options)), dir_(make_dir(options_)) {
    node_ = find_program("node");
    if (node_.empty()) {
        throw PeerError("idp: `node` not found in PATH (install nodejs >= 20 with scripts/install-deps.sh)");
    }
    if (!std::filesystem::is_directory(scripts_dir() / "node_modules" / "oidc-provider")) {
        throw PeerError("idp: " + (scripts_dir() / "node_modules").string() +
                        " lacks oidc-provider: run `npm ci` in " + scripts_dir().string() +
                        " (scripts/install-deps.sh does)");
    }
    boost::json::object users;
    for (const auto& user : options_.users) {
        boost::json::array groups;
        for (const auto& group : user.groups) {
            groups.emplace_back(group);
        }
        users[user.name] = boost::json::object{{"groups", std::move(groups)}};
    }
    write_file(dir_ / "users.json", boost::json::serialize(users) + "\n", 0644);
    start(options_.port);
}

IdpPeer::~IdpPeer() { stop(); }

void IdpPeer::stop() { server_.stop(); }

void IdpPeer::start(std::optional<std::uint16_t> port) {
    ServerSpec spec{.name = "idp (oidc-provider)",
                    .log_file = log_file(),
                    .stop_signal = SIGTERM,
                    .grace = std::chrono::seconds(5),
                    .timeout = options_.start_timeout,
                    .fixed_port = port};
    spec.make = [this](std::uint16_t p) {
        std::vector<std::string> argv = {node_.string(), (scripts_dir() / "server.mjs").string(),
                                         "--port", std::to_string(p),
                                         "--issuer", "http://127.0.0.1:" + std::to_string(p),
                                         "--users", (dir_ / "users.json").string(),
                                         "--id-token-ttl", std::to_string(options_.id_token_ttl.count()),
                                         "--device-code-ttl", std::to_string(options_.device_code_ttl.count())};
        if (!options_.jwks_file.empty()) {
            argv.insert(argv.end(), {"--jwks", options_.jwks_file.string()});
        }
        return SpawnOptions{.argv = std::move(argv),
                            .env = {.set = {{"NODE_ENV", "test"}}, .unset = {"NODE_OPTIONS"}},
                            .cwd = scripts_dir(),
                            .run_as = {}};
    };
    spec.ready = [](std::uint16_t p) {
        const auto response = http_get("127.0.0.1", p, "/.well-known/openid-configuration",
                                       std::chrono::seconds(2));
        if (!response || response->status != 200) {
            return false;
        }
        boost::system::error_code ec;
        const auto doc = boost::json::parse(response->body, ec);
        if (ec || !doc.is_object()) {
            return false;
        }
        const auto* issuer = doc.as_object().if_contains("issuer");
        return issuer != nullptr && issuer->is_string() &&
               issuer->as_string() == "http://127.0.0.1:" + std::to_string(p);
    };
    auto started = start_server(spec);
    server_ = std::move(started.process);
    port_ = started.port;
}

void IdpPeer::restart(const std::optional<std::filesystem::path>& jwks_file) {
    const auto port = port_;
    server_.stop();
    if (jwks_file) {
        options_.jwks_file = *jwks_file;
    }
    start(port);
}

void IdpPeer::make_jwks(const std::filesystem::path& out, const std::vector<std::string>& kids,
                        const std::filesystem::path& public_out, std::string_view alg) {
    const auto node = find_program("node");
    if (node.empty()) {
        throw PeerError("idp: `node` not found in PATH");
    }
    std::vector<std::string> argv = {node.string(), (scripts_dir() / "make-jwks.mjs").string(),
                                     "--out", out.string(), "--alg", std::string(alg)};
    for (const auto& kid : kids) {
        argv.insert(argv.end(), {"--kid", kid});
    }
    if (!public_out.empty()) {
        argv.insert(argv.end(), {"--public", public_out.string()});
    }
    const auto result = run(argv, RunOptions{.timeout = std::chrono::seconds(30)});
    if (result.exit_code != 0) {
        throw PeerError("idp: make-jwks.mjs failed:\n" + result.describe());
    }
}

RunResult IdpPeer::approve(std::string_view verification_uri_complete, std::string_view user, bool deny) const {
    std::vector<std::string> argv = {node_.string(), (scripts_dir() / "approve.mjs").string(),
                                     "--verification-uri-complete", std::string(verification_uri_complete),
                                     "--user", std::string(user)};
    if (deny) {
        argv.emplace_back("--deny");
    }
    return run(argv, RunOptions{.timeout = std::chrono::seconds(30), .cwd = scripts_dir()});
}

RunResult IdpPeer::device_login(std::string_view user, const std::vector<std::string>& extra_args) const {
    std::vector<std::string> argv = {node_.string(), (scripts_dir() / "device-login.mjs").string(),
                                     "--issuer", issuer(), "--client-id", client_id(),
                                     "--user", std::string(user)};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    return run(argv, RunOptions{.timeout = std::chrono::seconds(60), .cwd = scripts_dir()});
}

std::string IdpPeer::device_login_token(std::string_view user) const {
    const auto result = device_login(user);
    if (result.exit_code != 0 || result.out.empty()) {
        throw PeerError("idp: device login for " + std::string(user) + " failed:\n" + result.describe() +
                        "--- tail of " + log_file().string() + " ---\n" + tail_file(log_file(), 20));
    }
    return trim(result.out);
}

}  // namespace gg::harness
