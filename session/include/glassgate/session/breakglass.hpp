#pragma once
// Break-glass decisions and records. Pure: no I/O, no clock reads (time is a parameter), no
// randomness drawn here (random bytes are parameters). proxy/breakglass does the storage, hashing
// and verification; this file decides and serialises.
//
//   mode       normal | emergency, from the IdP health and an operator's declaration
//   rule       the first [[fallback]] rule whose trigger is armed by the mode, whose accounts hold the
//              account and whose targets (globs) match the target
//   account    staged --consume()--> in-use --finish()--> used ; stage again: any state -> staged
//              (the previous passphrase is revoked); revoke(): staged -> revoked
//   passphrase 20 random bytes (160 bits) as 8 groups of 4 base32 characters, "ABCD-EFGH-...";
//              typed in any case, with or without dashes and spaces
//   shares     Shamir secret sharing over GF(2^8) of those 20 bytes; K of N shares give them back

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "glassgate/protocols/bytes.hpp"
#include "glassgate/protocols/text.hpp"
#include "glassgate/session/session.hpp"

namespace gg::session::breakglass {

// --------------------------------------------------------------------------------------------
// Mode and rules

/// What arms a fallback rule (mirrors config::FallbackTrigger; session/ does not depend on config/).
enum class Trigger : std::uint8_t { idp_unreachable, declared };

/// An operator's emergency declaration (`glassgate emergency declare`).
struct Declaration {
    std::string reason;
    std::string declared_by;           ///< "cli:root"
    TimePoint declared_at{};
    std::optional<TimePoint> until;    ///< absent: until `emergency end`
    /// True while the declaration is in force at `now`.
    [[nodiscard]] bool active(TimePoint now) const noexcept { return !until || now < *until; }
};
boost::json::object to_json(const Declaration& d);
/// std::nullopt if the stored text is not a declaration (fail closed: treated as no declaration by callers
/// that must not grant access on unreadable data).
std::optional<Declaration> declaration_from_json(std::string_view text);

/// The mode at one instant.
struct Mode {
    bool idp_unreachable = false;
    std::optional<Declaration> declaration;  ///< only when active
    [[nodiscard]] bool emergency() const noexcept { return idp_unreachable || declaration.has_value(); }
    /// True when this mode arms rules with trigger `t`.
    [[nodiscard]] bool arms(Trigger t) const noexcept {
        return t == Trigger::idp_unreachable ? idp_unreachable : declaration.has_value();
    }
    /// "normal" | "emergency"
    [[nodiscard]] std::string_view name() const noexcept { return emergency() ? "emergency" : "normal"; }
    /// Human-readable cause: "identity provider unreachable", "declared: INC-1 (until ...)", "".
    [[nodiscard]] std::string reason() const;
};
/// The mode from the IdP's state and a stored declaration (expired declarations are ignored).
Mode make_mode(bool idp_unreachable, const std::optional<Declaration>& stored, TimePoint now);

/// The parts of a [[fallback]] rule the decision needs.
struct RuleSpec {
    std::string name;
    Trigger trigger = Trigger::idp_unreachable;
    std::vector<std::string> accounts;
    std::vector<std::string> targets;  ///< names or globs: '*' any run of characters, '?' one character
};

/// Rule targets are globs matched with gg::glob_match (glassgate/protocols/text.hpp).
using gg::glob_match;

/// True if any rule (armed or not) names `account`: such a login is a break-glass attempt.
bool is_breakglass_account(const std::vector<RuleSpec>& rules, std::string_view account) noexcept;

/// Why no rule matched, most specific first.
enum class NoMatch : std::uint8_t {
    not_emergency,    ///< the mode is normal
    unknown_account,  ///< no rule names the account
    not_armed,        ///< rules name the account but none is armed by the current trigger
    target_not_allowed,  ///< armed rules name the account but none covers the target
};
std::string_view to_string(NoMatch) noexcept;

struct RuleMatch {
    std::optional<std::size_t> rule;   ///< index into the rules
    NoMatch why = NoMatch::not_emergency;  ///< when !rule
};
/// The first rule armed by `mode` that names `account` and covers `target`.
RuleMatch match_rule(const std::vector<RuleSpec>& rules, const Mode& mode, std::string_view account,
                     std::string_view target) noexcept;

/// Reason text as stated by the user: trimmed; at most 200 bytes; control characters refused.
/// std::nullopt if unusable (then a rule with require_reason refuses).
std::optional<std::string> clean_reason(std::string_view raw);

// --------------------------------------------------------------------------------------------
// Accounts

enum class AccountState : std::uint8_t { staged, in_use, used, revoked };
std::string_view to_string(AccountState) noexcept;
std::optional<AccountState> account_state_from_string(std::string_view) noexcept;

/// One break-glass account as stored (store namespace "breakglass", key = account name).
struct Account {
    std::string name;
    AccountState state = AccountState::staged;
    std::string hash;                  ///< slow passphrase hash (Argon2id encoded string); never the passphrase
    std::uint64_t generation = 0;      ///< incremented at every stage: a handle names the generation it consumed
    TimePoint staged_at{};
    std::string staged_by;
    int shares = 0;                    ///< 0: not split
    int threshold = 0;
    std::optional<TimePoint> last_used;  ///< when it was last consumed
    std::string session;               ///< session that consumed it (in-use / used)
    std::string target;                ///< target of that session
    std::string reason;                ///< reason stated for that session
    std::string source;                ///< client address of that session
    std::optional<TimePoint> ended_at; ///< when that session ended (used)
    std::vector<std::string> history;  ///< ids of every session that used any generation, oldest first
};
boost::json::object to_json(const Account& a, bool with_hash = true);
/// std::nullopt for stored text that is not an account.
std::optional<Account> account_from_json(std::string_view text);
std::string serialize(const Account& a);

/// A freshly staged account (generation = previous + 1, history kept).
Account stage(const std::optional<Account>& previous, std::string name, std::string hash, std::string by,
              TimePoint now, int shares, int threshold);
/// staged -> in-use for `session`; std::nullopt if the account is not staged (used, in use, revoked).
std::optional<Account> consume(const Account& a, std::string session, std::string target, std::string reason,
                               std::string source, TimePoint now);
/// in-use -> used when `session` (the one that consumed it) ends; std::nullopt if the account is not in
/// use by that session (re-staged meanwhile: nothing to do).
std::optional<Account> finish(const Account& a, std::string_view session, TimePoint now);
/// staged -> revoked; std::nullopt if not staged.
std::optional<Account> revoke(const Account& a, TimePoint now);

// --------------------------------------------------------------------------------------------
// Passphrases

inline constexpr std::size_t passphrase_bytes = 20;  ///< 160 bits

/// "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567" from exactly passphrase_bytes bytes (RFC 4648 base32).
std::string format_passphrase(ByteView random20);
/// The canonical form of a typed passphrase: upper case, dashes and spaces removed, grouped again;
/// std::nullopt if it is not 32 base32 characters. Both hashing and verification use this form.
std::optional<std::string> normalize_passphrase(std::string_view typed);
/// The bytes a passphrase encodes (for splitting), or std::nullopt.
std::optional<Bytes> passphrase_to_bytes(std::string_view typed);

// --------------------------------------------------------------------------------------------
// Shamir secret sharing over GF(2^8) (AES polynomial x^8 + x^4 + x^3 + x + 1)

/// Multiplication in GF(2^8); branch-free on the operands.
std::uint8_t gf_mul(std::uint8_t a, std::uint8_t b) noexcept;
/// Multiplicative inverse (a^254); gf_inv(0) = 0.
std::uint8_t gf_inv(std::uint8_t a) noexcept;

struct Share {
    std::uint8_t threshold = 0;
    std::uint8_t x = 0;   ///< 1..255
    Bytes y;              ///< one byte per secret byte
};

/// Splits `secret` into `n` shares, any `k` of which recover it (2 <= k <= n <= 255). `random` supplies
/// the polynomial coefficients: exactly (k - 1) * secret.size() bytes. std::nullopt on bad arguments.
std::optional<std::vector<Share>> split(ByteView secret, int n, int k, ByteView random);
/// Recovers the secret from at least `threshold` shares with distinct x (extra shares are ignored).
/// std::nullopt if there are too few, they disagree on threshold or length, or an x repeats.
std::optional<Bytes> combine(const std::vector<Share>& shares);

/// "gg1-K-X-<hex y>-<4 hex check>"; the check (first 2 bytes of SHA-256 over the rest) catches typos.
std::string format_share(const Share& s);
std::optional<Share> parse_share(std::string_view text);

// --------------------------------------------------------------------------------------------
// Failure limits

/// Per-key failure counting with exponential backoff. Keys are "account:NAME" and "source:IP".
/// Not thread-safe (the caller locks). Time is a parameter.
class FailureLimiter {
public:
    struct Policy {
        int free_failures = 3;                               ///< failures before any delay
        std::chrono::seconds first_delay{2};
        std::chrono::seconds max_delay{300};
        std::chrono::seconds forget_after{900};              ///< a quiet key is forgotten
        int alert_every = 5;                                 ///< alert at the 5th, 10th, ... failure
    };
    FailureLimiter() = default;
    explicit FailureLimiter(Policy p) : policy_(p) {}
    /// Until when attempts with `key` are refused; std::nullopt if allowed now.
    [[nodiscard]] std::optional<TimePoint> blocked_until(std::string_view key, TimePoint now) const;
    /// Records a failure; returns the failure count (the caller alerts when count % alert_every == 0).
    int failure(std::string_view key, TimePoint now);
    void success(std::string_view key);

private:
    struct Entry {
        int failures = 0;
        TimePoint last{};
        TimePoint until{};
    };
    Policy policy_{};
    std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace gg::session::breakglass
