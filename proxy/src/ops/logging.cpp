#include "glassgate/proxy/ops/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <ctime>

namespace gg::proxy::logging {
namespace {

constexpr std::string_view main_name = "glassgate";
constexpr std::string_view session_prefix = "session ";

/// One JSON object per line: {"time":..., "level":..., "session":..., "msg":...}
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = msg.time.time_since_epoch();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t).count();
        std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char ts[64];
        std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us % 1'000'000));
        std::string line = R"({"time":")";
        line += ts;
        line += R"(","level":")";
        auto lv = spdlog::level::to_string_view(msg.level);
        line.append(lv.data(), lv.size());
        line += '"';
        std::string_view name(msg.logger_name.data(), msg.logger_name.size());
        if (name.starts_with(session_prefix)) {
            line += R"(,"session":)";
            line += boost::json::serialize(boost::json::string(name.substr(session_prefix.size())));
        }
        line += R"(,"msg":)";
        line += boost::json::serialize(boost::json::string(std::string_view(msg.payload.data(), msg.payload.size())));
        line += "}\n";
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

/// Text-mode flag %Q: "[session <id>] " for session loggers, nothing for the main logger.
class SessionFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        std::string_view name(msg.logger_name.data(), msg.logger_name.size());
        if (!name.starts_with(session_prefix)) return;
        dest.push_back('[');
        dest.append(name.data(), name.data() + name.size());
        dest.push_back(']');
        dest.push_back(' ');
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SessionFlag>(); }
};

}  // namespace

std::optional<Format> format_from_string(std::string_view s) noexcept {
    if (s == "text") return Format::text;
    if (s == "json") return Format::json;
    return std::nullopt;
}

std::optional<spdlog::level::level_enum> level_from_string(std::string_view s) noexcept {
    if (s == "trace") return spdlog::level::trace;
    if (s == "debug") return spdlog::level::debug;
    if (s == "info") return spdlog::level::info;
    if (s == "warn") return spdlog::level::warn;
    if (s == "error") return spdlog::level::err;
    return std::nullopt;
}

void init(spdlog::level::level_enum level, Format format) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    if (format == Format::json) {
        sink->set_formatter(std::make_unique<JsonFormatter>());
    } else {
        auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
        f->add_flag<SessionFlag>('Q').set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ %Q%v");
        sink->set_formatter(std::move(f));
    }
    auto logger = std::make_shared<spdlog::logger>(std::string(main_name), sink);
    logger->set_level(level);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    spdlog::flush_every(std::chrono::seconds(1));
}

std::shared_ptr<spdlog::logger> session_logger(std::string_view session_id) {
    auto base = spdlog::default_logger();
    auto l = std::make_shared<spdlog::logger>(std::string(session_prefix) + std::string(session_id),
                                              base->sinks().begin(), base->sinks().end());
    l->set_level(base->level());
    l->flush_on(spdlog::level::warn);
    return l;
}

void LogEscaped::operator()(const std::exception_ptr& e) const noexcept {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::error("{} ended by an unexpected error: {}", what, x.what());
    } catch (...) {
        spdlog::error("{} ended by an unexpected error", what);
    }
}

}  // namespace gg::proxy::logging
