#include "glassgate/session/asciicast.hpp"

#include <cstdint>
#include <optional>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace gg::session {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

/// Decodes UTF-8 from `in` into `out`. When `final` is false, a well-formed but incomplete sequence at
/// the end is left unconsumed (its bytes may continue in the next event of the same stream).
/// Returns the number of bytes consumed.
std::size_t decode_utf8(std::string_view in, std::string& out, bool final) {
    const std::size_t n = in.size();
    std::size_t i = 0;
    while (i < n) {
        const auto b = static_cast<unsigned char>(in[i]);
        if (b < 0x80) {
            out.push_back(static_cast<char>(b));
            ++i;
            continue;
        }
        std::size_t len = 0;
        unsigned char lo = 0x80;
        unsigned char hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            len = 3;
            if (b == 0xE0) lo = 0xA0;   // no overlong forms
            if (b == 0xED) hi = 0x9F;   // no surrogates
        } else if (b >= 0xF0 && b <= 0xF4) {
            len = 4;
            if (b == 0xF0) lo = 0x90;   // no overlong forms
            if (b == 0xF4) hi = 0x8F;   // nothing above U+10FFFF
        } else {
            out += replacement;         // 0x80-0xC1, 0xF5-0xFF never start a character
            ++i;
            continue;
        }
        std::size_t k = 1;
        bool bad = false;
        for (; k < len; ++k) {
            if (i + k >= n) break;
            const auto c = static_cast<unsigned char>(in[i + k]);
            const unsigned char min = k == 1 ? lo : 0x80;
            const unsigned char max = k == 1 ? hi : 0xBF;
            if (c < min || c > max) {
                bad = true;
                break;
            }
        }
        if (bad) {
            out += replacement;  // the maximal ill-formed subpart in[i, i+k) becomes one U+FFFD
            i += k;
            continue;
        }
        if (k < len) {           // input ended inside a sequence that is well-formed so far
            if (!final) return i;
            out += replacement;
            return n;
        }
        out.append(in.substr(i, len));
        i += len;
    }
    return n;
}

std::string format_seconds(std::uint64_t t_us) {
    std::string frac = std::to_string(t_us % 1000000);
    return std::to_string(t_us / 1000000) + "." + std::string(6 - frac.size(), '0') + frac;
}

/// One output/input stream: carries an incomplete UTF-8 sequence to the next event.
struct Stream {
    explicit Stream(const char* c) : code(c) {}
    const char* code;
    std::string pending;

    void feed(std::string& doc, std::uint64_t t_us, ByteView payload) {
        pending.append(as_chars(payload));
        std::string text;
        const std::size_t used = decode_utf8(pending, text, false);
        pending.erase(0, used);
        emit(doc, t_us, text);
    }
    /// End of recording: an incomplete sequence left over becomes U+FFFD at `t_us` (the last event's
    /// time, so the document's times never go backwards).
    void flush(std::string& doc, std::uint64_t t_us) {
        if (pending.empty()) return;
        std::string text;
        decode_utf8(pending, text, true);
        pending.clear();
        emit(doc, t_us, text);
    }
    void emit(std::string& doc, std::uint64_t t_us, const std::string& text) const {
        if (text.empty()) return;
        doc += "[" + format_seconds(t_us) + ", \"" + code + "\", " + json_quote(text) + "]\n";
    }
};

}  // namespace

std::string sanitize_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    decode_utf8(bytes, out, true);
    return out;
}

std::string json_quote(std::string_view s) {
    static constexpr char hexdigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back('"');
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out.push_back(hexdigits[c >> 4]);
                    out.push_back(hexdigits[c & 0x0F]);
                } else {
                    out.push_back(ch);
                }
        }
    }
    out.push_back('"');
    return out;
}

std::string to_asciicast_v2(const DecodedRecording& rec) {
    TerminalSize size;
    std::optional<std::string> term;
    bool have_size = false;
    for (const auto& ev : rec.events) {
        if (!have_size && ev.kind == EventKind::resize) {
            if (auto s = decode_resize(ev.payload); s && s->cols > 0 && s->rows > 0) {
                size = *s;
                have_size = true;
            }
        } else if (!term && ev.kind == EventKind::env) {
            if (auto e = decode_env(ev.payload); e && e->name == "TERM") term = sanitize_utf8(e->value);
        }
    }

    const auto& h = rec.header;
    boost::json::object header;
    header["version"] = 2;
    header["width"] = size.cols;
    header["height"] = size.rows;
    // Floor division: the start second, also for (odd) times before 1970.
    std::int64_t start_s = h.started_unix_us / 1000000;
    if (h.started_unix_us % 1000000 < 0) --start_s;
    header["timestamp"] = start_s;
    header["title"] = sanitize_utf8("glassgate " + h.protocol + " session " + h.session_id + ": " + h.identity +
                                    " -> " + h.target);
    if (term) header["env"] = boost::json::object{{"TERM", *term}};

    std::string doc = boost::json::serialize(header);
    doc.push_back('\n');

    Stream out("o");
    Stream err("o");
    Stream in("i");
    for (const auto& ev : rec.events) {
        switch (ev.kind) {
            case EventKind::term_output: out.feed(doc, ev.t_us, ev.payload); break;
            case EventKind::term_stderr: err.feed(doc, ev.t_us, ev.payload); break;
            case EventKind::term_input: in.feed(doc, ev.t_us, ev.payload); break;
            case EventKind::resize:
                if (auto s = decode_resize(ev.payload)) {
                    doc += "[" + format_seconds(ev.t_us) + ", \"r\", \"" + std::to_string(s->cols) + "x" +
                           std::to_string(s->rows) + "\"]\n";
                }
                break;
            default: break;
        }
    }
    const std::uint64_t end_t = rec.events.empty() ? 0 : rec.events.back().t_us;
    out.flush(doc, end_t);
    err.flush(doc, end_t);
    in.flush(doc, end_t);
    return doc;
}

}  // namespace gg::session
