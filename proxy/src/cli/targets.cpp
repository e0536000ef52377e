// `target pin`: fetch a backend's host key for ops to confirm and paste into the configuration.

#include "internal.hpp"
#include "glassgate/proxy/ssh/host_key.hpp"

namespace gg::proxy::cli {

int cmd_target_pin(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const auto& name = args.positional.at(0);
    const auto* t = cfg.find_target(name);
    if (!t) throw OperationalError("no target '" + name + "' in " + cfg.source.string());
    if (t->protocol != config::Protocol::ssh) throw OperationalError("target '" + name + "' is not an ssh target");
    const auto line = ssh::fetch_host_key(*t, std::chrono::seconds(10));
    io.out << line << "\n";
    if (ssh::host_key_matches(line, t->host_key)) {
        io.err << "target " << name << " (" << t->address.to_string() << ") presents the pinned host key\n";
    } else {
        io.err << "target " << name << " (" << t->address.to_string() << ") presents the key above; the pinned key is "
               << t->host_key << "\nConfirm the key with the host's owner, then set host_key in the configuration.\n";
    }
    return exit_ok;
}

}  // namespace gg::proxy::cli
