// `version`, `config check`, `secret set`, `secret list`.

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <libssh/libssh.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>

#include "internal.hpp"
#include "glassgate/protocols/secret.hpp"
#include "glassgate/proxy/store/secret_store.hpp"

namespace gg::proxy::cli {

int cmd_version(const Args& args, Io& io) {
    if (args.has("json")) {
        boost::json::object o{{"glassgate", GG_VERSION},
                              {"openssl", OPENSSL_VERSION_TEXT},
                              {"libssh", ssh_version(0)},
                              {"sqlite", sqlite3_libversion()}};
        io.out << boost::json::serialize(o) << "\n";
    } else {
        io.out << "glassgate " << GG_VERSION << " (" << OPENSSL_VERSION_TEXT << ", libssh " << ssh_version(0)
               << ", SQLite " << sqlite3_libversion() << ")\n";
    }
    return exit_ok;
}

int cmd_config_check(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    io.out << cfg.source.string() << ": ok (" << cfg.targets.size() << " target(s), " << cfg.fallbacks.size()
           << " fallback rule(s))\n";
    return exit_ok;
}

int cmd_secret_set(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const std::string& target = args.positional.at(0);
    if (!cfg.find_target(target)) {
        throw ConfigError("no target named '" + target + "' in " + cfg.source.string());
    }
    std::string value;
    auto file = args.get("from-file").value_or("-");
    if (file == "-") {
        if (::isatty(STDIN_FILENO)) io.err << "reading the secret for '" << target << "' from standard input; end with Ctrl-D\n";
        value = read_stream(std::cin);
    } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) throw OperationalError("cannot read " + file + ": " + std::strerror(errno));
        value = read_stream(in);
    }
    // A one-line secret (a password) loses its trailing newline; multi-line ones (keys) stay intact.
    if (auto nl = value.find('\n'); nl != std::string::npos && nl + 1 == value.size()) {
        value.pop_back();
        if (!value.empty() && value.back() == '\r') value.pop_back();
    }
    if (value.empty()) throw OperationalError("refusing to store an empty secret for '" + target + "'");
    Secret secret(std::move(value));
    auto st = open_state(cfg);
    SecretStore secrets(*st.store, st.dir->secrets_key());
    secrets.set(target, secret);
    session::AuditEvent ev;
    ev.time = now();
    ev.type = "secret.set";
    ev.identity = cli_actor();
    ev.target = target;
    ev.outcome = "ok";
    ev.details["bytes"] = secret.size();
    st.store->append_audit(ev);
    io.err << "secret for '" << target << "' stored (" << secret.size() << " bytes, encrypted)\n";
    return exit_ok;
}

int cmd_secret_list(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto st = open_state(cfg);
    SecretStore secrets(*st.store, st.dir->secrets_key());
    auto names = secrets.targets();
    if (args.has("json")) {
        boost::json::array a;
        for (const auto& n : names) a.emplace_back(boost::json::object{{"target", n}, {"in_config", cfg.find_target(n) != nullptr}});
        io.out << boost::json::serialize(a) << "\n";
        return exit_ok;
    }
    for (const auto& n : names) io.out << n << (cfg.find_target(n) ? "" : "  (target no longer in the configuration)") << "\n";
    return exit_ok;
}

}  // namespace gg::proxy::cli
