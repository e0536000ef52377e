#include "glassgate/proxy/cli/cli.hpp"

#include <algorithm>
#include <functional>
#include <iostream>

#include "internal.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy::cli {
namespace {

struct Command {
    std::string name;     ///< "sessions list"
    std::string args;     ///< positional synopsis, e.g. "TARGET"
    std::string summary;
    std::string details;  ///< extra help text
    std::vector<OptionSpec> options;
    std::size_t min_positional = 0;
    std::size_t max_positional = 0;
    std::function<int(const Args&, Io&)> run;
};

const OptionSpec opt_config{"config", "FILE", "configuration file (default: $GLASSGATE_CONFIG, then ./glassgate.toml)"};
const OptionSpec opt_json{"json", "", "print JSON instead of text"};
const OptionSpec opt_help{"help", "", "show this help"};

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"serve", "", "run the proxy", "Runs the PostgreSQL and SSH listeners and the admin socket until SIGINT/SIGTERM.",
         {opt_config, {"log-format", "text|json", "log line format (default: [log] format, else text)"},
          {"log-level", "LEVEL", "trace, debug, info, warn or error (default: [log] level, else info)"}},
         0, 0, cmd_serve},
        {"status", "", "show the running proxy's state (over its admin socket)",
         "Shows the identity provider's health and since when, the last probe, the mode (normal or\n"
         "emergency) and the number of active sessions. Exit 1 if `serve` is not running.",
         {opt_config, opt_json}, 0, 0, cmd_status},
        {"login", "", "sign in through the identity provider and print an SSO token",
         "Runs a device-code sign-in: the URL and code go to standard error, only the token to standard\n"
         "output, so `PGPASSWORD=$(glassgate login) psql ...` works. The IdP comes from [idp] in the\n"
         "configuration, or from --issuer and --client-id.",
         {opt_config, {"issuer", "URL", "identity provider issuer (instead of --config)"},
          {"client-id", "ID", "OAuth client id (with --issuer)"},
          {"ca-file", "FILE", "extra CA certificates for the IdP (with --issuer)"},
          {"cache", "", "reuse a cached token while it is valid; cache a new one (0600)"}},
         0, 0, cmd_login},
        {"config check", "", "validate a configuration file",
         "Prints every problem as FILE:LINE:COL: key.path: message; exit 2 if there is any.",
         {opt_config}, 0, 0, cmd_config_check},
        {"version", "", "print the version and library versions", "", {opt_json}, 0, 0, cmd_version},
        {"secret set", "TARGET", "store a target's backend secret, encrypted at rest",
         "Reads the secret (password or private key) from --from-file, or from standard input when no file or '-'\n"
         "is given. A single-line secret loses its trailing newline. A running `serve` uses the new secret for\n"
         "the next connection.",
         {opt_config, {"from-file", "FILE", "read the secret from FILE ('-': standard input)"}}, 1, 1, cmd_secret_set},
        {"secret list", "", "list targets that have a stored secret (never the values)", "", {opt_config, opt_json}, 0, 0,
         cmd_secret_list},
        {"sessions list", "", "list recorded sessions, oldest first",
         "One line per session: ID START STATE PROTOCOL AUTH IDENTITY TARGET DURATION CLOSE-REASON.\n"
         "--since takes a time (2026-11-23, 2026-11-23T10:00:00Z) or an age (2h, 30m, 7d).",
         {opt_config, {"user", "U", "only sessions of identity U"}, {"target", "T", "only sessions to target T"},
          {"since", "TIME", "only sessions started at or after TIME"},
          {"mode", "sso|breakglass", "only sessions authenticated this way"}, {"limit", "N", "only the newest N"},
          opt_json},
         0, 0, cmd_sessions_list},
        {"sessions show", "ID", "show one session in full", "", {opt_config, opt_json}, 1, 1, cmd_sessions_show},
        {"audit", "", "print the audit log, one JSON object per line",
         "Each line carries its hash chain fields (seq, prev, hash, mac, and sig when signed); `glassgate verify\n"
         "--audit` checks them. The whole log (no filter) saved to a file is an export anyone can check with the\n"
         "public key: `glassgate audit > audit.jsonl; glassgate verify --audit audit.jsonl --public-key proxy.pub`.",
         {opt_config, {"session", "ID", "only events of session ID"}, {"event", "TYPE", "only events of this type (e.g. auth.denied)"}},
         0, 0, cmd_audit},
        {"replay", "ID", "show a recorded session",
         "PostgreSQL sessions print as a transcript: time offset, statements, parameters, rows as recorded,\n"
         "command tags, errors. SSH sessions play in the terminal at recorded speed (terminal output on\n"
         "standard output; exec command lines, stderr, exit status and notes on standard error).\n"
         "Exit 1 (after printing) if the recording fails verification.",
         {opt_config, {"no-rows", "", "leave out result rows (PostgreSQL)"},
          {"speed", "N", "play N times faster (SSH; default 1)"},
          {"skip-idle", "", "shorten pauses to at most 1 s (SSH)"}},
         1, 1, cmd_replay},
        {"export", "ID", "export a session: asciicast v2 (for asciinema play) or the signed recording itself",
         "asciicast: writes the session's terminal output, input and window sizes as an asciicast v2 document:\n"
         "`glassgate export ID | asciinema play -`.\n"
         "ggrec: copies the recording file, as written and signed, to --output FILE and the proxy's public key to\n"
         "FILE.pub, so that `glassgate verify FILE --public-key FILE.pub` checks it on any machine, without the\n"
         "proxy's secrets (confirm FILE.pub against `glassgate keys show` out of band).\n"
         "Exit 1 if the recording fails verification.",
         {opt_config, {"format", "asciicast|ggrec", "output format (default asciicast)"},
          {"output", "FILE", "write to FILE instead of standard output"}},
         1, 1, cmd_export},
        {"target pin", "NAME", "fetch an SSH target's host key for the configuration",
         "Connects to the target, prints the host key it presents as \"<type> <base64>\" (the form host_key\n"
         "takes) and says on standard error whether it equals the pinned one. Confirm it out of band.",
         {opt_config}, 1, 1, cmd_target_pin},
        {"verify", "ID | --all | PATH --public-key KEYFILE", "check recording integrity",
         "Verifies each recording's hash chain, checkpoints and seal, and compares the seal with the sessions\n"
         "index (detects truncation). --audit also verifies the audit log chain. Exit 1 if anything is broken.\n"
         "With --public-key, PATH is a recording file (.ggrec) or, with --audit, an audit log saved by\n"
         "`glassgate audit`: it is checked by the Ed25519 signatures alone (KEYFILE holds the line `glassgate\n"
         "keys show` prints), with no configuration and no state directory. Exit 0 when intact, sealed and\n"
         "every checkpoint signed by that key; 1 when broken, unsigned or signed by another key; 3 when intact\n"
         "and signed but not sealed (cut short, or the proxy stopped before closing it).",
         {opt_config, {"all", "", "verify every session"}, {"audit", "", "verify the audit log chain too"},
          {"public-key", "KEYFILE", "verify the file PATH by this public key, without configuration or state"}, opt_json},
         0, 1, cmd_verify},
        {"keys show", "", "print the public key that signs recordings and the audit log",
         "Prints \"ed25519:<base64>\" on standard output (save it: `glassgate keys show > proxy.pub`) and its\n"
         "fingerprint on standard error. The key pair is derived from the state directory's master key.",
         {opt_config}, 0, 0, cmd_keys_show},
        {"breakglass stage", "ACCOUNT", "stage an emergency account: print a new single-use passphrase",
         "Generates a 160-bit passphrase, prints it once alone on standard output (explanations go to standard\n"
         "error, so PASS=$(glassgate breakglass stage ...) works) and stores only its Argon2id hash, state\n"
         "`staged`. Re-staging revokes the previous passphrase. With --shares N --threshold K the passphrase is\n"
         "not printed: N custodian shares are, one per line, and any K of them recover it (breakglass combine).",
         {opt_config, {"shares", "N", "split into N Shamir shares (2..255)"},
          {"threshold", "K", "shares needed to recover the passphrase (2..N)"}},
         1, 1, cmd_breakglass_stage},
        {"breakglass combine", "", "recover a passphrase from custodian shares (read from standard input)",
         "Reads one share per line (K of them) and prints the passphrase alone on standard output. Needs no\n"
         "configuration and no state: custodians can run it on an offline machine.",
         {{"from-file", "FILE", "read the shares from FILE instead of standard input"}}, 0, 0, cmd_breakglass_combine},
        {"breakglass list", "", "list emergency accounts and their state",
         "One line per account: NAME STATE (staged, in-use, used, revoked), staged-at and by whom, last use and\n"
         "the sessions that used it. Never shows passphrases or hashes.",
         {opt_config, opt_json}, 0, 0, cmd_breakglass_list},
        {"breakglass revoke", "ACCOUNT", "revoke a staged emergency passphrase", "", {opt_config}, 1, 1,
         cmd_breakglass_revoke},
        {"emergency declare", "", "declare an emergency: arms [[fallback]] rules with trigger = \"declared\"",
         "The declaration is stored in the state directory, so a running serve sees it at once. It ends with\n"
         "`glassgate emergency end` or when --for has passed.",
         {opt_config, {"reason", "TEXT", "why (written to the audit log and the alerts); required"},
          {"for", "DURATION", "end the declaration automatically after DURATION (e.g. 2h)"}},
         0, 0, cmd_emergency_declare},
        {"emergency end", "", "end the emergency declaration", "", {opt_config}, 0, 0, cmd_emergency_end},
        {"emergency status", "", "show the emergency declaration and pending credential rotations", "",
         {opt_config, opt_json}, 0, 0, cmd_emergency_status},
    };
    return table;
}


const std::vector<std::string> groups = {"config", "secret", "sessions", "breakglass", "emergency", "target", "keys"};

void print_usage(std::ostream& os) {
    os << "usage: glassgate <command> [options]\n\ncommands:\n";
    for (const auto& c : commands()) {
        std::string left = c.name + (c.args.empty() ? "" : " " + c.args);
        os << "  " << left << std::string(left.size() < 26 ? 26 - left.size() : 1, ' ') << c.summary << "\n";
    }
    os << "\nRun `glassgate <command> --help` for a command's options.\n"
          "Exit codes: 0 ok, 1 operational failure, 2 usage or configuration error.\n";
}

void print_help(const Command& c, std::ostream& os) {
    os << "usage: glassgate " << c.name << (c.args.empty() ? "" : " " + c.args) << " [options]\n\n" << c.summary << ".\n";
    if (!c.details.empty()) os << "\n" << c.details << "\n";
    os << "\noptions:\n";
    auto all = c.options;
    all.push_back(opt_help);
    for (const auto& o : all) {
        std::string left = "--" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
        os << "  " << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << o.help << "\n";
    }
}

}  // namespace

Args parse_args(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs) {
    Args a;
    bool only_positional = false;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string& s = argv[i];
        if (only_positional || s.size() < 2 || s[0] != '-' || s == "-") {
            a.positional.push_back(s);
            continue;
        }
        if (s == "--") {
            only_positional = true;
            continue;
        }
        if (s == "-h") {
            a.options["help"] = "";
            continue;
        }
        if (s.rfind("--", 0) != 0) throw UsageError("unknown option '" + s + "'");
        std::string name = s.substr(2);
        std::optional<std::string> value;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        }
        auto it = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& o) { return o.name == name; });
        if (it == specs.end()) throw UsageError("unknown option '--" + name + "'");
        if (it->value_name.empty()) {
            if (value) throw UsageError("option '--" + name + "' takes no value");
            a.options[name] = "";
        } else {
            if (!value) {
                if (i + 1 >= argv.size()) throw UsageError("option '--" + name + "' needs a value (" + it->value_name + ")");
                value = argv[++i];
            }
            if (a.has(name)) throw UsageError("option '--" + name + "' given twice");
            a.options[name] = *value;
        }
    }
    return a;
}

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
    Io io{out, err};
    if (argv.empty()) {
        print_usage(err);
        return exit_usage;
    }
    if (argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
        print_usage(out);
        return exit_ok;
    }
    if (argv[0] == "--version") return cmd_version({}, io);

    std::string name = argv[0];
    std::size_t consumed = 1;
    if (std::find(groups.begin(), groups.end(), name) != groups.end()) {
        if (argv.size() < 2 || argv[1].rfind("-", 0) == 0) {
            err << "glassgate " << name << ": missing subcommand; one of:";
            for (const auto& c : commands()) {
                if (c.name.rfind(name + " ", 0) == 0) err << " " << c.name.substr(name.size() + 1);
            }
            err << "\n";
            return exit_usage;
        }
        name += " " + argv[1];
        consumed = 2;
    }
    auto it = std::find_if(commands().begin(), commands().end(), [&](const Command& c) { return c.name == name; });
    if (it == commands().end()) {
        err << "glassgate: unknown command '" << name << "'; run `glassgate --help` for the list\n";
        return exit_usage;
    }
    const Command& cmd = *it;
    std::vector<std::string> rest(argv.begin() + static_cast<std::ptrdiff_t>(consumed), argv.end());
    auto specs = cmd.options;
    specs.push_back(opt_help);
    try {
        Args args = parse_args(rest, specs);
        if (args.has("help")) {
            print_help(cmd, out);
            return exit_ok;
        }
        if (args.positional.size() < cmd.min_positional || args.positional.size() > cmd.max_positional) {
            throw UsageError(args.positional.size() < cmd.min_positional
                                 ? "missing argument " + cmd.args
                                 : "unexpected argument '" + args.positional.back() + "'");
        }
        return cmd.run(args, io);
    } catch (const UsageError& e) {
        err << "glassgate " << cmd.name << ": " << e.what() << " (see `glassgate " << cmd.name << " --help`)\n";
        return exit_usage;
    } catch (const ConfigError& e) {
        if (*e.what()) err << "glassgate " << cmd.name << ": " << e.what() << "\n";
        return exit_usage;
    } catch (const OperationalError& e) {
        err << "glassgate " << cmd.name << ": " << e.what() << "\n";
        return exit_failure;
    } catch (const StoreError& e) {
        err << "glassgate " << cmd.name << ": " << e.what() << "\n";
        return exit_failure;
    } catch (const std::exception& e) {
        err << "glassgate " << cmd.name << ": " << e.what() << "\n";
        return exit_failure;
    }
}

}  // namespace gg::proxy::cli
