#include "glassgate/protocols/oidc/device_flow.hpp"

#include <algorithm>

#include "glassgate/protocols/oidc/json.hpp"
#include "glassgate/protocols/oidc/text.hpp"

namespace gg::oidc {
namespace {

namespace json = boost::json;
using Clock = std::chrono::system_clock;

// RFC 8628 3.5: "the interval MUST be increased by 5 seconds for this and all subsequent requests".
constexpr std::chrono::seconds slow_down_step{5};

std::chrono::seconds clamp_interval(std::chrono::seconds s, const DeviceLimits& l) {
    return std::clamp(s, l.min_interval, l.max_interval);
}

}  // namespace

std::string form_urlencode(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size() * 3);
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '*' || u == '-' ||
            u == '.' || u == '_') {
            out.push_back(c);
        } else if (u == ' ') {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0x0F]);
        }
    }
    return out;
}

std::string device_authorization_request_body(std::string_view client_id, std::string_view scope) {
    return "client_id=" + form_urlencode(client_id) + "&scope=" + form_urlencode(scope);
}

std::string device_token_request_body(std::string_view device_code, std::string_view client_id) {
    return "grant_type=" + form_urlencode(device_code_grant_type) + "&device_code=" + form_urlencode(device_code) +
           "&client_id=" + form_urlencode(client_id);
}

Result<DeviceAuthorization> parse_device_authorization(std::string_view text, const DeviceLimits& limits) {
    if (text.size() > limits.max_document_bytes) {
        return Error{errc::too_large, "device authorization response of " + std::to_string(text.size()) +
                                          " bytes exceeds the limit of " + std::to_string(limits.max_document_bytes)};
    }
    auto doc = detail::parse_json(text, limits.max_json_depth);
    if (!doc) return Error{errc::not_json, "device authorization response is not JSON"};
    const auto* o = doc->if_object();
    if (!o) return Error{errc::bad_shape, "device authorization response is not a JSON object"};

    auto required = [&](std::string_view name, std::string& out) -> std::optional<Error> {
        const auto* s = detail::string_member(*o, name);
        if (!s) return Error{errc::bad_shape, "device authorization response has no " + std::string(name) + " string"};
        if (s->empty()) return Error{errc::bad_value, "device authorization response has an empty " + std::string(name)};
        out = std::string(*s);
        return std::nullopt;
    };
    DeviceAuthorization a;
    if (auto e = required("device_code", a.device_code)) return *e;
    if (auto e = required("user_code", a.user_code)) return *e;
    const std::string_view uri_name = o->contains("verification_uri") ? "verification_uri" : "verification_url";
    if (auto e = required(uri_name, a.verification_uri)) return *e;
    if (const auto* v = o->if_contains("verification_uri_complete")) {
        const auto* s = v->if_string();
        if (!s) return Error{errc::bad_shape, "verification_uri_complete is not a string"};
        a.verification_uri_complete = std::string(*s);
    }

    const auto* exp_v = o->if_contains("expires_in");
    if (!exp_v) return Error{errc::bad_shape, "device authorization response has no expires_in"};
    const auto exp = detail::to_int64(*exp_v);
    if (!exp) return Error{errc::bad_shape, "expires_in is not a number"};
    if (*exp <= 0) return Error{errc::bad_value, "expires_in is not positive"};
    a.expires_in = std::chrono::seconds(std::min<std::int64_t>(*exp, limits.max_expires_in.count()));

    if (const auto* iv = o->if_contains("interval")) {
        const auto interval = detail::to_int64(*iv);
        if (!interval) return Error{errc::bad_shape, "interval is not a number"};
        // A zero or negative interval would make us poll in a loop; a huge one would stall the sign-in.
        const auto bounded = std::clamp<std::int64_t>(*interval, limits.min_interval.count(), limits.max_interval.count());
        a.interval = std::chrono::seconds(bounded);
    }
    a.interval = clamp_interval(a.interval, limits);
    return a;
}

DevicePoll::DevicePoll(DeviceAuthorization authorization, const DeviceLimits& limits)
    : auth_(std::move(authorization)), limits_(limits), interval_(clamp_interval(auth_.interval, limits)) {}

Wait DevicePoll::start(Clock::time_point now) {
    state_ = State::polling;
    expires_at_ = now + auth_.expires_in;
    next_poll_at_ = now + interval_;
    return Wait{interval_};
}

Failed DevicePoll::finish(DeviceFailure kind, std::string reason) {
    state_ = State::finished;
    return Failed{kind, std::move(reason)};
}

std::optional<Failed> DevicePoll::check_expiry(Clock::time_point now) {
    if (state_ != State::polling || now < expires_at_) return std::nullopt;
    return finish(DeviceFailure::expired, "device code expired at " + format_utc(expires_at_) +
                                              " (now " + format_utc(now) + ")");
}

PollStep DevicePoll::on_token_response(int http_status, std::string_view body, Clock::time_point now) {
    if (state_ == State::finished) return Failed{DeviceFailure::finished, "device flow already finished"};
    if (state_ == State::created) (void)start(now);

    auto expired_or = [&](Failed f) -> PollStep {
        if (auto e = check_expiry(now)) return *e;
        state_ = State::finished;
        return f;
    };

    if (http_status >= 500 && http_status <= 599) {
        return expired_or(Failed{DeviceFailure::server_error,
                                 "token endpoint answered HTTP " + std::to_string(http_status)});
    }
    const bool success = http_status == 200;
    const bool oauth_error = http_status >= 400 && http_status <= 499;
    if (!success && !oauth_error) {
        return expired_or(Failed{DeviceFailure::malformed,
                                 "token endpoint answered unexpected HTTP " + std::to_string(http_status)});
    }
    if (body.size() > limits_.max_document_bytes) {
        return expired_or(Failed{DeviceFailure::malformed, "token response of " + std::to_string(body.size()) +
                                                               " bytes exceeds the limit"});
    }
    auto doc = detail::parse_json(body, limits_.max_json_depth);
    const auto* o = doc ? doc->if_object() : nullptr;
    if (!o) {
        return expired_or(Failed{DeviceFailure::malformed,
                                 "token response (HTTP " + std::to_string(http_status) + ") is not a JSON object"});
    }

    if (success) {
        const auto* id_token = detail::string_member(*o, "id_token");
        if (!id_token || id_token->empty()) {
            return expired_or(Failed{DeviceFailure::malformed, "token response has no id_token"});
        }
        Done done;
        done.id_token = std::string(*id_token);
        if (const auto* at = detail::string_member(*o, "access_token")) done.access_token = std::string(*at);
        if (const auto* ei = o->if_contains("expires_in")) {
            if (auto secs = detail::to_int64(*ei); secs && *secs > 0) done.expires_in = std::chrono::seconds(*secs);
        }
        state_ = State::finished;
        return done;
    }

    const auto* error = detail::string_member(*o, "error");
    if (!error) {
        return expired_or(Failed{DeviceFailure::malformed,
                                 "token error response (HTTP " + std::to_string(http_status) + ") has no error code"});
    }
    if (*error == "authorization_pending" || *error == "slow_down") {
        if (auto e = check_expiry(now)) return *e;
        if (*error == "slow_down") interval_ = std::min(interval_ + slow_down_step, limits_.max_interval);
        next_poll_at_ = now + interval_;
        return Wait{interval_};
    }
    std::string reason = "IdP answered \"" + printable(*error, 64) + "\"";
    if (const auto* desc = detail::string_member(*o, "error_description")) {
        reason += ": " + printable(*desc, 128);
    }
    if (*error == "expired_token") return expired_or(Failed{DeviceFailure::expired, std::move(reason)});
    if (*error == "access_denied") return expired_or(Failed{DeviceFailure::denied, std::move(reason)});
    return expired_or(Failed{DeviceFailure::idp_error, std::move(reason)});
}

}  // namespace gg::oidc
