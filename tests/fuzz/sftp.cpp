// The SFTP stream observer (protocols/ssh/sftp.hpp), fed both directions of a session as the relay
// sees them. The input is a list of pieces: one control byte (bit 7: 0 client -> server, 1 server ->
// client; bits 0-6: piece length, 0 meaning 128) followed by that many bytes of the stream.
// Every event must be one JSON object with an "op"; after a failure no event may follow.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>

#include "fuzz_util.hpp"
#include "glassgate/protocols/ssh/sftp.hpp"

using namespace gg;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ssh::SftpObserver observer(size % 2 == 0 ? std::size_t{1} << 20 : 4096);
    std::vector<std::string> events;
    std::size_t at = 0;
    while (at < size) {
        const unsigned ctl = data[at++];
        std::size_t n = ctl & 0x7Fu;
        if (n == 0) n = 128;
        if (n > size - at) n = size - at;
        const bool was_failed = observer.failed();
        const std::size_t before = events.size();
        if ((ctl & 0x80u) != 0) {
            observer.server_bytes(fuzz::view(data + at, n), events);
        } else {
            observer.client_bytes(fuzz::view(data + at, n), events);
        }
        at += n;
        if (was_failed) GG_FUZZ_CHECK(events.size() == before && observer.failed());
        GG_FUZZ_CHECK(observer.failed() == !observer.failure().empty());
    }
    for (const auto& e : events) {
        boost::system::error_code ec;
        auto v = boost::json::parse(e, ec);
        GG_FUZZ_CHECK(!ec);
        GG_FUZZ_CHECK(v.is_object() && v.as_object().contains("op"));
    }
    return 0;
}
