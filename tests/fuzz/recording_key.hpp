#pragma once
// The HMAC key of the recordings in the seed corpora (corpus/recording, asciicast, pg_transcript).

#include "glassgate/protocols/bytes.hpp"

namespace gg::fuzz {

inline ByteView recording_key() {
    static const Bytes key = to_bytes("glassgate fuzz recording key, 32");
    return key;
}

}  // namespace gg::fuzz
