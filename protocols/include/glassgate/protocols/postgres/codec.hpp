#pragma once
// The PostgreSQL frontend/backend protocol 3.0, sans-IO, in one include: errors, framing (bytes ->
// packets and messages), typed views of messages and builders. No sockets, clocks or logging.
// https://www.postgresql.org/docs/15/protocol.html

#include "glassgate/protocols/postgres/encode.hpp"    // IWYU pragma: export
#include "glassgate/protocols/postgres/error.hpp"     // IWYU pragma: export
#include "glassgate/protocols/postgres/frame.hpp"     // IWYU pragma: export
#include "glassgate/protocols/postgres/messages.hpp"  // IWYU pragma: export
