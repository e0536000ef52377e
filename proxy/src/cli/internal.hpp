#pragma once
// Private to the CLI: command implementations and shared helpers.

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "glassgate/config/config.hpp"
#include "glassgate/proxy/cli/cli.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"
#include "glassgate/session/recording.hpp"

namespace gg::proxy::cli {

/// `verify PATH --public-key KEYFILE`: intact and signed, but not sealed (cut short or never closed).
inline constexpr int exit_incomplete = 3;

struct Io {
    std::ostream& out;
    std::ostream& err;
};

/// A configuration problem already reported to the user: exit 2.
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// --config, then $GLASSGATE_CONFIG, then ./glassgate.toml. Prints every issue to `err` and throws
/// ConfigError if the file is missing or invalid.
config::Config load_config_or_throw(const Args& args, Io& io);

/// The state directory and store of a configuration, opened for a CLI command.
struct State {
    std::unique_ptr<StateDir> dir;
    std::unique_ptr<StateStore> store;
};
State open_state(const config::Config& cfg);

/// A session's recording, read and verified (a warning on `err` when it fails verification).
/// Throws OperationalError when the session or its file does not exist.
session::DecodedRecording load_recording(const config::Config& cfg, const std::string& id, Io& io);
/// Plays a terminal (ssh) recording to `out` at recorded speed (--speed N, --skip-idle).
int replay_terminal(const session::DecodedRecording& rec, const Args& args, Io& io);

/// The current user for audit events from CLI commands ("cli:root").
std::string cli_actor();
/// Now, as session times are kept (microseconds).
session::TimePoint now();
/// A time for a terminal: "2026-11-23T19:04:35Z"; "-" for none.
std::string fmt_time(session::TimePoint t);
std::string fmt_time(const std::optional<session::TimePoint>& t);
/// The rest of a stream.
std::string read_stream(std::istream& in);
/// A whole number option value ("--shares 5"); UsageError naming the option otherwise.
int parse_count(std::string_view value, const char* option);

int cmd_version(const Args&, Io&);
int cmd_config_check(const Args&, Io&);
int cmd_secret_set(const Args&, Io&);
int cmd_secret_list(const Args&, Io&);
int cmd_sessions_list(const Args&, Io&);
int cmd_sessions_show(const Args&, Io&);
int cmd_verify(const Args&, Io&);
/// `verify PATH --public-key KEYFILE [--audit]`: no configuration, no state directory (keys.cpp).
int cmd_verify_public_key(const Args&, Io&);
int cmd_keys_show(const Args&, Io&);
int cmd_replay(const Args&, Io&);
int cmd_export(const Args&, Io&);
int cmd_target_pin(const Args&, Io&);
int cmd_audit(const Args&, Io&);
int cmd_serve(const Args&, Io&);
int cmd_login(const Args&, Io&);
int cmd_status(const Args&, Io&);
int cmd_breakglass_stage(const Args&, Io&);
int cmd_breakglass_combine(const Args&, Io&);
int cmd_breakglass_list(const Args&, Io&);
int cmd_breakglass_revoke(const Args&, Io&);
int cmd_emergency_declare(const Args&, Io&);
int cmd_emergency_end(const Args&, Io&);
int cmd_emergency_status(const Args&, Io&);

}  // namespace gg::proxy::cli
