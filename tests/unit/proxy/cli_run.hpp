#pragma once
// glassgate's command line in process: cli::run, the function main() calls, with its output captured.

#include <sstream>
#include <string>
#include <vector>

#include "glassgate/proxy/cli/cli.hpp"

namespace gg::test {

struct CliResult {
    int code = -1;
    std::string out;
    std::string err;
};

/// Runs `argv` (the arguments after the program name) through cli::run.
inline CliResult run_cli(const std::vector<std::string>& argv) {
    std::ostringstream out, err;
    CliResult r;
    r.code = proxy::cli::run(argv, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

}  // namespace gg::test
