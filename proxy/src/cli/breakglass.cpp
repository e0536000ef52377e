// `glassgate breakglass stage|combine|list|revoke` and `glassgate emergency declare|end|status`.

#include <boost/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "internal.hpp"
#include "glassgate/config/loader.hpp"
#include "glassgate/proxy/breakglass/breakglass.hpp"
#include "glassgate/proxy/rotation/rotation.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::proxy::cli {
namespace bg = session::breakglass;

int cmd_breakglass_stage(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    const std::string account = args.positional.at(0);
    int shares = 0, threshold = 0;
    if (args.has("shares") || args.has("threshold")) {
        if (!args.has("shares") || !args.has("threshold")) throw UsageError("--shares and --threshold go together");
        shares = parse_count(*args.get("shares"), "shares");
        threshold = parse_count(*args.get("threshold"), "threshold");
        if (threshold < 2 || threshold > shares || shares > 255) {
            throw UsageError("need 2 <= --threshold <= --shares <= 255");
        }
    }
    if (!bg::is_breakglass_account(breakglass::rule_specs(cfg), account)) {
        io.err << "glassgate breakglass stage: no [[fallback]] rule in " << cfg.source.string() << " names account '"
               << account << "'\n";
        return exit_usage;
    }
    auto st = open_state(cfg);
    auto staged = breakglass::stage_account(*st.store, account, cli_actor(), now(), shares, threshold);
    if (staged.previous) {
        io.err << "account '" << account << "' re-staged: the previous passphrase (generation "
               << staged.previous->generation << ", " << bg::to_string(staged.previous->state) << ") is revoked\n";
    } else {
        io.err << "account '" << account << "' staged\n";
    }
    if (shares > 0) {
        io.err << "The passphrase is split into " << shares << " shares; any " << threshold
               << " of them recover it with `glassgate breakglass combine`.\n"
                  "Give one line to each custodian. Nothing else is stored; the passphrase is not shown.\n";
        for (const auto& s : staged.shares) io.out << s << "\n";
    } else {
        io.err << "Store this passphrase offline (it is shown once and only its hash is kept). It works once, only\n"
                  "in an emergency, for the targets the account's [[fallback]] rules allow:\n";
        io.out << staged.passphrase.reveal() << "\n";
    }
    return exit_ok;
}

int cmd_breakglass_combine(const Args& args, Io& io) {
    std::string text;
    if (auto f = args.get("from-file"); f && *f != "-") {
        std::ifstream in(*f);
        if (!in) throw OperationalError("cannot read " + *f);
        text.assign(std::istreambuf_iterator<char>(in), {});
    } else {
        text.assign(std::istreambuf_iterator<char>(std::cin), {});
    }
    std::vector<bg::Share> shares;
    std::istringstream lines(text);
    int lineno = 0;
    for (std::string line; std::getline(lines, line);) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto s = bg::parse_share(line);
        if (!s) throw OperationalError("line " + std::to_string(lineno) + " is not a valid share (typo? the checksum does not match)");
        shares.push_back(std::move(*s));
    }
    if (shares.empty()) throw OperationalError("no shares on the input (one per line)");
    if (shares.size() < shares.front().threshold) {
        throw OperationalError("need " + std::to_string(shares.front().threshold) + " shares, got " + std::to_string(shares.size()));
    }
    auto secret = bg::combine(shares);
    if (!secret || secret->size() != bg::passphrase_bytes) {
        throw OperationalError("these shares do not belong together (different thresholds, lengths or a repeated share)");
    }
    Secret pass(bg::format_passphrase(*secret));
    crypto::cleanse(secret->data(), secret->size());
    io.err << "passphrase recovered from " << shares.size() << " share(s)\n";
    io.out << pass.reveal() << "\n";
    return exit_ok;
}

int cmd_breakglass_list(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto st = open_state(cfg);
    auto accounts = breakglass::list_accounts(*st.store);
    if (args.has("json")) {
        boost::json::array a;
        for (const auto& acc : accounts) a.push_back(bg::to_json(acc, false));
        io.out << boost::json::serialize(a) << "\n";
        return exit_ok;
    }
    const auto jobs = rotation::pending_jobs(*st.store);
    for (const auto& acc : accounts) {
        io.out << acc.name << "  " << bg::to_string(acc.state) << "  staged " << fmt_time(acc.staged_at) << " by "
               << acc.staged_by << "  last-use " << fmt_time(acc.last_used);
        if (acc.shares > 0) io.out << "  shares " << acc.threshold << "-of-" << acc.shares;
        io.out << "  sessions ";
        if (acc.history.empty()) io.out << "-";
        for (std::size_t i = 0; i < acc.history.size(); ++i) io.out << (i ? "," : "") << acc.history[i];
        io.out << "\n";
        // The backend credential this account's session used is still valid until its rotation is done.
        for (const auto& j : jobs) {
            if (j.account != acc.name) continue;
            io.out << "  rotation of " << j.target << " pending since " << fmt_time(j.queued_at) << ", " << j.attempts
                   << " attempt(s)";
            if (!j.last_error.empty()) io.out << ", last error: " << j.last_error;
            io.out << "\n";
        }
    }
    // Accounts the rules name but nobody staged are worth seeing before an emergency, not during one.
    for (const auto& spec : breakglass::rule_specs(cfg)) {
        for (const auto& name : spec.accounts) {
            bool have = std::any_of(accounts.begin(), accounts.end(), [&](const bg::Account& a) { return a.name == name; });
            if (!have) {
                io.err << "note: account '" << name << "' (rule " << spec.name << ") is not staged\n";
                accounts.push_back(bg::Account{.name = name});
            }
        }
    }
    return exit_ok;
}

int cmd_breakglass_revoke(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto st = open_state(cfg);
    const std::string account = args.positional.at(0);
    for (int tries = 0; tries < 20; ++tries) {
        auto text = st.store->get(breakglass::accounts_namespace, account);
        if (!text) throw OperationalError("account '" + account + "' is not staged");
        auto acc = bg::account_from_json(*text);
        if (!acc) throw OperationalError("account '" + account + "' in the store is unreadable");
        auto next = bg::revoke(*acc, now());
        if (!next) throw OperationalError("account '" + account + "' is " + std::string(bg::to_string(acc->state)) + ", not staged");
        if (st.store->compare_and_set(breakglass::accounts_namespace, account, text, bg::serialize(*next))) {
            st.store->append_audit({.time = now(), .type = "breakglass.revoke", .session_id = {}, .identity = account,
                                    .target = {}, .source = cli_actor(), .outcome = "ok", .reason = "revoked", .details = {}});
            io.err << "account '" << account << "' revoked\n";
            return exit_ok;
        }
    }
    throw OperationalError("account '" + account + "' keeps changing; try again");
}

int cmd_emergency_declare(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto reason = args.get("reason");
    if (!reason) throw UsageError("--reason is required");
    auto clean = bg::clean_reason(*reason);
    if (!clean) throw UsageError("--reason must be non-empty text of at most 200 characters, without control characters");
    bg::Declaration d;
    d.reason = *clean;
    d.declared_by = cli_actor();
    d.declared_at = now();
    if (auto f = args.get("for")) {
        auto p = config::parse_duration(*f);
        if (!p.value || *p.value <= std::chrono::milliseconds(0)) throw UsageError("--for must be a duration such as 30m or 2h");
        d.until = d.declared_at + std::chrono::duration_cast<std::chrono::microseconds>(*p.value);
    }
    auto st = open_state(cfg);
    breakglass::declare_emergency(*st.store, d);
    io.err << "emergency declared" << (d.until ? " until " + fmt_time(d.until) : std::string(" until `glassgate emergency end`"))
           << ": rules with trigger = \"declared\" are armed\n";
    return exit_ok;
}

int cmd_emergency_end(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto st = open_state(cfg);
    if (!breakglass::end_emergency(*st.store, cli_actor(), now())) {
        io.err << "no emergency was declared\n";
        return exit_failure;
    }
    io.err << "emergency declaration ended\n";
    return exit_ok;
}

int cmd_emergency_status(const Args& args, Io& io) {
    auto cfg = load_config_or_throw(args, io);
    auto st = open_state(cfg);
    auto d = breakglass::load_declaration(*st.store);
    const bool active = d && d->active(now());
    auto jobs = rotation::pending_jobs(*st.store);
    if (args.has("json")) {
        boost::json::object o{{"declared", active}};
        o["declaration"] = d ? boost::json::value(bg::to_json(*d)) : boost::json::value(nullptr);
        boost::json::array r;
        for (const auto& j : jobs) r.push_back(rotation::to_json(j, false));
        o["rotation_pending"] = std::move(r);
        io.out << boost::json::serialize(o) << "\n";
        return exit_ok;
    }
    if (active) {
        io.out << "declared    by " << d->declared_by << " at " << fmt_time(d->declared_at) << ": " << d->reason
               << (d->until ? " (until " + fmt_time(d->until) + ")" : std::string()) << "\n";
    } else if (d) {
        io.out << "declared    no (the declaration of " << fmt_time(d->declared_at) << " expired at " << fmt_time(d->until) << ")\n";
    } else {
        io.out << "declared    no\n";
    }
    for (const auto& j : jobs) {
        io.out << "rotation    " << j.target << " pending since " << fmt_time(j.queued_at) << ", " << j.attempts
               << " attempt(s)" << (j.last_error.empty() ? "" : ", last error: " + j.last_error) << "\n";
    }
    io.out << "(the IdP's state is in `glassgate status`)\n";
    return exit_ok;
}

}  // namespace gg::proxy::cli
