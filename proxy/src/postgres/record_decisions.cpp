// What the recording gets of each relayed message: result rows up to record_rows, COPY data and its
// summary, Bind values under the target's redaction rules; and the session state the messages show
// (outstanding requests, transaction status, ParameterStatus) that decides whether the backend
// connection may be kept for reuse.

#include <boost/json/serialize.hpp>

#include "client_session.hpp"
#include "glassgate/protocols/postgres/codec.hpp"

namespace gg::proxy::postgres {

ClientSession::Redaction ClientSession::redact(char type, ByteView whole, Bytes& out) {
    const ByteView body = whole.subspan(5);
    if (type == 'P') {
        if (redact_for_.empty()) return Redaction::as_is;
        auto p = pg::parse_parse(body);
        if (!p) return Redaction::as_is;  // the server refuses it; nothing is bound to it
        bool match = false;
        for (const auto& re : redact_for_) {
            if (std::regex_search(p->query.begin(), p->query.end(), re)) {
                match = true;
                break;
            }
        }
        redacted_statements_[std::string(p->statement)] = match;
        return Redaction::as_is;
    }
    if (type == 'C') {
        if (auto c = pg::parse_close(body); c && c->kind == 'S') redacted_statements_.erase(std::string(c->name));
        return Redaction::as_is;
    }
    if (type != 'B') return Redaction::as_is;
    auto b = pg::parse_bind(body);
    if (!b) return Redaction::dropped;  // unreadable: its values cannot be told apart, so none is kept
    if (!redact_all_) {
        auto it = redacted_statements_.find(std::string(b->statement));
        if (it == redacted_statements_.end() || !it->second) return Redaction::as_is;
    }
    out = pg::redact_bind(*b);
    return Redaction::replaced;
}


std::string ClientSession::copy_summary(Flow& f, std::string_view end) {
    const auto digest = f.copy.sha.finish();
    boost::json::object j{{"direction", f.from_client ? "in" : "out"},
                          {"messages", f.copy.messages},
                          {"bytes", f.copy.bytes},
                          {"recorded_messages", f.copy.recorded},
                          {"sha256", to_hex(ByteView(digest.data(), digest.size()))},
                          {"end", end}};
    f.copy = {};
    return boost::json::serialize(j);
}


ClientSession::Decision ClientSession::decide(Flow& f, char type, ByteView msg, bool whole) {
    Decision d;
    if (f.copy.active && type != 'd') d.copy_end = type == 'c' ? "done" : type == 'f' ? "fail" : "error";
    if (type == 'd') {
        if (!f.copy.active) f.copy.active = true;
        ++f.copy.messages;
        d.record = record_copy_full_ || record_rows_ < 0 || f.copy.messages <= static_cast<std::uint64_t>(record_rows_);
        if (d.record) ++f.copy.recorded;
        return d;
    }
    if (f.from_client) {
        switch (type) {
            case 'Q':
            case 'F': ++outstanding_; break;
            case 'S':
                ++outstanding_;
                extended_open_ = false;
                break;
            case 'P':
            case 'B':
            case 'E':
            case 'D':
            case 'C': extended_open_ = true; break;
            default: break;
        }
        if (!redact_all_ && redact_for_.empty()) return d;
        if (whole) {
            Bytes replacement;
            switch (redact(type, msg, replacement)) {
                case Redaction::as_is: break;
                case Redaction::replaced: d.replacement = std::move(replacement); break;
                case Redaction::dropped:
                    d.record = false;
                    d.note = "a Bind message that could not be parsed was not recorded (redact_params)";
                    break;
            }
            return d;
        }
        // Only the start of a large message is at hand: its names decide, and what cannot be read is
        // treated as redacted (fail closed).
        const ByteView body = msg.subspan(5);
        auto cstring = [&](std::size_t from) -> std::optional<std::pair<std::string, std::size_t>> {
            for (std::size_t i = from; i < body.size(); ++i) {
                if (body[i] == std::byte{0}) return std::pair{std::string(as_chars(body.subspan(from, i - from))), i + 1};
            }
            return std::nullopt;
        };
        if (type == 'P' && !redact_for_.empty()) {
            // Its text is too large to match here: its Binds are redacted.
            if (auto name = cstring(0)) redacted_statements_[name->first] = true;
            else redact_all_ = true;
        } else if (type == 'B') {
            bool redacted = redact_all_;
            if (!redacted) {
                auto portal = cstring(0);
                auto stmt = portal ? cstring(portal->second) : std::nullopt;
                auto it = stmt ? redacted_statements_.find(stmt->first) : redacted_statements_.end();
                redacted = !stmt || (it != redacted_statements_.end() && it->second);
            }
            d.redacted = redacted;
        }
        return d;
    }
    switch (type) {
        case 'D':
            ++f.rows;
            d.record = record_rows_ < 0 || f.rows <= record_rows_;
            break;
        case 'C':
        case 'E':
        case 'Z':
        case 'I':
        case 's':
            if (type == 'Z') {
                if (outstanding_ > 0) --outstanding_;
                if (whole && msg.size() == 6) backend_status_ = static_cast<char>(msg[5]);
            }
            if (record_rows_ >= 0 && f.rows > record_rows_) {
                d.note = std::to_string(f.rows - record_rows_) + " more row(s) not recorded (record_rows = " +
                         std::to_string(record_rows_) + ")";
                d.note_before = true;
            }
            f.rows = 0;
            break;
        case 'S':
            if (whole && poolable_ && backend_session_) {
                // A kept connection's parameters are what the next client is told at its start.
                if (auto ps = pg::parse_parameter_status(msg.subspan(5))) apply_parameter_status(*backend_session_, std::move(*ps));
            }
            break;
        case 'W': d.refuse = true; break;
        default: break;
    }
    return d;
}


}  // namespace gg::proxy::postgres
