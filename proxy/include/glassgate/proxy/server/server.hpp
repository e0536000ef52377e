#pragma once
// `glassgate serve`: owns the io_context, the listeners, the admin socket, the state store and the
// recording service. Start-up checks everything it can before accepting anything (state dir,
// TLS files, ports, admin socket) and reports the first failure as one clear line.

#include <memory>

#include "glassgate/config/config.hpp"

namespace gg::proxy {

class Server {
public:
    /// Opens the state, loads TLS material and binds every listener; throws OperationalError
    /// naming the path or address that failed.
    explicit Server(const config::Config& cfg);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Serves until stop() or SIGINT/SIGTERM. Returns the exit code (0 after an orderly stop).
    int run();
    /// Requests an orderly stop; thread-safe.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace gg::proxy
