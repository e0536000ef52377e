// The client-facing TLS context ([tls]): TLS 1.2+, ECDHE with AES-GCM or ChaCha20, ALPN "postgresql".

#include <openssl/ssl.h>

#include "glassgate/proxy/postgres/pg_proxy.hpp"

namespace gg::proxy::postgres {
namespace asio = boost::asio;

std::shared_ptr<asio::ssl::context> make_client_tls(const config::TlsConfig& tls) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                     asio::ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx->native_handle(), "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5:!RC4");
    ctx->use_certificate_chain_file(tls.cert_file.string());
    ctx->use_private_key_file(tls.key_file.string(), asio::ssl::context::pem);
    // Direct TLS (PostgreSQL 17 sslnegotiation=direct) sends ALPN "postgresql"; accept it.
    SSL_CTX_set_alpn_select_cb(
        ctx->native_handle(),
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
           void*) -> int {
            static const unsigned char proto[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
            unsigned char* sel = nullptr;
            if (SSL_select_next_proto(&sel, outlen, proto, sizeof proto, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
                *out = sel;
                return SSL_TLSEXT_ERR_OK;
            }
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        },
        nullptr);
    return ctx;
}

}  // namespace gg::proxy::postgres
