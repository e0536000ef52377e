// `serve`: logging set up from the configuration and the command line, then the server runs.

#include <spdlog/spdlog.h>

#include "internal.hpp"
#include "glassgate/proxy/ops/logging.hpp"
#include "glassgate/proxy/server/server.hpp"

namespace gg::proxy::cli {

int cmd_serve(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto fmt = logging::format_from_string(args.get("log-format").value_or(cfg.log.format));
    if (!fmt) throw UsageError("--log-format must be text or json");
    auto level = logging::level_from_string(args.get("log-level").value_or(cfg.log.level));
    if (!level) throw UsageError("--log-level must be trace, debug, info, warn or error");
    logging::init(*level, *fmt);
    try {
        Server server(cfg);
        return server.run();
    } catch (const OperationalError& e) {
        spdlog::error("{}", e.what());
        spdlog::default_logger()->flush();
        return exit_failure;
    }
}

}  // namespace gg::proxy::cli
