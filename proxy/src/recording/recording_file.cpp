#include "glassgate/proxy/recording/recording_file.hpp"

#include <string_view>
#include <vector>

namespace gg::proxy {

bool feed_recording(session::RecordingReader& reader, std::istream& in) {
    std::vector<char> chunk(1 << 20);
    while (in) {
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        if (n == 0) break;
        reader.feed(as_bytes(std::string_view(chunk.data(), n)));
    }
    return !in.bad();
}

}  // namespace gg::proxy
