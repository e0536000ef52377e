#include <doctest/doctest.h>

#include <string>

#include "glassgate/config/loader.hpp"

using gg::config::parse_socket_address;
using gg::config::SocketAddress;

TEST_SUITE_BEGIN("config");

TEST_CASE("parse_socket_address accepts host names, IPv4 and bracketed IPv6") {
    struct Case {
        const char* text;
        const char* host;
        std::uint16_t port;
    };
    const Case cases[] = {
        {"127.0.0.1:6432", "127.0.0.1", 6432},
        {"0.0.0.0:1", "0.0.0.0", 1},
        {"db.internal:5432", "db.internal", 5432},
        {"localhost:65535", "localhost", 65535},
        {"my_host-1.example.com:22", "my_host-1.example.com", 22},
        {"[::1]:5432", "::1", 5432},
        {"[2001:db8::10]:22", "2001:db8::10", 22},
        {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto r = parse_socket_address(c.text);
        REQUIRE(r.value.has_value());
        CHECK(r.value->host == c.host);
        CHECK(r.value->port == c.port);
        CHECK(r.value->to_string() == c.text);
    }
}

TEST_CASE("parse_socket_address rejects malformed addresses with a message") {
    struct Case {
        const char* text;
        const char* error_part;
    };
    const Case cases[] = {
        {"", "empty address"},
        {"::1:5432", "IPv6 addresses must be in brackets"},
        {"2001:db8::1:80", "IPv6 addresses must be in brackets"},
        {"host:", "missing port"},
        {"host", "missing port"},
        {":80", "missing host"},
        {"host:99999", "port 99999 is out of range"},
        {"host:65536", "port 65536 is out of range"},
        {"host:0", "port 0 is out of range"},
        {"host:1234567", "out of range"},
        {"host:-1", "not a number"},
        {"host:http", "not a number"},
        {"host:80 ", "not a number"},
        {"[::1]", "missing port"},
        {"[::1]5432", "expected ':' after ']'"},
        {"[::1:5432", "missing ']'"},
        {"[]:80", "empty IPv6 address"},
        {"[127.0.0.1]:80", "invalid IPv6 address"},
        {"[::g]:80", "invalid IPv6 address"},
        {"bad host:80", "invalid character ' '"},
        {"a..b:80", "empty label"},
        {"-a.b:80", "cannot begin or end with '-'"},
        {"999.1.1.1:80", "invalid IPv4 address"},
        {"1.2.3:80", "invalid IPv4 address"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto r = parse_socket_address(c.text);
        CHECK_FALSE(r.value.has_value());
        CAPTURE(r.error);
        CHECK(r.error.find(c.error_part) != std::string::npos);
    }
}

TEST_CASE("SocketAddress::to_string brackets IPv6 literals only") {
    CHECK(SocketAddress{"db", 5432}.to_string() == "db:5432");
    CHECK(SocketAddress{"10.0.0.1", 22}.to_string() == "10.0.0.1:22");
    CHECK(SocketAddress{"fe80::1", 6432}.to_string() == "[fe80::1]:6432");
}

TEST_SUITE_END();
