// The PostgreSQL startup negotiation (protocols/postgres/startup.hpp StartupNegotiation), driven as
// the proxy drives it: the client's bytes arrive in flights (cut at points derived from the input),
// each action is done (bytes dropped, TLS "started") until the machine ends.
//   byte 0 : bit 0 [tls] configured, bit 1 plaintext allowed, bit 2 direct TLS negotiates ALPN
//            "postgresql", bit 3 deliver everything in one flight
//   rest   : what the client sends

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "fuzz_util.hpp"
#include "glassgate/protocols/postgres/startup.hpp"

using namespace gg;
using namespace gg::pg;

namespace {

std::optional<RouteTarget> lookup(std::string_view name) {
    if (name == "appdb") return RouteTarget{"app", {"reporting"}};
    if (name == "shop") return RouteTarget{"shop", {}};
    return std::nullopt;
}

bool terminal(const StartupAction& a) {
    return std::holds_alternative<ForwardCancel>(a) || std::holds_alternative<Disconnect>(a) ||
           std::holds_alternative<Deny>(a) || std::holds_alternative<Proceed>(a);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const unsigned flags = data[0];
    const StartupFacts facts{.tls_configured = (flags & 1u) != 0, .plaintext_allowed = (flags & 2u) != 0};
    const std::string alpn = (flags & 4u) != 0 ? "postgresql" : "";
    const ByteView client = fuzz::view(data + 1, size - 1);
    fuzz::Splits splits(client);
    auto flights = (flags & 8u) != 0 ? std::vector<ByteView>{client} : splits.chunks(client, 24);

    StartupNegotiation machine(facts, lookup);
    Bytes buffered;
    std::size_t next_flight = 0;
    bool tls_pending_s = false;
    for (int steps = 0; steps < 10000; ++steps) {
        auto step = machine.next(buffered);
        GG_FUZZ_CHECK(step.consumed <= buffered.size());
        if (terminal(step.action)) {
            if (const auto* p = std::get_if<Proceed>(&step.action)) {
                GG_FUZZ_CHECK(p->tls || facts.plaintext_allowed);
                GG_FUZZ_CHECK(p->tls == machine.tls());
                GG_FUZZ_CHECK(!p->user.empty());
                GG_FUZZ_CHECK(lookup(p->target).has_value());
                for (const auto& [name, value] : p->forward) {
                    GG_FUZZ_CHECK(name != "user" && name != "database" && name != "replication");
                    if (name == "options") {
                        // glassgate's own settings were taken out: nothing is left to take.
                        auto again = take_glassgate_options(value);
                        GG_FUZZ_CHECK(!again.reason.has_value());
                        GG_FUZZ_CHECK(again.forward.has_value() && *again.forward == value);
                    }
                }
            }
            // After the end, the machine only says Disconnect{} (nothing to send).
            auto after = machine.next(buffered);
            const auto* d = std::get_if<Disconnect>(&after.action);
            GG_FUZZ_CHECK(d != nullptr && d->sqlstate.empty());
            return 0;
        }
        if (const auto* more = std::get_if<ReadMore>(&step.action)) {
            GG_FUZZ_CHECK(step.consumed == 0);
            GG_FUZZ_CHECK(more->at_least > buffered.size());
            if (next_flight == flights.size()) return 0;  // the client stops sending
            const auto f = flights[next_flight++];
            buffered.insert(buffered.end(), f.begin(), f.end());
            continue;
        }
        buffered.erase(buffered.begin(), buffered.begin() + static_cast<std::ptrdiff_t>(step.consumed));
        if (const auto* tls = std::get_if<StartTls>(&step.action)) {
            GG_FUZZ_CHECK(facts.tls_configured);
            // 'S' is only answered when nothing unencrypted is left behind the SSLRequest.
            if (tls->answer_s) GG_FUZZ_CHECK(buffered.empty());
            tls_pending_s = tls->answer_s;
            // The handshake consumes the client's bytes; what follows arrives decrypted.
            buffered.clear();
            machine.tls_started(tls_pending_s ? "" : alpn);
            GG_FUZZ_CHECK(machine.tls());
            continue;
        }
        GG_FUZZ_CHECK(std::holds_alternative<Answer>(step.action));
        GG_FUZZ_CHECK(step.consumed > 0);
    }
    GG_FUZZ_CHECK(false && "the negotiation did not end");
    return 0;
}
