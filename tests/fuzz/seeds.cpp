// Writes the seed corpora of the fuzz targets (corpus/<target>/<name>) from the byte tables, documents
// and exchanges of the unit tests (tests/unit/...), so that every target starts from valid inputs of
// every kind its parser knows. Deterministic: the same files every run.
//   gg_fuzz_seeds <source dir>      (writes <source dir>/tests/fuzz/corpus/...)

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/serialize.hpp>

#include "glassgate/protocols/crypto.hpp"
#include "glassgate/protocols/oidc/base64url.hpp"
#include "glassgate/protocols/postgres/codec.hpp"
#include "glassgate/protocols/postgres/scram.hpp"
#include "glassgate/session/audit_chain.hpp"
#include "glassgate/session/breakglass.hpp"
#include "glassgate/session/recording.hpp"
#include "recording_key.hpp"

using namespace gg;
using namespace std::string_literals;
using namespace std::string_view_literals;
namespace fs = std::filesystem;

namespace {

fs::path corpus_root;

void put(std::string_view target, std::string_view name, std::string_view content) {
    const auto dir = corpus_root / target;
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary).write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string str(const Bytes& b) { return std::string(as_chars(b)); }
std::string flag(unsigned f) { return std::string(1, static_cast<char>(f)); }

// ---- PostgreSQL ------------------------------------------------------------------------------------
const std::string ssl_req = str(pg::ssl_request());
const std::string gssenc = "\x00\x00\x00\x08\x04\xd2\x16\x30"s;
const std::string cancel = str(pg::cancel_request(4711, 0xdeadbeef));
const std::string client_hello = "\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"s;
const std::string psql = str(pg::startup_message({{"user", "alice"}, {"database", "appdb"}, {"application_name", "psql"}}));
const std::string with_options = str(pg::startup_message(
    {{"user", "alice"}, {"database", "appdb/reporting"}, {"options", "-c glassgate.reason=INC-1 -csearch_path=a\\ b --work_mem=4MB"}}));
const std::string replication = str(pg::startup_message({{"user", "alice"}, {"database", "shop"}, {"replication", "true"}}));

void postgres() {
    put("pg_startup", "psql", psql);
    put("pg_startup", "ssl_request", ssl_req);
    put("pg_startup", "gssenc_request", gssenc);
    put("pg_startup", "cancel_request", cancel);
    put("pg_startup", "options", with_options);
    put("pg_startup", "replication", replication);
    put("pg_startup", "protocol_3_2", "\x00\x00\x00\x11\x00\x03\x00\x02user\0bob\0\0"sv);
    put("pg_startup", "partial", psql.substr(0, 11));

    put("pg_negotiation", "ssl_then_startup", flag(3) + ssl_req + with_options);
    put("pg_negotiation", "no_tls_answer_n", flag(2) + ssl_req + psql);
    put("pg_negotiation", "plaintext", flag(2) + psql);
    put("pg_negotiation", "direct_tls", flag(5) + client_hello);
    put("pg_negotiation", "gssenc_ssl_startup", flag(1) + gssenc + ssl_req + psql);
    put("pg_negotiation", "cancel", flag(3) + cancel);
    put("pg_negotiation", "replication", flag(3) + ssl_req + replication);
    put("pg_negotiation", "unknown_target", flag(2) + str(pg::startup_message({{"user", "x"}, {"database", "nope"}})));
    put("pg_negotiation", "bytes_behind_ssl", flag(9) + ssl_req + psql);

    pg::Bind b;
    b.portal = "";
    b.statement = "s1";
    b.param_formats = {0, 1};
    const std::string v1 = "42", v2 = "\x00\x01\x02\x03"s;
    b.params = {as_bytes(v1), std::nullopt, as_bytes(v2)};
    b.param_formats = {1};
    b.result_formats = {0};
    const std::string bind = str(pg::bind(b));
    const std::string parse = "P\x00\x00\x00\x1b" "s1\0select $1::int\0\x00\x01\x00\x00\x00\x17"s;
    const std::string execute = "E\x00\x00\x00\x09\0\x00\x00\x00\x00"s;
    const std::string describe = "D\x00\x00\x00\x08Ss1\0"s;
    const std::string close = "C\x00\x00\x00\x08Ss1\0"s;
    const std::string sync = "S\x00\x00\x00\x04"s;
    const std::string frontend = str(pg::query("select 1;")) + parse + bind + describe + execute + close + sync +
                                 str(pg::password_message("secret")) + str(pg::terminate());
    pg::Fields f;
    f.severity = pg::Severity::fatal;
    f.sqlstate = "28P01";
    f.message = "password authentication failed";
    f.detail = "detail";
    f.hint = "hint";
    const std::string row_desc =
        "T\x00\x00\x00\x21\x00\x01?column?\0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"s;
    const std::string data_row = "D\x00\x00\x00\x13\x00\x02\x00\x00\x00\x01" "1\xff\xff\xff\xff"s;
    const std::string data_row2 = "D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x01" "1"s;
    const std::string complete = "C\x00\x00\x00\x0dSELECT 1\0"s;
    const std::string sasl = "R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\0\0"s;
    const std::string md5 = "R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"s;
    const std::string backend = str(pg::authentication_ok()) + sasl + md5 + str(pg::parameter_status("server_version", "15.4")) +
                                str(pg::backend_key_data(4711, 0xdeadbeef)) + str(pg::ready_for_query('I')) + row_desc +
                                data_row2 + complete + str(pg::error_response(f)) + str(pg::notice_response(f));
    put("pg_frame", "frontend", flag(0) + frontend);
    put("pg_frame", "backend", flag(0) + backend);
    put("pg_frame", "small_limit", flag(2) + backend);
    put("pg_frame", "bad_length", flag(0) + "Q\x00\x00\x00\x03"s);
    put("pg_messages", "frontend", flag(0) + frontend);
    put("pg_messages", "backend", flag(1) + backend + data_row);
    put("pg_messages", "bind_body", flag(2) + "B" + bind.substr(5));
    put("pg_messages", "parse_body", flag(2) + "P" + parse.substr(5));
    put("pg_messages", "error_body", flag(3) + "E" + str(pg::error_response(f)).substr(5));
    put("pg_messages", "auth_sasl_body", flag(3) + "R" + sasl.substr(5));
    put("pg_messages", "data_row_body", flag(3) + "D" + data_row.substr(5));

    // SCRAM: the unit tests' exchange (RFC 5802 nonce, password "pencil").
    const std::string server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    pg::ScramClient c("pencil", "rOprNGfwEbeRWgbNEkqO");
    const std::string cf = c.client_first();
    const std::string final_msg = c.on_server_first(server_first).value();
    const std::string without_proof = final_msg.substr(0, final_msg.find(",p="));
    const std::string auth_message = cf.substr(3) + "," + server_first + "," + without_proof;
    const auto sig = crypto::hmac_sha256(c.keys().server_key, as_bytes(auth_message));
    const std::string server_final = "v=" + pg::base64_encode(sig);
    put("pg_scram", "exchange", flag(0) + server_first + "\n" + server_final);
    put("pg_scram", "exchange_cached", flag(1) + server_first + "\n" + server_final);
    put("pg_scram", "server_error", flag(1) + server_first + "\ne=invalid-proof");
    put("pg_scram", "extension", flag(1) + "m=ext," + server_first);
    put("pg_scram", "min_iterations", flag(0) + server_first.substr(0, server_first.size() - 4) + "1000\nv=AAAA");
    put("pg_scram", "out_of_order", flag(2) + server_first);
    put("base64url", "scram_salt", flag(1) + "W22ZaJ0SNY7soEsUEjb6gQ==");
    put("base64url", "scram_signature", flag(1) + server_final.substr(2));
}

// ---- SSH -------------------------------------------------------------------------------------------
const std::string ed_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEpjwoLWzUQ3aZIuvbIHTqN25OeSrb0Z7PPAgsAOYjVj";

std::string sftp_packet(int type, std::uint32_t id, const std::string& body, bool with_id = true) {
    Bytes out;
    ByteWriter w(out);
    w.u32(static_cast<std::uint32_t>(1 + (with_id ? 4 : 0) + body.size()));
    w.u8(static_cast<std::uint8_t>(type));
    if (with_id) w.u32(id);
    w.str(body);
    return str(out);
}
std::string sftp_string(const std::string& s) {
    Bytes out;
    ByteWriter w(out);
    w.u32(static_cast<std::uint32_t>(s.size()));
    w.str(s);
    return str(out);
}
std::string u32(std::uint32_t v) {
    Bytes out;
    ByteWriter(out).u32(v);
    return str(out);
}
std::string u64(std::uint64_t v) {
    Bytes out;
    ByteWriter(out).u64(v);
    return str(out);
}
/// Pieces for the sftp target: control byte (direction, length) + bytes, at most 127 per piece.
std::string pieces(bool from_server, const std::string& bytes) {
    std::string out;
    for (std::size_t at = 0; at < bytes.size(); at += 127) {
        const auto n = std::min<std::size_t>(127, bytes.size() - at);
        out += static_cast<char>((from_server ? 0x80 : 0) | n);
        out += bytes.substr(at, n);
    }
    return out;
}

void ssh() {
    put("ssh_decisions", "env", flag(1) + "alice:web01\nenv\nLANG\nLC_*\nLANG\nTERM");
    put("ssh_decisions", "sftp", flag(1) + "web01\nsubsystem\nsftp");
    put("ssh_decisions", "x11", flag(2 | 4 * 3) + "bob@example.com:db-01.prod\nx11-req\n");
    put("ssh_decisions", "keys", flag(0) + ed_key + " comment\nexec\nls -l\n[A-Z]*\n" + ed_key);
    put("ssh_decisions", "bad_login", flag(6) + "a:b:c\nauth-agent-req@openssh.com\n\n\\*");

    const std::string attrs = u32(0);
    std::string c2s = sftp_packet(1, 0, u32(3), false);
    std::string s2c = sftp_packet(2, 0, u32(3), false);
    std::string session = pieces(false, c2s) + pieces(true, s2c);
    auto exchange = [&](const std::string& req, const std::string& rep) {
        session += pieces(false, req) + pieces(true, rep);
    };
    exchange(sftp_packet(3, 1, sftp_string("/tmp/a") + u32(0x1a) + attrs), sftp_packet(102, 1, sftp_string("h1")));
    exchange(sftp_packet(6, 2, sftp_string("h1") + u64(0) + sftp_string("hello")), sftp_packet(101, 2, u32(0) + sftp_string("") + sftp_string("")));
    exchange(sftp_packet(5, 3, sftp_string("h1") + u64(0) + u32(5)), sftp_packet(103, 3, sftp_string("hello")));
    exchange(sftp_packet(4, 4, sftp_string("h1")), sftp_packet(101, 4, u32(0) + sftp_string("") + sftp_string("")));
    exchange(sftp_packet(18, 5, sftp_string("/tmp/a") + sftp_string("/tmp/b")), sftp_packet(101, 5, u32(0) + sftp_string("ok") + sftp_string("")));
    exchange(sftp_packet(200, 6, sftp_string("posix-rename@openssh.com") + sftp_string("/tmp/b") + sftp_string("/tmp/c")),
             sftp_packet(101, 6, u32(0) + sftp_string("") + sftp_string("")));
    exchange(sftp_packet(13, 7, sftp_string("/tmp/c")), sftp_packet(101, 7, u32(2) + sftp_string("no such file") + sftp_string("")));
    exchange(sftp_packet(14, 8, sftp_string("/tmp/d") + attrs), sftp_packet(101, 8, u32(0) + sftp_string("") + sftp_string("")));
    exchange(sftp_packet(11, 9, sftp_string("/tmp")), sftp_packet(102, 9, sftp_string("d1")));
    exchange(sftp_packet(15, 10, sftp_string("/tmp/d")), sftp_packet(101, 10, u32(3) + sftp_string("denied") + sftp_string("")));
    put("sftp", "session", session);
    put("sftp", "bad_length", pieces(false, u32(0) + "\x01"));
    put("sftp", "open_fails", pieces(false, sftp_packet(3, 1, sftp_string("/etc/shadow") + u32(1) + attrs)) +
                                   pieces(true, sftp_packet(101, 1, u32(3) + sftp_string("denied") + sftp_string(""))));

    put("authorized_keys", "append", ed_key + " glassgate-rotation\n# comment\n\nssh-rsa AAAAB3NzaC1yc2E= old\r\n");
    put("authorized_keys", "present",
        ed_key + "\ncommand=\"echo a b\",no-pty " + ed_key + " rotated\nssh-rsa AAAAB3NzaC1yc2E= x");
    put("authorized_keys", "options_quoted", ed_key + "\nfrom=\"10.0.0.1\",command=\"a \\\" b\" ssh-ed25519 AAAA\n");
}

// ---- OIDC ------------------------------------------------------------------------------------------
std::string b64u(std::string_view s) { return oidc::base64url_encode(as_bytes(s)); }

void identity_provider() {
    // RFC 8037 A.1: the Ed25519 key (d, x) of the fuzz key set's "ed1".
    const auto seed = oidc::base64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").value();
    auto sign = [&](const std::string& header, const std::string& claims) {
        const std::string input = b64u(header) + "." + b64u(claims);
        const auto sig = crypto::ed25519_sign(seed, as_bytes(input));
        return input + "." + oidc::base64url_encode(sig);
    };
    const std::string claims =
        R"({"iss":"https://idp.example.com","aud":"glassgate","sub":"alice","exp":1800003600,"iat":1799999990,"nbf":1799999990,"groups":["dba","ops"],"email":"alice@example.com"})";
    const std::string claims_azp =
        R"({"iss":"https://idp.example.com","aud":["glassgate","other"],"azp":"glassgate","sub":"bob","exp":1800003600,"groups":"dba"})";
    put("jwt", "eddsa_kid", flag(0) + sign(R"({"alg":"EdDSA","kid":"ed1","typ":"JWT"})", claims));
    put("jwt", "eddsa_no_kid", flag(2) + sign(R"({"alg":"EdDSA"})", claims_azp));
    put("jwt", "structured_rs256", flag(5) + R"({"alg":"RS256","kid":"rsa1"})" + "\n" + claims + "\nsig");
    put("jwt", "structured_es256", flag(5) + R"({"alg":"ES256","kid":"ec1"})" + "\n" + claims_azp + "\n" +
                                       std::string(64, 'x'));
    put("jwt", "structured_email", flag(13) + R"({"alg":"PS256","kid":"rsa1"})" + "\n" + claims + "\nsig");
    put("jwt", "alg_none", flag(4) + R"({"alg":"none"})" + "\n" + claims + "\n");
    put("jwt", "hs256", flag(0) + b64u(R"({"alg":"HS256","kid":"rsa1"})") + "." + b64u(claims) + ".c2ln");
    put("jwt", "crit", flag(5) + R"({"alg":"EdDSA","kid":"ed1","crit":["exp"]})" + "\n" + claims + "\nsig");
    put("jwt", "expired", flag(5) + R"({"alg":"EdDSA","kid":"ed1"})" + "\n" +
                              R"({"iss":"https://idp.example.com","aud":"glassgate","sub":"alice","exp":1000})" + "\nsig");

    const std::string jwks =
        R"({"keys":[{"kty":"RSA","kid":"rsa1","use":"sig","alg":"RS256","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},)"
        R"({"kty":"EC","kid":"ec1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},)"
        R"({"kty":"OKP","kid":"ed1","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","key_ops":["verify"]}]})";
    put("jwks", "three_keys", flag(0) + jwks);
    put("jwks", "small_policy", flag(1) + jwks);
    put("jwks", "rejections",
        flag(0) + R"({"keys":[{"kty":"XYZ","kid":"a"},{"kty":"oct","kid":"b","alg":"HS256"},{"kid":"c","n":"AQAB"},)"
                  R"({"kty":"OKP","crv":"X25519","kid":"d","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},)"
                  R"({"kty":"OKP","crv":"Ed25519","kid":"e","x":"AQAB"},{"kty":"EC","crv":"P-384","kid":"f","x":"AQAB","y":"AQAB"},)"
                  R"({"kty":"OKP","crv":"Ed25519","kid":"ed1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"x"}]})");
    put("jwks", "html", flag(0) + "<html><body>502 Bad Gateway</body></html>");

    const std::string discovery = R"({
  "issuer": "https://idp.example.com",
  "authorization_endpoint": "https://idp.example.com/auth",
  "token_endpoint": "https://idp.example.com/token",
  "userinfo_endpoint": "https://idp.example.com/userinfo",
  "jwks_uri": "https://idp.example.com/certs",
  "device_authorization_endpoint": "https://idp.example.com/device",
  "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
  "id_token_signing_alg_values_supported": ["PS384", "RS256", "ES256", "EdDSA"],
  "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.example.com/token"}
})";
    put("oidc_discovery", "provider", flag(0) + discovery);
    put("oidc_discovery", "minimal", flag(0) + R"({"issuer":"https://idp.example.com","jwks_uri":"http://127.0.0.1:4000/jwks","token_endpoint":"http://127.0.0.1:4000/token"})");
    put("oidc_discovery", "trailing_slash", flag(1) + R"({"issuer":"https://idp.example.com/","jwks_uri":"https://j/","token_endpoint":"https://t/"})");
    put("oidc_discovery", "wrong_issuer", flag(2) + R"({"issuer":"https://evil.example.com","jwks_uri":"ftp://j","token_endpoint":"/t"})");

    const std::string auth =
        R"({"device_code":"GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS","user_code":"WDJB-MJHT","verification_uri":"https://idp.example.com/device","verification_uri_complete":"https://idp.example.com/device?user_code=WDJB-MJHT","expires_in":1800,"interval":5})";
    const std::string rs = "\x1e";
    put("device_flow", "approved", auth + rs + "\x01\x01" + R"({"error":"authorization_pending"})" + rs + "\x01\x01" +
                                       R"({"error":"slow_down"})" + rs + "\x00\x02" +
                                       R"({"id_token":"a.b.c","access_token":"at","token_type":"Bearer","expires_in":3600})");
    put("device_flow", "denied", R"({"device_code":"d","user_code":"u","verification_url":"https://i/d","expires_in":99999,"interval":0})" +
                                     rs + "\x02\x00" + R"({"error":"access_denied","error_description":"no"})" + rs +
                                     "\x01\x00{}");
    put("device_flow", "expired", auth + rs + "\x01\xff" + R"({"error":"expired_token"})");
    put("device_flow", "server_error", auth + rs + "\x05\x00<html>" + rs + "\x07\x00");
    put("base64url", "jwk_n", flag(0) + "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj");
    put("base64url", "aqab", flag(0) + "AQAB");
    put("base64url", "one_byte", flag(0) + "_w");
}

// ---- recordings ------------------------------------------------------------------------------------
session::RecordingHeader rec_header(const std::string& protocol) {
    session::RecordingHeader h;
    h.session_id = "01HZY3K6J7V4T1X9Q2M8N5B0CD";
    h.protocol = protocol;
    h.target = protocol == "ssh" ? "web01" : "appdb";
    h.identity = "alice";
    h.started_unix_us = 1'764'806'400'000'000;
    h.extra["mode"] = "sso";
    return h;
}

std::string recording(const std::string& protocol, const std::vector<session::Event>& events, bool checkpoint_mid,
                      bool seal) {
    session::RecordingEncoder enc(fuzz::recording_key(), rec_header(protocol));
    Bytes out = enc.begin();
    std::size_t i = 0;
    for (const auto& e : events) {
        auto b = enc.encode(e);
        out.insert(out.end(), b.begin(), b.end());
        if (checkpoint_mid && ++i == events.size() / 2) {
            auto c = enc.checkpoint(e.t_us);
            out.insert(out.end(), c.begin(), c.end());
        }
    }
    if (seal) {
        auto s = enc.seal(events.empty() ? 1 : events.back().t_us + 1);
        out.insert(out.end(), s.begin(), s.end());
    }
    return str(out);
}

void recordings() {
    using session::Direction;
    using session::Event;
    using session::EventKind;
    const std::vector<Event> ssh_events = {
        {0, EventKind::resize, Direction::client_to_server, session::encode_resize({120, 40})},
        {10, EventKind::env, Direction::client_to_server, session::encode_env("LANG", "C.UTF-8")},
        {20, EventKind::term_output, Direction::server_to_client, to_bytes("$ \xe2\x82")},
        {30, EventKind::term_output, Direction::server_to_client, to_bytes("\xac ok\r\n\x1b[1mbold\x1b[0m \xff\xfe")},
        {40, EventKind::term_input, Direction::client_to_server, to_bytes("ls -l\r")},
        {50, EventKind::term_stderr, Direction::server_to_client, to_bytes("err\n")},
        {60, EventKind::resize, Direction::client_to_server, session::encode_resize({80, 24})},
        {70, EventKind::annotation, Direction::none, to_bytes("time-cap warning sent")},
        {80, EventKind::exit_status, Direction::server_to_client, session::encode_exit_status(0)},
        {90, EventKind::exit_signal, Direction::server_to_client, session::encode_exit_signal({"KILL", true, "killed"})},
    };
    const std::vector<Event> exec_events = {
        {0, EventKind::exec, Direction::client_to_server, to_bytes("uname -a")},
        {5, EventKind::subsystem, Direction::client_to_server, to_bytes("sftp")},
        {6, EventKind::sftp, Direction::none, to_bytes(R"({"op":"close","path":"/tmp/a","read":0,"written":5,"sha256":"00"})")},
        {7, static_cast<EventKind>(0x99), Direction::none, to_bytes("unknown kind")},
    };
    pg::Fields f;
    f.sqlstate = "42P01";
    f.message = "relation \"nope\" does not exist";
    pg::Bind b;
    b.statement = "s1";
    const std::string v = "42";
    b.params = {as_bytes(v), std::nullopt};
    const std::string parse = "P\x00\x00\x00\x1b" "s1\0select $1::int\0\x00\x01\x00\x00\x00\x17"s;
    const std::string row_desc =
        "T\x00\x00\x00\x21\x00\x01?column?\0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"s;
    const std::string data_row = "D\x00\x00\x00\x13\x00\x02\x00\x00\x00\x01" "1\xff\xff\xff\xff"s;
    const std::string complete = "C\x00\x00\x00\x0dSELECT 1\0"s;
    const std::vector<Event> pg_events = {
        {0, EventKind::pg_frontend, Direction::client_to_server, pg::query("select 1; select * from nope")},
        {10, EventKind::pg_backend, Direction::server_to_client, to_bytes(row_desc + data_row + complete)},
        {20, EventKind::pg_backend, Direction::server_to_client, pg::error_response(f)},
        {30, EventKind::pg_frontend, Direction::client_to_server, to_bytes(parse + str(pg::bind(b)) + "E\x00\x00\x00\x09\0\x00\x00\x00\x00S\x00\x00\x00\x04"s)},
        {40, EventKind::pg_backend, Direction::server_to_client, to_bytes(complete + str(pg::ready_for_query('T')))},
        {50, EventKind::pg_large, Direction::server_to_client, to_bytes(data_row.substr(0, 7))},
        {51, EventKind::pg_large, Direction::server_to_client, to_bytes(data_row.substr(7))},
        {52, EventKind::pg_large_end, Direction::server_to_client, to_bytes(R"({"type":"D","bytes":20,"recorded":20,"sha256":"00"})")},
        {60, EventKind::pg_copy, Direction::server_to_client,
         to_bytes(R"({"direction":"out","messages":3,"bytes":120,"recorded_messages":3,"sha256":"00","end":"CopyDone"})")},
        {70, EventKind::pg_large_end, Direction::client_to_server, to_bytes(R"({"type":"B","bytes":2000000,"recorded":0,"redacted":true})")},
        {80, EventKind::annotation, Direction::none, to_bytes("rows cut: 1000 of 5000 recorded")},
        {90, EventKind::pg_backend, Direction::server_to_client, pg::notice_response(f)},
    };
    const std::string ssh_rec = recording("ssh", ssh_events, true, true);
    const std::string exec_rec = recording("ssh", exec_events, false, false);
    const std::string pg_rec = recording("postgres", pg_events, true, true);
    for (const char* target : {"recording", "asciicast", "pg_transcript"}) {
        put(target, "ssh_sealed.ggrec", ssh_rec);
        put(target, "pg_sealed.ggrec", pg_rec);
    }
    put("recording", "exec_unsealed.ggrec", exec_rec);
    put("recording", "truncated.ggrec", pg_rec.substr(0, pg_rec.size() - 30));
    put("recording", "zero_tail.ggrec", exec_rec + std::string(40, '\0'));
    put("recording", "empty_sealed.ggrec", recording("ssh", {}, false, true));
    put("asciicast", "exec_unsealed.ggrec", exec_rec);
}

// ---- audit, break-glass ------------------------------------------------------------------------------
void audit_and_breakglass() {
    const Bytes key = to_bytes("glassgate fuzz audit key");
    std::string log;
    crypto::Digest prev{};
    const char* types[] = {"session.start", "auth.denied", "session.end"};
    for (int i = 1; i <= 3; ++i) {
        session::AuditEvent ev;
        ev.time = session::TimePoint(std::chrono::seconds(1'764'806'400 + i));
        ev.type = types[i - 1];
        ev.session_id = "01HZY3K6J7V4T1X9Q2M8N5B0CD";
        ev.identity = "alice";
        ev.target = "appdb";
        ev.source = "127.0.0.1:50000";
        ev.outcome = i == 2 ? "denied" : "ok";
        ev.reason = i == 2 ? "unknown target" : "";
        ev.details["n"] = i;
        ev.details["note"] = "\"quoted\" \xc3\xa9";
        auto l = session::make_audit_line(ev, static_cast<std::uint64_t>(i), prev, key);
        prev = l.hash;
        log += l.text + "\n";
    }
    put("audit", "chain", flag(0) + log);
    put("audit", "edited", flag(0) + log.substr(0, 60) + "X" + log.substr(61));
    put("audit", "structured", flag(1) + "\x03session.start\x05" "alice\x05" "appdb\x02ok\x01\x02\x03\x04\x05\x06\x07\x08");

    namespace bg = session::breakglass;
    const Bytes secret = bg::passphrase_to_bytes("GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ").value();
    Bytes random(2 * secret.size());
    for (std::size_t i = 0; i < random.size(); ++i) random[i] = static_cast<std::byte>(i * 37 + 11);
    auto shares = bg::split(secret, 5, 3, random).value();
    put("shamir", "three_of_five", flag(0) + bg::format_share(shares[0]) + "\n" + bg::format_share(shares[2]) + "\n" +
                                       bg::format_share(shares[4]) + "\n");
    put("shamir", "too_few", flag(0) + bg::format_share(shares[1]) + "\n" + bg::format_share(shares[3]));
    put("shamir", "recheck", flag(2) + "gg1-2-1-deadbeef-0000\ngg1-2-2-cafe00-0000\ngg1-3-1-00-0000\n");
    put("shamir", "typo", flag(0) + "gg2-2-1-de-0000\n gg1-2-1-zz-0000 \n");
    put("shamir", "split", flag(1) + "\x05\x03" + std::string(20, '\x42') + "0123456789abcdefghijklmnopqrstuvwxyzABCD");

    put("breakglass", "passphrase", flag(0) + "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ");
    put("breakglass", "passphrase_typed", flag(0) + "gezdgnbvgy3tqojq gezdgnbvgy3tqojq");
    put("breakglass", "reason", flag(1) + "  INC-1234: primary down  ");
    bg::Declaration d;
    d.reason = "INC-1";
    d.declared_by = "cli:root";
    d.declared_at = session::TimePoint(std::chrono::seconds(1'764'806'400));
    d.until = d.declared_at + std::chrono::hours(2);
    put("breakglass", "declaration", flag(2) + boost::json::serialize(bg::to_json(d)));
    auto a = bg::stage(std::nullopt, "breakglass-dba", "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", "cli:root",
                       d.declared_at, 5, 3);
    auto used = bg::consume(a, "01HZY3K6J7V4T1X9Q2M8N5B0CD", "appdb", "INC-1", "10.0.0.1", d.declared_at).value();
    put("breakglass", "account_staged", flag(3) + bg::serialize(a));
    put("breakglass", "account_in_use", flag(3) + bg::serialize(used));
}

// ---- config ----------------------------------------------------------------------------------------
void config(const fs::path& source) {
    std::ifstream in(source / "config/glassgate.example.toml");
    std::string line, example;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        example += line + "\n";
    }
    put("config", "example.toml", flag(0) + example);
    put("config", "minimal_pg.toml", flag(0) + R"([listen]
postgres = "127.0.0.1:6432"
allow_plaintext = true

[[target]]
name = "appdb"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
backend_user = "app"
max_session = "8h"
)");
    put("config", "ssh_target.toml", flag(0) + "[[target]]\nname = \"a\"\nprotocol = \"ssh\"\naddress = \"h:22\"\nbackend_user = \"u\"\n"
                                                "host_key = \"" + ed_key + "\"\nauthorized_keys = \"etc/keys/%u\"\n");
    put("config", "errors.toml", flag(0) + "[server]\nstate_dir = 5\nbogus = true\n[[target]]\nname = \"\"\nprotocol = \"x\"\n[listen\n");
    put("config", "duration", flag(2) + "1h30m");
    put("config", "duration_ms", flag(2) + "2d500ms");
    put("config", "address_v6", flag(3) + "[::1]:6432");
    put("config", "address_name", flag(3) + "db.internal:5432");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: gg_fuzz_seeds SOURCE_DIR\n";
        return 2;
    }
    const fs::path source = argv[1];
    corpus_root = source / "tests/fuzz/corpus";
    postgres();
    ssh();
    identity_provider();
    recordings();
    audit_and_breakglass();
    config(source);
    return 0;
}
