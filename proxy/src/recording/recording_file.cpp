#include "glassgate/proxy/recording/recording_file.hpp"

#include <fstream>
#include <string_view>
#include <system_error>
#include <vector>

#include "glassgate/proxy/store/state_dir.hpp"

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

RecordingSource read_session_recording(const std::filesystem::path& recordings_dir, StateStore& store,
                                       const session::SessionRecord& rec,
                                       const std::function<void(std::string_view)>& sink) {
    if (rec.recording.empty()) throw OperationalError("session " + rec.id + " has no recording");
    const auto path = recordings_dir / rec.recording;
    std::error_code ec;
    const auto local_size = std::filesystem::file_size(path, ec);
    ShippedRecording shipped;
    std::string store_error;
    try {
        shipped = store.shipped_recording(rec.id);
    } catch (const StoreError& e) {
        store_error = e.what();
    }
    if (!ec && local_size >= shipped.bytes) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw OperationalError("cannot open recording " + path.string());
        std::vector<char> chunk(1 << 20);
        while (in) {
            in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            const auto n = static_cast<std::size_t>(in.gcount());
            if (n == 0) break;
            sink(std::string_view(chunk.data(), n));
        }
        if (in.bad()) throw OperationalError("cannot read recording " + path.string());
        return {path.string(), false, true};
    }
    if (shipped.bytes == 0) {
        throw OperationalError("the recording of session " + rec.id + " is neither on this machine (" + path.string() +
                               ") nor in the state store" + (store_error.empty() ? "" : " (" + store_error + ")") +
                               (rec.instance.empty() ? "" : "; it was recorded by instance " + rec.instance));
    }
    std::uint64_t offset = 0;
    try {
        while (offset < shipped.bytes) {
            auto chunk = store.recording_chunk(rec.id, offset);
            if (!chunk || chunk->empty()) break;
            sink(*chunk);
            offset += chunk->size();
        }
    } catch (const StoreError& e) {
        throw OperationalError("cannot read the recording of session " + rec.id + " from the state store: " + e.what());
    }
    return {"the state store (" + std::to_string(offset) + " bytes shipped by instance " +
                (rec.instance.empty() ? std::string("?") : rec.instance) + (shipped.complete ? ", complete)" : ", incomplete)"),
            true, shipped.complete};
}

}  // namespace gg::proxy
