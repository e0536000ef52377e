#pragma once
// The state store the configuration names: the embedded SQLite file in the state directory (the
// default, one instance), or the PostgreSQL database that several instances share ([store] postgres).

#include <memory>
#include <string>

#include "glassgate/config/config.hpp"
#include "glassgate/proxy/store/state_dir.hpp"
#include "glassgate/proxy/store/state_store.hpp"

namespace gg::proxy {

/// Where the state of `cfg` lives, for messages: "sqlite <path>" or "postgres (host=... dbname=...)".
std::string describe_store(const config::Config& cfg);

/// Opens the configured store. For the shared store the deployment's master key id (StateDir::key_id)
/// is recorded by the first instance; an instance whose master key differs is refused with
/// OperationalError (it could neither read the shared secrets nor extend the audit chain). Store
/// failures become OperationalError naming the store.
std::unique_ptr<StateStore> open_configured_store(const config::Config& cfg, const StateDir& dir);

/// Key/value namespace of deployment-wide facts ("master_key_id").
inline constexpr std::string_view deployment_namespace = "deployment";

}  // namespace gg::proxy
