#include <iostream>
#include <string>
#include <vector>

#include "glassgate/proxy/cli/cli.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    return gg::proxy::cli::run(args, std::cout, std::cerr);
}
