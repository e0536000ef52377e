#include "glassgate/session/pg_transcript.hpp"

#include <boost/json/parse.hpp>

#include <cstdio>
#include <limits>
#include <map>

#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/session/audit_chain.hpp"

namespace gg::session {
namespace {

std::string offset(std::uint64_t t_us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "+%llu.%03llus", static_cast<unsigned long long>(t_us / 1'000'000),
                  static_cast<unsigned long long>(t_us / 1000 % 1000));
    return buf;
}

/// Printable text: control characters escaped, cut at `max`.
std::string show(std::string_view s, std::size_t max) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c == 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

std::string value(const std::optional<ByteView>& v, bool binary, std::size_t max) {
    if (!v) return "NULL";
    if (binary) return "\\x" + to_hex(v->first(std::min(v->size(), max / 2))) + (v->size() > max / 2 ? "..." : "");
    return "'" + show(as_chars(*v), max) + "'";
}

boost::json::object json_object(ByteView payload) {
    boost::system::error_code ec;
    auto v = boost::json::parse(as_chars(payload), ec);
    if (ec || !v.is_object()) return {};
    return std::move(v.as_object());
}
std::uint64_t json_u64(const boost::json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    if (v && v->is_uint64()) return v->as_uint64();
    if (v && v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
    return 0;
}
std::string json_str(const boost::json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

/// A message relayed in pieces: what it was, its size and hash, and what the recording kept of it.
template <class Line>
void line_large(std::uint64_t t_us, bool frontend, const boost::json::object& j, const Bytes& start,
                const TranscriptOptions& opts, const std::vector<std::string>& columns, Line& line) {
    const std::string type = json_str(j, "type");
    const auto bytes = json_u64(j, "bytes");
    const auto recorded = json_u64(j, "recorded");
    std::string about = "(" + std::to_string(bytes) + "-byte message";
    if (j.contains("interrupted")) {
        about += ", cut off after " + std::to_string(json_u64(j, "relayed")) + " bytes by the end of the session";
    }
    if (j.contains("redacted")) about += ", values redacted";
    else about += recorded >= bytes ? ", recorded whole" : ", first " + std::to_string(recorded) + " bytes recorded";
    if (const auto h = json_str(j, "sha256"); !h.empty()) about += ", sha256 " + h;
    about += ")";
    // The recorded start, past the 5-byte header: text up to its first NUL.
    const ByteView body = start.size() > 5 ? ByteView(start).subspan(5) : ByteView();
    auto text_at = [&](std::size_t from) {
        if (from >= body.size()) return std::string();
        auto rest = as_chars(body.subspan(from));
        return show(rest.substr(0, rest.find('\0')), opts.max_value);
    };
    if (frontend && type == "Q") {
        line(t_us, "QUERY", text_at(0) + " " + about);
    } else if (frontend && type == "P") {
        const auto name = text_at(0);
        line(t_us, "PARSE", (name.empty() ? std::string() : name + ": ") + text_at(as_chars(body).find('\0') + 1) + " " + about);
    } else if (frontend && type == "B") {
        line(t_us, "BIND", about);
    } else if (!frontend && type == "D") {
        if (!opts.rows) return;
        // The first value, when its start was recorded: i16 count | i32 length | bytes.
        std::string first;
        if (body.size() >= 6) {
            const auto n = (std::to_integer<std::uint32_t>(body[2]) << 24) | (std::to_integer<std::uint32_t>(body[3]) << 16) |
                           (std::to_integer<std::uint32_t>(body[4]) << 8) | std::to_integer<std::uint32_t>(body[5]);
            if (n != 0xFFFFFFFFu) {
                first = (columns.empty() ? std::string("?") : columns[0]) + "=" + std::to_string(n) + " bytes starting '" +
                        show(as_chars(body.subspan(6)), opts.max_value) + "' ";
            }
        }
        line(t_us, "  row", first + about);
    } else if (type == "d") {
        line(t_us, "COPY", "data " + about);
    } else {
        line(t_us, frontend ? ">" : "<", "message '" + type + "' " + about);
    }
}

}  // namespace

std::string render_pg_transcript(const DecodedRecording& rec, const TranscriptOptions& opts) {
    std::string out;
    const auto& h = rec.header;
    out += "session " + h.session_id + "  " + h.protocol + "  " + h.identity + " -> " + h.target;
    if (auto* db = h.extra.if_contains("database"); db && db->is_string()) out += " (database " + std::string(db->as_string()) + ")";
    if (auto* c = h.extra.if_contains("client"); c && c->is_string()) out += " from " + std::string(c->as_string());
    // The header is read from a file: a start time the clock cannot hold (beyond the years 1678-2262
    // of system_clock's nanoseconds) is shown as the number it is.
    constexpr std::int64_t max_us = std::numeric_limits<std::int64_t>::max() / 1000;
    if (h.started_unix_us < -max_us || h.started_unix_us > max_us) {
        out += ", started_unix_us " + std::to_string(h.started_unix_us) + "\n";
    } else {
        out += ", started " + format_utc(TimePoint(std::chrono::microseconds(h.started_unix_us))) + "\n";
    }

    auto line = [&](std::uint64_t t, std::string_view kind, const std::string& text) {
        out += offset(t);
        out += "  ";
        out += kind;
        out += std::string(kind.size() < 9 ? 9 - kind.size() : 1, ' ');
        out += text;
        out += "\n";
    };
    std::vector<std::string> columns;
    std::uint64_t copy_in = 0, copy_out = 0;
    bool copy_summarized[2] = {false, false};  // a pg_copy summary came before the CopyDone (per side)
    Bytes large[2];                             // the recorded start of a message relayed in pieces
    constexpr std::size_t large_shown = 64 * 1024;
    for (const auto& ev : rec.events) {
        const int side = ev.direction == Direction::client_to_server ? 0 : 1;
        if (ev.kind == EventKind::annotation) {
            line(ev.t_us, "--", decode_text(ev.payload));
            continue;
        }
        if (ev.kind == EventKind::pg_large) {
            auto& b = large[side];
            if (b.size() < large_shown) b.insert(b.end(), ev.payload.begin(), ev.payload.begin() + static_cast<std::ptrdiff_t>(std::min(ev.payload.size(), large_shown - b.size())));
            continue;
        }
        if (ev.kind == EventKind::pg_large_end) {
            line_large(ev.t_us, side == 0, json_object(ev.payload), large[side], opts, columns, line);
            large[side].clear();
            continue;
        }
        if (ev.kind == EventKind::pg_copy) {
            const auto j = json_object(ev.payload);
            copy_summarized[side] = true;
            (side == 0 ? copy_in : copy_out) = 0;
            std::string text = std::string(side == 0 ? "client sent " : "server sent ") + std::to_string(json_u64(j, "bytes")) +
                               " bytes in " + std::to_string(json_u64(j, "messages")) + " messages, sha256 " + json_str(j, "sha256");
            const auto recorded = json_u64(j, "recorded_messages");
            text += recorded == json_u64(j, "messages") ? ", all recorded" : ", " + std::to_string(recorded) + " recorded";
            const auto end = json_str(j, "end");
            if (end == "fail") text += "; the client aborted it";
            else if (end == "error") text += "; ended by an error";
            else if (end == "interrupted") text += "; cut off by the end of the session";
            line(ev.t_us, "COPY", text);
            continue;
        }
        if (ev.kind != EventKind::pg_frontend && ev.kind != EventKind::pg_backend) continue;
        // An event holds one or more whole messages (all those relayed from one read).
        for (ByteView rest = ev.payload; !rest.empty();) {
            auto d = pg::decode_message(rest);
            const pg::MessageDecoded* md = d ? std::get_if<pg::MessageDecoded>(&*d) : nullptr;
            if (!md) {
                line(ev.t_us, "?", "unreadable message (" + std::to_string(rest.size()) + " bytes)");
                break;
            }
            const auto& m = md->message;
            rest = rest.subspan(md->consumed);
            if (ev.kind == EventKind::pg_frontend) {
                switch (m.type) {
                    case 'Q':
                        if (auto q = pg::parse_query(m.body)) line(ev.t_us, "QUERY", show(*q, 100000));
                        break;
                    case 'P':
                        if (auto p = pg::parse_parse(m.body)) {
                            line(ev.t_us, "PARSE", (p->statement.empty() ? std::string() : std::string(p->statement) + ": ") + show(p->query, 100000));
                        }
                        break;
                    case 'B':
                        if (auto b = pg::parse_bind(m.body)) {
                            std::string text = b->statement.empty() ? "(unnamed)" : std::string(b->statement);
                            for (std::size_t i = 0; i < b->params.size(); ++i) {
                                bool binary = false;
                                if (b->param_formats.size() == 1) binary = b->param_formats[0] == 1;
                                else if (i < b->param_formats.size()) binary = b->param_formats[i] == 1;
                                text += (i == 0 ? "  $" : ", $") + std::to_string(i + 1) + "=" + value(b->params[i], binary, opts.max_value);
                            }
                            line(ev.t_us, "BIND", text);
                        }
                        break;
                    case 'E':
                        if (auto e = pg::parse_execute(m.body)) {
                            line(ev.t_us, "EXECUTE", e->portal.empty() ? "" : std::string(e->portal));
                        }
                        break;
                    case 'C':
                        if (auto c = pg::parse_close(m.body)) {
                            line(ev.t_us, "CLOSE", std::string(c->kind == 'S' ? "statement " : "portal ") + std::string(c->name));
                        }
                        break;
                    case 'S': line(ev.t_us, "SYNC", ""); break;
                    case 'd': copy_in += m.body.size(); break;
                    case 'c':
                        if (!copy_summarized[0]) line(ev.t_us, "COPY", "client sent " + std::to_string(copy_in) + " bytes");
                        copy_summarized[0] = false;
                        copy_in = 0;
                        break;
                    case 'f':
                        if (!copy_summarized[0]) line(ev.t_us, "COPY", "client aborted COPY");
                        copy_summarized[0] = false;
                        copy_in = 0;
                        break;
                    case 'X': line(ev.t_us, "END", "client sent Terminate"); break;
                    default: break;  // Describe, Flush: not shown
                }
            } else {
                switch (m.type) {
                    case 'T':
                        if (auto cols = pg::parse_row_description(m.body)) columns = *cols;
                        break;
                    case 'D':
                        if (opts.rows) {
                            if (auto row = pg::parse_data_row(m.body)) {
                                std::string text;
                                for (std::size_t i = 0; i < row->size(); ++i) {
                                    if (i) text += ", ";
                                    text += (i < columns.size() ? columns[i] : "?") + "=" + value((*row)[i], false, opts.max_value);
                                }
                                line(ev.t_us, "  row", text);
                            }
                        }
                        break;
                    case 'C':
                        if (auto tag = pg::parse_command_complete(m.body)) line(ev.t_us, "->", std::string(*tag));
                        break;
                    case 'E':
                        if (auto f = pg::parse_error_fields(m.body)) line(ev.t_us, "ERROR", f->sqlstate + " " + show(f->message, 1000));
                        break;
                    case 'N':
                        if (auto f = pg::parse_error_fields(m.body)) line(ev.t_us, "NOTICE", show(f->message, 1000));
                        break;
                    case 'G': line(ev.t_us, "COPY", "server waits for COPY data"); break;
                    case 'H': line(ev.t_us, "COPY", "server sends COPY data"); break;
                    case 'd': copy_out += m.body.size(); break;
                    case 'c':
                        if (!copy_summarized[1]) line(ev.t_us, "COPY", "server sent " + std::to_string(copy_out) + " bytes");
                        copy_summarized[1] = false;
                        copy_out = 0;
                        break;
                    case 'I': line(ev.t_us, "->", "(empty query)"); break;
                    default: break;  // ReadyForQuery, ParseComplete, BindComplete, ...
                }
            }
        }
    }
    if (!rec.report.sealed) out += "(recording not sealed: " + rec.report.summary() + ")\n";
    return out;
}

}  // namespace gg::session
