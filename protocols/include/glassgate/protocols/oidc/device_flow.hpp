#pragma once
// OAuth 2.0 Device Authorization Grant (RFC 8628), the decisions only: request bodies to send, the
// device authorization response, and a polling state machine fed with token-endpoint responses.
// proxy/ does the HTTP and the waiting; `now` is always a parameter.
//
//   proxy                                  IdP
//   POST device_authorization_endpoint --> device_code, user_code, verification_uri, expires_in, interval
//   show user_code / verification_uri to the engineer
//   every `interval`: POST token_endpoint --> 400 authorization_pending | 400 slow_down
//                                             | 200 {id_token, access_token} | 400 access_denied ...

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "glassgate/protocols/oidc/error.hpp"

namespace gg::oidc {

/// application/x-www-form-urlencoded encoding of one name or value (WHATWG URL "urlencoded"):
/// ALPHA DIGIT '*' '-' '.' '_' kept, ' ' as '+', every other byte as %XX.
[[nodiscard]] std::string form_urlencode(std::string_view text);

/// Body of the device authorization request (RFC 8628 3.1): "client_id=...&scope=...".
[[nodiscard]] std::string device_authorization_request_body(std::string_view client_id,
                                                            std::string_view scope = "openid profile groups");

inline constexpr std::string_view device_code_grant_type = "urn:ietf:params:oauth:grant-type:device_code";

/// Body of the device access token request (RFC 8628 3.4).
[[nodiscard]] std::string device_token_request_body(std::string_view device_code, std::string_view client_id);

/// RFC 8628 3.2. `verification_url` (Google's spelling) is accepted when `verification_uri` is absent.
struct DeviceAuthorization {
    std::string device_code;  ///< a credential: send it to the IdP only, never to logs
    std::string user_code;
    std::string verification_uri;
    std::optional<std::string> verification_uri_complete;
    std::chrono::seconds expires_in{0};
    std::chrono::seconds interval{5};  ///< RFC 8628 3.2 default when absent
};

/// Bounds applied to what the IdP asks for.
struct DeviceLimits {
    std::size_t max_document_bytes = 64 * 1024;
    std::size_t max_json_depth = 8;
    std::chrono::seconds min_interval{1};    ///< smaller (or zero) intervals are raised to this
    std::chrono::seconds max_interval{60};   ///< larger intervals, also after slow_down, are capped
    std::chrono::seconds max_expires_in{3600};  ///< longer lifetimes are shortened to this
};

/// Parses the device authorization response body (HTTP 200). Errors: errc::too_large,
/// errc::not_json, errc::bad_shape (a required member missing or mistyped), errc::bad_value
/// (expires_in not positive, empty codes).
[[nodiscard]] Result<DeviceAuthorization> parse_device_authorization(std::string_view json,
                                                                     const DeviceLimits& limits = {});

/// Poll again after `duration` (counted from the `now` of the call that returned it).
struct Wait {
    std::chrono::seconds duration{0};
};
/// The IdP issued tokens. They are credentials: hand id_token to verify_jwt, never log them.
struct Done {
    std::string id_token;
    std::string access_token;
    std::optional<std::chrono::seconds> expires_in;
};
enum class DeviceFailure {
    expired,          ///< expired_token, or the device code's lifetime passed
    denied,           ///< access_denied: the engineer declined
    idp_error,        ///< another OAuth error (invalid_grant, invalid_client, ...)
    malformed,        ///< a body we cannot read, or a 200 without an id_token
    server_error,     ///< HTTP 5xx (also counts as passive evidence against IdP health)
    finished,         ///< input after the machine already ended
};
struct Failed {
    DeviceFailure kind = DeviceFailure::malformed;
    std::string reason;  ///< for the log; IdP-supplied text passed through printable()
};
using PollStep = std::variant<Wait, Done, Failed>;

/// The polling state machine (RFC 8628 3.4-3.5). States: created -> polling -> done | failed.
class DevicePoll {
public:
    explicit DevicePoll(DeviceAuthorization authorization, const DeviceLimits& limits = {});

    /// Starts the clock: the code expires at now + expires_in; the first poll is due at now + interval.
    [[nodiscard]] Wait start(std::chrono::system_clock::time_point now);

    /// Feeds one token-endpoint response. 200 with id_token -> Done; 400/401 with error
    /// authorization_pending -> Wait{interval}; slow_down -> interval += 5 s (RFC 8628 3.5), Wait;
    /// expired_token -> Failed{expired}; access_denied -> Failed{denied}; any other error ->
    /// Failed{idp_error}; 5xx -> Failed{server_error}; unreadable body -> Failed{malformed}. When the
    /// device code's lifetime has passed, anything but Done becomes Failed{expired}. Called before
    /// start(), it starts at `now`; called after the end, it returns Failed{finished}.
    [[nodiscard]] PollStep on_token_response(int http_status, std::string_view body,
                                             std::chrono::system_clock::time_point now);

    /// Failed{expired} once the lifetime has passed (call it from a timer); std::nullopt otherwise.
    [[nodiscard]] std::optional<Failed> check_expiry(std::chrono::system_clock::time_point now);

    [[nodiscard]] std::chrono::system_clock::time_point next_poll_at() const noexcept { return next_poll_at_; }
    [[nodiscard]] std::chrono::system_clock::time_point expires_at() const noexcept { return expires_at_; }
    [[nodiscard]] std::chrono::seconds interval() const noexcept { return interval_; }
    [[nodiscard]] const DeviceAuthorization& authorization() const noexcept { return auth_; }
    /// True after Done or Failed was returned.
    [[nodiscard]] bool finished() const noexcept { return state_ == State::finished; }

private:
    enum class State { created, polling, finished };
    Failed finish(DeviceFailure kind, std::string reason);

    DeviceAuthorization auth_;
    DeviceLimits limits_;
    State state_ = State::created;
    std::chrono::seconds interval_;
    std::chrono::system_clock::time_point expires_at_{};
    std::chrono::system_clock::time_point next_poll_at_{};
};

}  // namespace gg::oidc
