// gg-peers: starts the test peers (PostgreSQL, sshd, the OIDC provider) for people and for the demo.
//
//   gg-peers --dir DIR [--postgres] [--sshd] [--idp] [--env-file FILE]
//
// All three when none is named. Each peer's data and log live in DIR/<peer> (emptied at start, kept at
// exit). Writes `export NAME='value'` lines to FILE (default DIR/peers.env) for `source`, prints a summary,
// and stays in the foreground until SIGINT/SIGTERM/SIGHUP, then stops the peers. Exit 1 naming the peer
// (and showing its log tail) when one does not start or dies while running; 2 on bad usage.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "harness/files.hpp"
#include "harness/idp_peer.hpp"
#include "harness/postgres_peer.hpp"
#include "harness/process.hpp"
#include "harness/sshd_peer.hpp"

namespace {

using namespace gg::harness;

constexpr std::string_view usage_text =
    "usage: gg-peers --dir DIR [--postgres] [--sshd] [--idp] [--env-file FILE]\n"
    "Starts the glassgate test peers on 127.0.0.1 (all three when none is named), writes an env file\n"
    "(default DIR/peers.env) and runs until SIGINT/SIGTERM. Peer data and logs stay in DIR/<peer>.\n";

struct Args {
    std::filesystem::path dir;
    std::filesystem::path env_file;
    bool postgres = false;
    bool sshd = false;
    bool idp = false;
};

[[noreturn]] void usage_error(std::string_view message) {
    std::cerr << "gg-peers: " << message << "\n" << usage_text;
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage_error(std::string(arg) + " needs a value");
            }
            return argv[++i];
        };
        if (arg == "--dir") {
            args.dir = value();
        } else if (arg == "--env-file") {
            args.env_file = value();
        } else if (arg == "--postgres") {
            args.postgres = true;
        } else if (arg == "--sshd") {
            args.sshd = true;
        } else if (arg == "--idp") {
            args.idp = true;
        } else if (arg == "--help" || arg == "-h") {
            std::cout << usage_text;
            std::exit(0);
        } else {
            usage_error("unknown argument: " + std::string(arg));
        }
    }
    if (args.dir.empty()) {
        usage_error("--dir is required");
    }
    if (!args.postgres && !args.sshd && !args.idp) {
        args.postgres = args.sshd = args.idp = true;
    }
    args.dir = std::filesystem::absolute(args.dir).lexically_normal();
    args.env_file = args.env_file.empty() ? args.dir / "peers.env" : std::filesystem::absolute(args.env_file);
    return args;
}

/// DIR/<name>, emptied: each run starts from a fresh cluster and fresh keys.
std::filesystem::path fresh_subdir(const std::filesystem::path& dir, std::string_view name) {
    const auto sub = dir / name;
    std::filesystem::remove_all(sub);
    std::filesystem::create_directories(sub);
    return sub;
}

template <class Peer, class Options>
std::unique_ptr<Peer> start_peer(std::string_view name, Options options) {
    std::cerr << "gg-peers: starting " << name << " in " << options.dir.string() << " ...\n";
    try {
        return std::make_unique<Peer>(std::move(options));
    } catch (const std::exception& e) {
        std::cerr << "gg-peers: " << name << " failed to start: " << e.what() << "\n";
        throw;
    }
}

struct Watched {
    std::string name;
    pid_t pid;
    std::filesystem::path log;
};

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);

    // Signals are taken synchronously (sigtimedwait); children get an empty mask from the harness.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);

    std::unique_ptr<PostgresPeer> pg;
    std::unique_ptr<SshdPeer> sshd;
    std::unique_ptr<IdpPeer> idp;
    std::vector<Watched> watched;
    try {
        std::filesystem::create_directories(args.dir);
        // A stale env file would tell a waiting script (scripts/demo.sh) that the peers are up.
        std::filesystem::remove(args.env_file);
        if (args.postgres) {
            PostgresOptions options;
            options.dir = fresh_subdir(args.dir, "postgres");
            pg = start_peer<PostgresPeer>("postgres", std::move(options));
            watched.push_back({"postgres", pg->pid(), pg->log_file()});
        }
        if (args.sshd) {
            SshdOptions options;
            options.dir = fresh_subdir(args.dir, "sshd");
            sshd = start_peer<SshdPeer>("sshd", std::move(options));
            watched.push_back({"sshd", sshd->pid(), sshd->log_file()});
        }
        if (args.idp) {
            IdpOptions options;
            options.dir = fresh_subdir(args.dir, "idp");
            idp = start_peer<IdpPeer>("idp", std::move(options));
            watched.push_back({"idp", idp->pid(), idp->log_file()});
        }
    } catch (const std::exception& e) {
        if (dynamic_cast<const PeerError*>(&e) == nullptr) {
            std::cerr << "gg-peers: " << e.what() << "\n";
        }
        return 1;  // the peers already started are stopped by their destructors
    }

    std::vector<std::pair<std::string, std::string>> env = {{"GG_PEERS_DIR", args.dir.string()}};
    if (pg) {
        env.insert(env.end(), {{"GG_PG_HOST", pg->host()},
                               {"GG_PG_PORT", std::to_string(pg->port())},
                               {"GG_PG_SUPERUSER", pg->superuser()},
                               {"GG_PG_PASSWORD", pg->superuser_password()},
                               {"GG_PG_TLS_CERT", pg->tls_cert().string()}});
    }
    if (sshd) {
        env.insert(env.end(), {{"GG_SSHD_HOST", sshd->host()},
                               {"GG_SSHD_PORT", std::to_string(sshd->port())},
                               {"GG_SSHD_USER", sshd->user()},
                               {"GG_SSHD_HOST_KEY", sshd->host_public_key()},
                               {"GG_SSHD_CLIENT_KEY", sshd->client_key().string()},
                               {"GG_SSHD_KNOWN_HOSTS", sshd->known_hosts().string()}});
    }
    if (idp) {
        env.insert(env.end(), {{"GG_IDP_ISSUER", idp->issuer()},
                               {"GG_IDP_PORT", std::to_string(idp->port())},
                               {"GG_IDP_CLIENT_ID", idp->client_id()}});
    }
    std::string env_text = "# written by gg-peers (pid " + std::to_string(getpid()) + "); use: . " +
                           shell_quote(args.env_file.string()) + "\n";
    for (const auto& [key, value] : env) {
        env_text += "export " + key + "=" + shell_quote(value) + "\n";
    }
    try {
        // Written whole, then renamed: whoever waits for the file never reads half of it.
        const auto partial = args.env_file.string() + ".partial";
        write_file(partial, env_text, 0600);
        std::filesystem::rename(partial, args.env_file);
    } catch (const std::exception& e) {
        std::cerr << "gg-peers: cannot write the env file: " << e.what() << "\n";
        return 1;
    }

    std::cout << "gg-peers: ready (pid " << getpid() << "); stop with Ctrl-C or kill -TERM " << getpid() << "\n";
    if (pg) {
        std::cout << "  postgres  127.0.0.1:" << pg->port() << "  superuser " << pg->superuser()
                  << " (password in the env file), TLS on, log " << pg->log_file().string() << "\n"
                  << "            psql \"host=127.0.0.1 port=" << pg->port() << " user=" << pg->superuser()
                  << " dbname=postgres sslmode=require\"   # with PGPASSWORD=$GG_PG_PASSWORD\n";
    }
    if (sshd) {
        std::cout << "  sshd      127.0.0.1:" << sshd->port() << "  user " << sshd->user() << ", host key "
                  << sshd->host_public_key() << ", log " << sshd->log_file().string() << "\n"
                  << "            ssh -i " << sshd->client_key().string() << " -o UserKnownHostsFile="
                  << sshd->known_hosts().string() << " -p " << sshd->port() << " " << sshd->user()
                  << "@127.0.0.1\n";
    }
    if (idp) {
        std::cout << "  idp       " << idp->issuer() << "  client " << idp->client_id()
                  << " (device flow; any login/password), log " << idp->log_file().string() << "\n"
                  << "            node " << (IdpPeer::scripts_dir() / "device-login.mjs").string()
                  << " --issuer " << idp->issuer() << " --user alice\n";
    }
    std::cout << "  env file  " << args.env_file.string() << "   (. " << shell_quote(args.env_file.string())
              << ")\n"
              << std::flush;

    int exit_code = 0;
    for (;;) {
        timespec tick{1, 0};
        const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
        if (sig > 0) {
            std::cout << "gg-peers: " << strsignal(sig) << ", stopping peers\n" << std::flush;
            break;
        }
        bool lost = false;
        for (const auto& w : watched) {
            if (!process_group_alive(w.pid)) {
                std::cerr << "gg-peers: " << w.name << " exited unexpectedly\n--- tail of " << w.log.string()
                          << " ---\n"
                          << tail_file(w.log, 30);
                lost = true;
            }
        }
        if (lost) {
            exit_code = 1;
            break;
        }
    }
    idp.reset();
    sshd.reset();
    pg.reset();
    std::cout << "gg-peers: stopped; data and logs kept in " << args.dir.string() << "\n";
    return exit_code;
}
