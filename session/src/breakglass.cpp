#include "glassgate/session/breakglass.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include <boost/json.hpp>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::session::breakglass {
namespace json = boost::json;

namespace {

std::int64_t us(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint from_us(std::int64_t v) { return TimePoint(std::chrono::microseconds(v)); }

std::optional<std::string> get_string(const json::object& o, std::string_view k) {
    auto* v = o.if_contains(k);
    if (!v || !v->is_string()) return std::nullopt;
    return std::string(v->as_string());
}
std::optional<std::int64_t> get_int(const json::object& o, std::string_view k) {
    auto* v = o.if_contains(k);
    if (!v || !v->is_int64()) return std::nullopt;
    return v->as_int64();
}
// Stored times are microseconds since 1970 that system_clock (nanoseconds in 64 bits) can hold,
// years 1678 to 2262; a value outside that is no time glassgate wrote.
constexpr std::int64_t max_time_us = std::numeric_limits<std::int64_t>::max() / 1000;

std::optional<TimePoint> get_time(const json::object& o, std::string_view k) {
    auto v = get_int(o, k);
    if (!v || *v < -max_time_us || *v > max_time_us) return std::nullopt;
    return from_us(*v);
}
/// An optional stored time: absent is fine, present but not a time makes the record unreadable
/// (a damaged "until" must not read as "until the emergency is ended").
bool time_or_absent(const json::object& o, std::string_view k) {
    auto* v = o.if_contains(k);
    return !v || v->is_null() || get_time(o, k).has_value();
}
std::optional<json::object> parse_object(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.as_object());
}

constexpr char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

int b32_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= '2' && c <= '7') return c - '2' + 26;
    return -1;
}


}  // namespace

// --------------------------------------------------------------------------------------------
// Mode and rules

json::object to_json(const Declaration& d) {
    json::object o{{"reason", d.reason}, {"declared_by", d.declared_by}, {"declared_at_us", us(d.declared_at)},
                   {"declared_at", format_utc(d.declared_at)}};
    if (d.until) {
        o["until_us"] = us(*d.until);
        o["until"] = format_utc(*d.until);
    }
    return o;
}

std::optional<Declaration> declaration_from_json(std::string_view text) {
    auto o = parse_object(text);
    if (!o) return std::nullopt;
    Declaration d;
    auto reason = get_string(*o, "reason");
    auto at = get_time(*o, "declared_at_us");
    if (!reason || !at || !time_or_absent(*o, "until_us")) return std::nullopt;
    d.reason = *reason;
    d.declared_at = *at;
    d.declared_by = get_string(*o, "declared_by").value_or("");
    d.until = get_time(*o, "until_us");
    return d;
}

std::string Mode::reason() const {
    std::string out;
    if (idp_unreachable) out = "identity provider unreachable";
    if (declaration) {
        if (!out.empty()) out += "; ";
        out += "declared by " + declaration->declared_by + ": " + declaration->reason;
        if (declaration->until) out += " (until " + format_utc(*declaration->until) + ")";
    }
    return out;
}

Mode make_mode(bool idp_unreachable, const std::optional<Declaration>& stored, TimePoint now) {
    Mode m;
    m.idp_unreachable = idp_unreachable;
    if (stored && stored->active(now)) m.declaration = stored;
    return m;
}

bool is_breakglass_account(const std::vector<RuleSpec>& rules, std::string_view account) noexcept {
    for (const auto& r : rules) {
        if (std::find(r.accounts.begin(), r.accounts.end(), account) != r.accounts.end()) return true;
    }
    return false;
}

std::string_view to_string(NoMatch w) noexcept {
    switch (w) {
        case NoMatch::not_emergency: return "not in an emergency";
        case NoMatch::unknown_account: return "no fallback rule names this account";
        case NoMatch::not_armed: return "no fallback rule for this account is armed by the current emergency";
        case NoMatch::target_not_allowed: return "no armed fallback rule lets this account reach this target";
    }
    return "?";
}

RuleMatch match_rule(const std::vector<RuleSpec>& rules, const Mode& mode, std::string_view account,
                     std::string_view target) noexcept {
    if (!is_breakglass_account(rules, account)) return {std::nullopt, NoMatch::unknown_account};
    if (!mode.emergency()) return {std::nullopt, NoMatch::not_emergency};
    bool armed = false;
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const auto& r = rules[i];
        if (!mode.arms(r.trigger)) continue;
        if (std::find(r.accounts.begin(), r.accounts.end(), account) == r.accounts.end()) continue;
        armed = true;
        for (const auto& g : r.targets) {
            if (glob_match(g, target)) return {i, NoMatch::not_emergency};
        }
    }
    return {std::nullopt, armed ? NoMatch::target_not_allowed : NoMatch::not_armed};
}

std::optional<std::string> clean_reason(std::string_view raw) {
    while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.front()))) raw.remove_prefix(1);
    while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.remove_suffix(1);
    if (raw.empty() || raw.size() > 200) return std::nullopt;
    for (char c : raw) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    }
    return std::string(raw);
}

// --------------------------------------------------------------------------------------------
// Accounts

std::string_view to_string(AccountState s) noexcept {
    switch (s) {
        case AccountState::staged: return "staged";
        case AccountState::in_use: return "in-use";
        case AccountState::used: return "used";
        case AccountState::revoked: return "revoked";
    }
    return "?";
}

std::optional<AccountState> account_state_from_string(std::string_view s) noexcept {
    for (auto st : {AccountState::staged, AccountState::in_use, AccountState::used, AccountState::revoked}) {
        if (to_string(st) == s) return st;
    }
    return std::nullopt;
}

json::object to_json(const Account& a, bool with_hash) {
    json::object o{{"name", a.name},
                   {"state", to_string(a.state)},
                   {"generation", a.generation},
                   {"staged_at_us", us(a.staged_at)},
                   {"staged_at", format_utc(a.staged_at)},
                   {"staged_by", a.staged_by},
                   {"shares", a.shares},
                   {"threshold", a.threshold},
                   {"session", a.session},
                   {"target", a.target},
                   {"reason", a.reason},
                   {"source", a.source}};
    if (with_hash) o["hash"] = a.hash;
    if (a.last_used) {
        o["last_used_us"] = us(*a.last_used);
        o["last_used"] = format_utc(*a.last_used);
    } else {
        o["last_used"] = nullptr;
    }
    if (a.ended_at) {
        o["ended_at_us"] = us(*a.ended_at);
        o["ended_at"] = format_utc(*a.ended_at);
    }
    json::array h;
    for (const auto& s : a.history) h.emplace_back(s);
    o["sessions"] = std::move(h);
    return o;
}

std::string serialize(const Account& a) { return json::serialize(to_json(a)); }

std::optional<Account> account_from_json(std::string_view text) {
    auto o = parse_object(text);
    if (!o) return std::nullopt;
    Account a;
    auto name = get_string(*o, "name");
    auto state = get_string(*o, "state");
    auto gen = get_int(*o, "generation");
    auto staged = get_time(*o, "staged_at_us");
    auto hash = get_string(*o, "hash");
    if (!name || !state || !gen || *gen < 0 || !staged || !hash) return std::nullopt;
    if (!time_or_absent(*o, "last_used_us") || !time_or_absent(*o, "ended_at_us")) return std::nullopt;
    auto st = account_state_from_string(*state);
    if (!st) return std::nullopt;
    a.name = *name;
    a.state = *st;
    a.generation = static_cast<std::uint64_t>(*gen);
    a.staged_at = *staged;
    a.hash = *hash;
    a.staged_by = get_string(*o, "staged_by").value_or("");
    a.shares = static_cast<int>(get_int(*o, "shares").value_or(0));
    a.threshold = static_cast<int>(get_int(*o, "threshold").value_or(0));
    a.session = get_string(*o, "session").value_or("");
    a.target = get_string(*o, "target").value_or("");
    a.reason = get_string(*o, "reason").value_or("");
    a.source = get_string(*o, "source").value_or("");
    a.last_used = get_time(*o, "last_used_us");
    a.ended_at = get_time(*o, "ended_at_us");
    if (auto* h = o->if_contains("sessions"); h && h->is_array()) {
        for (const auto& s : h->as_array()) {
            if (!s.is_string()) return std::nullopt;
            a.history.emplace_back(s.as_string());
        }
    }
    return a;
}

Account stage(const std::optional<Account>& previous, std::string name, std::string hash, std::string by,
              TimePoint now, int shares, int threshold) {
    Account a;
    a.name = std::move(name);
    a.state = AccountState::staged;
    a.hash = std::move(hash);
    a.generation = previous ? previous->generation + 1 : 1;
    a.staged_at = now;
    a.staged_by = std::move(by);
    a.shares = shares;
    a.threshold = threshold;
    if (previous) {
        a.history = previous->history;
        a.last_used = previous->last_used;
    }
    return a;
}

std::optional<Account> consume(const Account& a, std::string session, std::string target, std::string reason,
                               std::string source, TimePoint now) {
    if (a.state != AccountState::staged) return std::nullopt;
    Account b = a;
    b.state = AccountState::in_use;
    b.last_used = now;
    b.history.push_back(session);
    b.session = std::move(session);
    b.target = std::move(target);
    b.reason = std::move(reason);
    b.source = std::move(source);
    b.ended_at.reset();
    return b;
}

std::optional<Account> finish(const Account& a, std::string_view session, TimePoint now) {
    if (a.state != AccountState::in_use || a.session != session) return std::nullopt;
    Account b = a;
    b.state = AccountState::used;
    b.ended_at = now;
    return b;
}

std::optional<Account> revoke(const Account& a, TimePoint now) {
    if (a.state != AccountState::staged) return std::nullopt;
    Account b = a;
    b.state = AccountState::revoked;
    b.ended_at = now;
    return b;
}

// --------------------------------------------------------------------------------------------
// Passphrases

std::string format_passphrase(ByteView r) {
    // RFC 4648 base32 of 20 bytes is exactly 32 characters, no padding.
    std::string chars;
    std::uint32_t acc = 0;
    int bits = 0;
    for (auto b : r) {
        acc = (acc << 8) | std::to_integer<std::uint32_t>(b);
        bits += 8;
        while (bits >= 5) {
            chars += b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) chars += b32[(acc << (5 - bits)) & 31];
    std::string out;
    for (std::size_t i = 0; i < chars.size(); ++i) {
        if (i > 0 && i % 4 == 0) out += '-';
        out += chars[i];
    }
    return out;
}

std::optional<Bytes> passphrase_to_bytes(std::string_view typed) {
    std::string chars;
    for (char c : typed) {
        if (c == '-' || c == ' ') continue;
        if (b32_value(c) < 0) return std::nullopt;
        chars += c;
    }
    if (chars.size() != 32) return std::nullopt;
    Bytes out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : chars) {
        acc = (acc << 5) | static_cast<std::uint32_t>(b32_value(c));
        bits += 5;
        if (bits >= 8) {
            out.push_back(static_cast<std::byte>((acc >> (bits - 8)) & 0xff));
            bits -= 8;
        }
    }
    return out;
}

std::optional<std::string> normalize_passphrase(std::string_view typed) {
    auto b = passphrase_to_bytes(typed);
    if (!b) return std::nullopt;
    auto s = format_passphrase(*b);
    crypto::cleanse(b->data(), b->size());
    return s;
}

// --------------------------------------------------------------------------------------------
// Shamir over GF(2^8)

std::uint8_t gf_mul(std::uint8_t a, std::uint8_t b) noexcept {
    // Russian-peasant multiplication with masks instead of branches (no secret-dependent branches).
    unsigned p = 0, x = a, y = b;
    for (int i = 0; i < 8; ++i) {
        p ^= x & (0u - (y & 1u));
        const unsigned hi = 0u - ((x >> 7) & 1u);
        x = ((x << 1) ^ (0x1b & hi)) & 0xff;
        y >>= 1;
    }
    return static_cast<std::uint8_t>(p);
}

std::uint8_t gf_inv(std::uint8_t a) noexcept {
    // a^254 = a^-1 in GF(2^8) (a^255 = 1); square-and-multiply over the fixed exponent.
    std::uint8_t result = 1, base = a;
    unsigned e = 254;
    while (e) {
        if (e & 1u) result = gf_mul(result, base);
        base = gf_mul(base, base);
        e >>= 1;
    }
    return result;
}

std::optional<std::vector<Share>> split(ByteView secret, int n, int k, ByteView random) {
    if (k < 2 || n < k || n > 255 || secret.empty()) return std::nullopt;
    const std::size_t deg = static_cast<std::size_t>(k - 1);
    if (random.size() != deg * secret.size()) return std::nullopt;
    std::vector<Share> out;
    for (int i = 1; i <= n; ++i) {
        Share s;
        s.threshold = static_cast<std::uint8_t>(k);
        s.x = static_cast<std::uint8_t>(i);
        s.y.resize(secret.size());
        out.push_back(std::move(s));
    }
    for (std::size_t j = 0; j < secret.size(); ++j) {
        // f(x) = secret[j] + c1 x + ... + c_{k-1} x^{k-1}, coefficients random[j*deg ...].
        for (auto& s : out) {
            // Horner from the highest coefficient.
            std::uint8_t y = 0;
            for (std::size_t c = deg; c >= 1; --c) {
                y = static_cast<std::uint8_t>(gf_mul(y, s.x) ^ std::to_integer<std::uint8_t>(random[j * deg + c - 1]));
            }
            y = static_cast<std::uint8_t>(gf_mul(y, s.x) ^ std::to_integer<std::uint8_t>(secret[j]));
            s.y[j] = static_cast<std::byte>(y);
        }
    }
    return out;
}

std::optional<Bytes> combine(const std::vector<Share>& shares) {
    if (shares.empty()) return std::nullopt;
    const auto k = shares.front().threshold;
    const auto len = shares.front().y.size();
    if (k < 2 || shares.size() < k || len == 0) return std::nullopt;
    for (std::size_t i = 0; i < shares.size(); ++i) {
        if (shares[i].threshold != k || shares[i].y.size() != len || shares[i].x == 0) return std::nullopt;
        for (std::size_t j = 0; j < i; ++j) {
            if (shares[j].x == shares[i].x) return std::nullopt;
        }
    }
    // Lagrange interpolation at x = 0 over the first k shares: L_i(0) = prod_{j!=i} x_j / (x_j - x_i);
    // subtraction is XOR in GF(2^8).
    Bytes out(len);
    for (std::size_t i = 0; i < k; ++i) {
        std::uint8_t num = 1, den = 1;
        for (std::size_t j = 0; j < k; ++j) {
            if (j == i) continue;
            num = gf_mul(num, shares[j].x);
            den = gf_mul(den, static_cast<std::uint8_t>(shares[j].x ^ shares[i].x));
        }
        const std::uint8_t li = gf_mul(num, gf_inv(den));
        for (std::size_t b = 0; b < len; ++b) {
            out[b] = static_cast<std::byte>(std::to_integer<std::uint8_t>(out[b]) ^
                                            gf_mul(li, std::to_integer<std::uint8_t>(shares[i].y[b])));
        }
    }
    return out;
}

std::string format_share(const Share& s) {
    std::string body = "gg1-" + std::to_string(s.threshold) + "-" + std::to_string(s.x) + "-" + to_hex(s.y);
    auto d = crypto::sha256(as_bytes(body));
    return body + "-" + to_hex(ByteView(d).first(2));
}

std::optional<Share> parse_share(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    const auto last = text.rfind('-');
    if (text.substr(0, 4) != "gg1-" || last == std::string_view::npos || last < 4) return std::nullopt;
    const auto body = text.substr(0, last);
    auto d = crypto::sha256(as_bytes(body));
    auto check = from_hex(text.substr(last + 1));
    if (!check || check->size() != 2 || !crypto::constant_time_equal(*check, ByteView(d).first(2))) return std::nullopt;
    std::vector<std::string_view> parts;
    std::string_view rest = body.substr(4);
    for (;;) {
        auto dash = rest.find('-');
        parts.push_back(rest.substr(0, dash));
        if (dash == std::string_view::npos) break;
        rest.remove_prefix(dash + 1);
    }
    if (parts.size() != 3) return std::nullopt;
    auto num = [](std::string_view s) -> int {
        if (s.empty() || s.size() > 3) return -1;
        int v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') return -1;
            v = v * 10 + (c - '0');
        }
        return v;
    };
    const int k = num(parts[0]), x = num(parts[1]);
    auto y = from_hex(parts[2]);
    if (k < 2 || k > 255 || x < 1 || x > 255 || !y || y->empty()) return std::nullopt;
    return Share{static_cast<std::uint8_t>(k), static_cast<std::uint8_t>(x), std::move(*y)};
}

// --------------------------------------------------------------------------------------------
// Failure limits

std::optional<TimePoint> FailureLimiter::blocked_until(std::string_view key, TimePoint now) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || now >= it->second.until) return std::nullopt;
    return it->second.until;
}

int FailureLimiter::failure(std::string_view key, TimePoint now) {
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(std::string(key), Entry{}).first;
    auto& e = it->second;
    if (e.failures > 0 && now - e.last >= policy_.forget_after) e = Entry{};
    ++e.failures;
    e.last = now;
    if (e.failures > policy_.free_failures) {
        const int over = std::min(e.failures - policy_.free_failures - 1, 20);
        auto delay = policy_.first_delay * (std::int64_t{1} << over);
        if (delay > policy_.max_delay) delay = policy_.max_delay;
        e.until = now + std::chrono::duration_cast<std::chrono::microseconds>(delay);
    }
    // Keep the map bounded: drop quiet entries when it grows (a scan of sources must not grow it forever).
    if (entries_.size() > 10000) {
        for (auto i = entries_.begin(); i != entries_.end();) {
            i = now - i->second.last >= policy_.forget_after ? entries_.erase(i) : std::next(i);
        }
    }
    return e.failures;
}

void FailureLimiter::success(std::string_view key) {
    auto it = entries_.find(key);
    if (it != entries_.end()) entries_.erase(it);
}

}  // namespace gg::session::breakglass
