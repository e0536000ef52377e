#include "glassgate/proxy/breakglass/breakglass.hpp"

#include "glassgate/session/time_cap.hpp"

#include <sodium.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include "glassgate/proxy/ops/logging.hpp"
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include "glassgate/config/loader.hpp"
#include "glassgate/protocols/crypto.hpp"
#include "glassgate/proxy/rotation/rotation.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::proxy::breakglass {
namespace asio = boost::asio;

namespace {

session::TimePoint now_tp() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

void ensure_sodium() {
    static const int rc = sodium_init();
    if (rc < 0) throw crypto::CryptoError("libsodium could not be initialised");
}

constexpr std::string_view declaration_key = "declaration";

}  // namespace

// --- hashing -----------------------------------------------------------------------------------

std::string hash_passphrase(std::string_view normalised) {
    ensure_sodium();
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(out, normalised.data(), normalised.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        throw crypto::CryptoError("Argon2id hashing failed (out of memory?)");
    }
    return out;
}

bool verify_passphrase(const std::string& hash, const Secret& typed) {
    ensure_sodium();
    // A malformed typed value still pays for one verification, against its raw bytes.
    auto norm = bg::normalize_passphrase(typed.reveal());
    const std::string_view candidate = norm ? std::string_view(*norm) : typed.reveal();
    const bool ok = crypto_pwhash_str_verify(hash.c_str(), candidate.data(), candidate.size()) == 0;
    if (norm) crypto::cleanse(norm->data(), norm->size());
    return ok && norm.has_value();
}

// --- store operations --------------------------------------------------------------------------

std::optional<bg::Account> load_account(StateStore& store, std::string_view name) {
    auto v = store.get(accounts_namespace, name);
    if (!v) return std::nullopt;
    auto a = bg::account_from_json(*v);
    if (!a) throw StoreError("break-glass account '" + std::string(name) + "' in the store is unreadable");
    return a;
}

std::vector<bg::Account> list_accounts(StateStore& store) {
    std::vector<bg::Account> out;
    for (auto& [k, v] : store.list(accounts_namespace)) {
        auto a = bg::account_from_json(v);
        if (!a) throw StoreError("break-glass account '" + k + "' in the store is unreadable");
        out.push_back(std::move(*a));
    }
    return out;
}

Staged stage_account(StateStore& store, const std::string& account, const std::string& by, session::TimePoint now,
                     int shares, int threshold) {
    if (shares != 0 && (threshold < 2 || threshold > shares || shares > 255)) {
        throw std::invalid_argument("need 2 <= threshold <= shares <= 255");
    }
    auto raw = crypto::random_bytes(bg::passphrase_bytes);
    Staged out;
    out.passphrase = Secret(bg::format_passphrase(raw));
    if (shares > 0) {
        auto coeff = crypto::random_bytes(static_cast<std::size_t>(threshold - 1) * raw.size());
        auto split = bg::split(raw, shares, threshold, coeff);
        crypto::cleanse(coeff.data(), coeff.size());
        if (!split) throw std::invalid_argument("cannot split the passphrase");
        for (const auto& s : *split) out.shares.push_back(bg::format_share(s));
    }
    crypto::cleanse(raw.data(), raw.size());
    const auto hash = hash_passphrase(out.passphrase.reveal());
    // Compare-and-set against what we read, so a concurrent consume is never silently overwritten.
    for (int tries = 0;; ++tries) {
        auto prev_text = store.get(accounts_namespace, account);
        std::optional<bg::Account> prev;
        if (prev_text) prev = bg::account_from_json(*prev_text);
        auto acc = bg::stage(prev, account, hash, by, now, shares, threshold);
        if (store.compare_and_set(accounts_namespace, account, prev_text, bg::serialize(acc))) {
            out.account = std::move(acc);
            out.previous = std::move(prev);
            break;
        }
        if (tries > 20) throw StoreError("break-glass account '" + account + "' keeps changing; try again");
    }
    boost::json::object details{{"generation", out.account.generation}, {"shares", shares}, {"threshold", threshold}};
    if (out.previous) {
        details["revoked_generation"] = out.previous->generation;
        details["previous_state"] = bg::to_string(out.previous->state);
    }
    append_audit_logged(store, {.time = now, .type = "breakglass.stage", .session_id = {}, .identity = account, .target = {},
                         .source = by, .outcome = "ok",
                         .reason = out.previous ? "re-staged: the previous passphrase is revoked" : "staged",
                         .details = details});
    return out;
}

std::optional<bg::Declaration> load_declaration(StateStore& store) {
    auto v = store.get(emergency_namespace, declaration_key);
    if (!v) return std::nullopt;
    return bg::declaration_from_json(*v);
}

void declare_emergency(StateStore& store, const bg::Declaration& d) {
    store.put(emergency_namespace, declaration_key, boost::json::serialize(bg::to_json(d)));
    boost::json::object details;
    if (d.until) details["until"] = session::format_utc(*d.until);
    append_audit_logged(store, {.time = d.declared_at, .type = "emergency.declare", .session_id = {}, .identity = d.declared_by,
                         .target = {}, .source = {}, .outcome = "ok", .reason = d.reason, .details = details});
}

bool end_emergency(StateStore& store, const std::string& by, session::TimePoint now) {
    auto prev = store.get(emergency_namespace, declaration_key);
    if (!prev) return false;
    if (!store.compare_and_set(emergency_namespace, declaration_key, prev, std::nullopt)) return false;
    auto d = bg::declaration_from_json(*prev);
    append_audit_logged(store, {.time = now, .type = "emergency.end", .session_id = {}, .identity = by, .target = {},
                         .source = {}, .outcome = "ok", .reason = d ? d->reason : std::string(), .details = {}});
    return true;
}

std::vector<bg::RuleSpec> rule_specs(const config::Config& cfg) {
    std::vector<bg::RuleSpec> out;
    for (const auto& r : cfg.fallbacks) {
        out.push_back({r.name,
                       r.trigger == config::FallbackTrigger::declared ? bg::Trigger::declared : bg::Trigger::idp_unreachable,
                       r.accounts, r.targets});
    }
    return out;
}

// --- the authenticator ---------------------------------------------------------------------

std::string_view to_string(Outcome o) noexcept {
    switch (o) {
        case Outcome::granted: return "granted";
        case Outcome::outside_emergency: return "outside_emergency";
        case Outcome::no_rule: return "no_rule";
        case Outcome::reason_required: return "reason_required";
        case Outcome::throttled: return "throttled";
        case Outcome::bad_passphrase: return "bad_passphrase";
        case Outcome::not_staged: return "not_staged";
        case Outcome::error: return "error";
    }
    return "?";
}

void declare_metrics(Metrics& m) {
    m.declare("glassgate_breakglass_logins_total", Metrics::Type::counter,
              "Break-glass login attempts by protocol and outcome.");
    m.declare("glassgate_emergency_mode", Metrics::Type::gauge, "1 while the proxy is in emergency mode.");
}

Service::Service(const config::Config& cfg, StateStore& store, std::shared_ptr<identity::IdentityProvider> idp,
                 Metrics& metrics, std::shared_ptr<Notifier> notifier, std::shared_ptr<asio::thread_pool> pool)
    : cfg_(cfg),
      store_(store),
      idp_(std::move(idp)),
      metrics_(metrics),
      notifier_(std::move(notifier)),
      pool_(std::move(pool)),
      rules_(rule_specs(cfg)) {
    // Unknown accounts are verified against this, so they take as long as known ones.
    auto r = crypto::random_bytes(bg::passphrase_bytes);
    dummy_hash_ = hash_passphrase(bg::format_passphrase(r));
}

bg::Mode Service::mode(session::TimePoint now) const {
    const bool unreachable = idp_ && idp_->state() == oidc::IdpHealth::unreachable;
    std::optional<bg::Declaration> d;
    try {
        d = load_declaration(store_);
    } catch (const std::exception& e) {
        spdlog::error("breakglass: cannot read the emergency declaration: {}", e.what());
    }
    return bg::make_mode(unreachable, d, now);
}

bool Service::is_account(std::string_view account) const { return bg::is_breakglass_account(rules_, account); }

std::vector<std::string> Service::all_notify_urls() const {
    std::vector<std::string> out;
    for (const auto& r : cfg_.fallbacks) {
        for (const auto& u : r.notify) {
            if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(u);
        }
    }
    return out;
}

void Service::audit(const std::string& type, const std::string& outcome, const Attempt& a, const std::string& reason,
                    boost::json::object details) {
    details["protocol"] = a.protocol;
    details["auth"] = "breakglass";
    if (!a.reason.empty()) details["stated_reason"] = a.reason;
    append_audit_logged(store_, {.time = now_tp(), .type = type, .session_id = a.session_id, .identity = a.account,
                          .target = a.target, .source = a.source, .outcome = outcome, .reason = reason,
                          .details = std::move(details)});
}

void Service::alert(const std::vector<std::string>& urls, const std::string& event, const Attempt& a,
                    const std::string& reason, const bg::Mode& mode, boost::json::object extra) {
    if (!notifier_ || urls.empty()) return;
    Alert al{.event = event, .account = a.account, .target = a.target, .reason = reason, .source = a.source,
             .session = a.session_id, .time = now_tp(), .mode = std::string(mode.name()), .extra = std::move(extra)};
    notifier_->send(urls, al);
}

asio::awaitable<Decision> Service::authenticate(const Attempt& attempt) {
    auto self = shared_from_this();
    Attempt copy = attempt;
    // Argon2id takes ~100 ms and 64 MiB: never on an io thread. co_spawn onto the pool and resume here.
    auto work = [self, copy = std::move(copy)]() -> asio::awaitable<Decision> {
        co_return self->authenticate_blocking(copy, now_tp());
    };
    auto d = co_await asio::co_spawn(pool_->get_executor(), std::move(work), asio::use_awaitable);
    co_return d;
}

Decision Service::authenticate_blocking(const Attempt& a, session::TimePoint now) {
    Decision d;
    d.mode = mode(now);
    observe_mode(d.mode);
    const std::string account_key = "account:" + a.account;
    const std::string source_key = "source:" + a.source.substr(0, a.source.rfind(':'));
    auto deny = [&](Outcome o, std::string pub, std::string why) {
        d.outcome = o;
        d.public_message = std::move(pub);
        d.log_reason = std::move(why);
        metrics_.inc("glassgate_breakglass_logins_total", {{"protocol", a.protocol}, {"outcome", std::string(to_string(o))}});
        spdlog::warn("breakglass {}: {} for account {} to {} from {}", to_string(o), d.log_reason, a.account, a.target, a.source);
        return d;
    };

    // 1. The gate: only in an emergency. Outside one this is misuse (or a drill nobody declared): alert.
    auto m = bg::match_rule(rules_, d.mode, a.account, a.target);
    if (!d.mode.emergency()) {
        audit("breakglass.refused", "denied", a, "emergency account used outside an emergency");
        alert(all_notify_urls(), "breakglass.outside_emergency", a, "emergency account used outside an emergency", d.mode);
        return deny(Outcome::outside_emergency,
                    "no emergency is in effect: single sign-on is available, sign in with your own account",
                    "emergency account used outside an emergency");
    }
    if (!m.rule) {
        const std::string why = std::string(bg::to_string(m.why));
        audit("breakglass.refused", "denied", a, why);
        std::vector<std::string> urls;
        for (const auto& r : cfg_.fallbacks) {
            if (std::find(r.accounts.begin(), r.accounts.end(), a.account) == r.accounts.end()) continue;
            for (const auto& u : r.notify) {
                if (std::find(urls.begin(), urls.end(), u) == urls.end()) urls.push_back(u);
            }
        }
        alert(urls, "breakglass.refused", a, why, d.mode);
        return deny(Outcome::no_rule, "this emergency account may not use target \"" + a.target + "\" now", why);
    }
    const auto& rule = cfg_.fallbacks[*m.rule];
    const auto* target = cfg_.find_target(a.target);
    auto reason = bg::clean_reason(a.reason);
    if (rule.require_reason && !reason) {
        audit("breakglass.refused", "denied", a, "no reason given (rule " + rule.name + " requires one)");
        return deny(Outcome::reason_required,
                    "an emergency login needs a reason: add options='-c glassgate.reason=INC-123' (or PGOPTIONS)",
                    "no reason given");
    }

    // 2. Failure limits, before any verification work.
    {
        std::lock_guard lk(mu_);
        auto ua = limiter_.blocked_until(account_key, now);
        auto us = limiter_.blocked_until(source_key, now);
        if (ua || us) {
            const auto until = std::max(ua.value_or(session::TimePoint{}), us.value_or(session::TimePoint{}));
            audit("breakglass.refused", "denied", a, "throttled after repeated failures until " + session::format_utc(until));
            return deny(Outcome::throttled, "too many failed emergency logins: wait and try again",
                        "throttled until " + session::format_utc(until));
        }
    }

    // 3. The passphrase. Unknown or unreadable accounts are checked against the dummy hash (same cost).
    std::optional<std::string> stored;
    std::optional<bg::Account> acc;
    try {
        stored = store_.get(accounts_namespace, a.account);
        if (stored) acc = bg::account_from_json(*stored);
    } catch (const std::exception& e) {
        (void)verify_passphrase(dummy_hash_, a.passphrase);
        audit("breakglass.refused", "error", a, std::string("state store: ") + e.what());
        return deny(Outcome::error, "glassgate cannot check emergency credentials now", std::string("store: ") + e.what());
    }
    const bool verified = verify_passphrase(acc ? acc->hash : dummy_hash_, a.passphrase) && acc.has_value();
    if (!verified) {
        int na = 0, ns = 0;
        {
            std::lock_guard lk(mu_);
            na = limiter_.failure(account_key, now);
            ns = limiter_.failure(source_key, now);
        }
        audit("breakglass.refused", "denied", a, acc ? "wrong passphrase" : "account not staged",
              {{"failures_account", na}, {"failures_source", ns}});
        if (na % 5 == 0 || ns % 5 == 0) {
            alert(rule.notify, "breakglass.failures", a, "repeated failed emergency logins", d.mode,
                  {{"failures_account", na}, {"failures_source", ns}});
        }
        return deny(Outcome::bad_passphrase, "emergency login failed for \"" + a.account + "\"",
                    acc ? "wrong passphrase" : "account was never staged");
    }
    if (acc->state != bg::AccountState::staged) {
        const std::string why = "credential already " + std::string(bg::to_string(acc->state)) +
                                (acc->session.empty() ? "" : " (session " + acc->session + ")");
        audit("breakglass.refused", "denied", a, why);
        alert(rule.notify, "breakglass.replay", a, why, d.mode);
        return deny(Outcome::not_staged,
                    "this emergency credential was already used; a custodian must stage a new one", why);
    }

    // 4. Consume atomically, before any backend is contacted: exactly one of any number of racers wins,
    //    across threads and processes. A crash after this leaves the credential consumed.
    auto next = bg::consume(*acc, a.session_id, a.target, reason.value_or(""), a.source, now);
    bool won = false;
    try {
        won = next && store_.compare_and_set(accounts_namespace, a.account, stored, bg::serialize(*next));
    } catch (const std::exception& e) {
        audit("breakglass.refused", "error", a, std::string("state store: ") + e.what());
        return deny(Outcome::error, "glassgate cannot check emergency credentials now", std::string("store: ") + e.what());
    }
    if (!won) {
        audit("breakglass.refused", "denied", a, "lost the race: another login consumed this credential first");
        alert(rule.notify, "breakglass.replay", a, "concurrent use of one emergency credential", d.mode);
        return deny(Outcome::not_staged, "this emergency credential was already used; a custodian must stage a new one",
                    "another login consumed the credential first");
    }
    {
        std::lock_guard lk(mu_);
        limiter_.success(account_key);
    }
    Grant g;
    g.account = a.account;
    g.generation = next->generation;
    g.session_id = a.session_id;
    g.target = a.target;
    g.reason = reason.value_or("");
    g.source = a.source;
    g.protocol = a.protocol;
    g.rule_index = *m.rule;
    g.rule_name = rule.name;
    // The rule's cap, never above the target's (session/time_cap.hpp decides, for both protocols).
    const auto limits = session::breakglass_limits({.cap = target ? target->max_session : std::nullopt},
                                                   rule.max_session, rule.warn_before);
    g.max_session = *limits.cap;
    g.warn_before = limits.warn_before;
    g.rotate_on_close = rule.rotate_on_close;
    g.notify = rule.notify;
    d.outcome = Outcome::granted;
    d.grant = g;
    d.log_reason = "rule " + rule.name;
    metrics_.inc("glassgate_breakglass_logins_total", {{"protocol", a.protocol}, {"outcome", "granted"}});
    Attempt shown = a;
    shown.reason = g.reason;
    audit("breakglass.login", "ok", shown, g.reason,
          {{"rule", rule.name}, {"generation", g.generation}, {"mode", d.mode.name()}, {"mode_reason", d.mode.reason()},
           {"max_session", config::format_duration(g.max_session)}});
    alert(rule.notify, "breakglass.login", shown, g.reason, d.mode, {{"rule", rule.name}});
    spdlog::warn("breakglass login: account {} -> {} (rule {}, reason \"{}\") from {}, session {}", a.account, a.target,
                 rule.name, g.reason, a.source, a.session_id);
    return d;
}

void Service::session_closed(const Grant& g, std::string_view close_reason, session::TimePoint now) {
    Attempt a{.account = g.account, .passphrase = {}, .reason = g.reason, .target = g.target, .source = g.source,
              .session_id = g.session_id, .protocol = g.protocol};
    try {
        bool done = false;
        for (int tries = 0; tries < 20 && !done; ++tries) {
            auto stored = store_.get(accounts_namespace, g.account);
            if (!stored) break;
            auto acc = bg::account_from_json(*stored);
            if (!acc) break;
            auto next = bg::finish(*acc, g.session_id, now);
            if (!next) break;  // re-staged meanwhile: the new generation is not ours to touch
            done = store_.compare_and_set(accounts_namespace, g.account, stored, bg::serialize(*next));
        }
        audit("breakglass.used", "ok", a, std::string(close_reason), {{"generation", g.generation}});
        if (g.rotate_on_close) {
            rotation::queue_rotation(store_, g.target, g.session_id, g.account, now);
            audit("rotation.queued", "ok", a, "rotate_on_close of rule " + g.rule_name);
            if (on_rotation_queued_) on_rotation_queued_();
        }
    } catch (const std::exception& e) {
        spdlog::error("breakglass: closing session {} of account {}: {}", g.session_id, g.account, e.what());
        audit("breakglass.used", "error", a, e.what());
    }
    alert(g.notify, "breakglass.session_end", a, std::string(close_reason), mode(now),
          {{"rotation", g.rotate_on_close ? "queued" : "off"}});
}

void Service::recover_session(const session::SessionRecord& rec, session::TimePoint now) {
    if (rec.auth != session::AuthMethod::breakglass) return;
    // The rule that let it in: the first one naming the account and covering the target.
    const config::FallbackRule* rule = nullptr;
    std::size_t index = 0;
    for (std::size_t i = 0; i < cfg_.fallbacks.size() && !rule; ++i) {
        const auto& r = cfg_.fallbacks[i];
        if (std::find(r.accounts.begin(), r.accounts.end(), rec.identity) == r.accounts.end()) continue;
        for (const auto& g : r.targets) {
            if (bg::glob_match(g, rec.target)) {
                rule = &r;
                index = i;
                break;
            }
        }
    }
    Grant g;
    g.account = rec.identity;
    g.session_id = rec.id;
    g.target = rec.target;
    g.reason = rec.reason;
    g.source = rec.client_address;
    g.protocol = std::string(session::to_string(rec.protocol));
    g.rule_index = index;
    g.rule_name = rule ? rule->name : std::string();
    // Without a rule (configuration changed) rotate anyway: an emergency session touched the backend.
    g.rotate_on_close = rule ? rule->rotate_on_close : true;
    if (rule) g.notify = rule->notify;
    spdlog::warn("break-glass session {} of {} was open when the proxy stopped: credential marked used{}", rec.id,
                 rec.identity, g.rotate_on_close ? ", rotation queued" : "");
    session_closed(g, "proxy stopped during the session", now);
}

void Service::observe_mode(const bg::Mode& m) {
    const bool em = m.emergency();
    bool changed = false, first = false;
    {
        std::lock_guard lk(mu_);
        if (!last_emergency_ || *last_emergency_ != em) {
            first = !last_emergency_;
            changed = true;
            last_emergency_ = em;
        }
    }
    if (!changed) return;
    metrics_.set("glassgate_emergency_mode", {}, em ? 1.0 : 0.0);
    if (first && !em) return;  // starting in normal mode is not an event
    const std::string event = em ? "emergency.entered" : "emergency.left";
    const std::string why = em ? m.reason() : std::string("normal operation");
    append_audit_logged(store_, {.time = now_tp(), .type = event, .session_id = {}, .identity = {}, .target = {}, .source = {},
                          .outcome = "ok", .reason = why, .details = {}});
    Attempt none;
    alert(all_notify_urls(), event, none, why, m);
    spdlog::warn("{}: {}", event, why);
}

void Service::start_mode_watch(asio::any_io_executor ex, std::chrono::milliseconds interval) {
    auto self = shared_from_this();
    auto loop = [self, interval]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (!self->stopped_) {
            self->observe_mode(self->mode(now_tp()));
            t.expires_after(interval);
            (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    };
    asio::co_spawn(ex, std::move(loop), logging::LogEscaped{"emergency mode watcher"});
}

}  // namespace gg::proxy::breakglass
