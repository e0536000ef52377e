#include "glassgate/proxy/store/state_store.hpp"

#include <spdlog/spdlog.h>

namespace gg::proxy {

bool append_audit_logged(StateStore& store, const session::AuditEvent& ev) noexcept {
    try {
        store.append_audit(ev);
        return true;
    } catch (const std::exception& e) {
        spdlog::error("cannot write audit event {}{}: {}", ev.type, ev.session_id.empty() ? "" : " of session " + ev.session_id,
                      e.what());
    } catch (...) {
        spdlog::error("cannot write audit event {}: unknown error", ev.type);
    }
    return false;
}

}  // namespace gg::proxy
