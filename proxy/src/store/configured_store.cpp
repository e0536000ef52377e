#include "glassgate/proxy/store/configured_store.hpp"

#include <sstream>

namespace gg::proxy {

namespace {

/// The connection string's host/port/dbname/user keywords only (never a secret), for messages.
std::string conninfo_summary(const std::string& conninfo) {
    if (conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://")) {
        // postgresql://[user@]host[:port][,host...]/db?params: drop the query (params).
        return conninfo.substr(0, conninfo.find('?'));
    }
    std::istringstream in(conninfo);
    std::string word, out;
    while (in >> word) {
        for (const char* k : {"host=", "hostaddr=", "port=", "dbname=", "user="}) {
            if (word.starts_with(k)) out += (out.empty() ? "" : " ") + word;
        }
    }
    return out;
}

}  // namespace

std::string describe_store(const config::Config& cfg) {
    if (cfg.store.postgres) return "postgres (" + conninfo_summary(*cfg.store.postgres) + ")";
    return "sqlite " + (cfg.server.state_dir / "glassgate.db").string();
}

std::unique_ptr<StateStore> open_configured_store(const config::Config& cfg, const StateDir& dir) {
    if (!cfg.store.postgres) {
        try {
            return open_sqlite_store(dir.store_file(), dir.audit_key(), dir.signing_seed());
        } catch (const StoreError& e) {
            throw OperationalError(e.what());
        }
    }
    std::unique_ptr<StateStore> store;
    try {
        store = open_postgres_store(*cfg.store.postgres, dir.audit_key(), dir.signing_seed());
        const std::string key = "master_key_id";
        if (!store->compare_and_set(deployment_namespace, key, std::nullopt, dir.key_id())) {
            const auto recorded = store->get(deployment_namespace, key);
            if (recorded && *recorded != dir.key_id()) {
                throw OperationalError("the master key " + dir.master_key_file().string() + " (key id " + dir.key_id() +
                                       ") is not this deployment's (key id " + *recorded + ", recorded in the shared store " +
                                       describe_store(cfg) +
                                       "): every instance needs the same master key; copy it from an existing instance "
                                       "([server] master_key_file, docs/ha.md)");
            }
        }
    } catch (const StoreError& e) {
        throw OperationalError(e.what());
    }
    return store;
}

}  // namespace gg::proxy
