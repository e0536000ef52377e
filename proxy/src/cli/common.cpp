// What every CLI command shares: the configuration, the state, the actor, times.

#include <pwd.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <iterator>

#include "internal.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/proxy/store/configured_store.hpp"

namespace gg::proxy::cli {

session::TimePoint now() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::string fmt_time(session::TimePoint t) {
    return gg::format_utc(t);  // 2026-11-23T19:04:35Z: seconds are enough on a terminal
}

std::string fmt_time(const std::optional<session::TimePoint>& t) { return t ? fmt_time(*t) : "-"; }

std::string read_stream(std::istream& in) { return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}; }

int parse_count(std::string_view value, const char* option) {
    int n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size()) {
        throw UsageError(std::string("--") + option + " must be a number");
    }
    return n;
}

std::string cli_actor() {
    const passwd* pw = ::getpwuid(::geteuid());
    return std::string("cli:") + (pw ? pw->pw_name : std::to_string(::geteuid()));
}

config::Config load_config_or_throw(const Args& args, Io& io) {
    std::filesystem::path path;
    if (auto c = args.get("config")) {
        path = *c;
    } else if (const char* env = std::getenv("GLASSGATE_CONFIG"); env && *env) {
        path = env;
    } else {
        path = "glassgate.toml";
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            throw ConfigError("no configuration: pass --config FILE, set GLASSGATE_CONFIG, or create ./glassgate.toml");
        }
    }
    auto res = config::load_config_file(path);
    if (!res.ok()) {
        for (const auto& issue : res.issues) io.err << issue.to_string() << "\n";
        throw ConfigError(std::to_string(res.issues.size()) + " problem(s) in " + path.string());
    }
    return std::move(*res.config);
}

State open_state(const config::Config& cfg) {
    State st;
    st.dir = std::make_unique<StateDir>(cfg.server.state_dir, cfg.server.master_key_path());
    st.store = open_configured_store(cfg, *st.dir);
    return st;
}

}  // namespace gg::proxy::cli
