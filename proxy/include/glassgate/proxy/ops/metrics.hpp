#pragma once
// Process-wide metrics in the Prometheus text exposition format (version 0.0.4). Thread-safe.
// Families are declared once (name, type, help); series are created on first use.

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gg::proxy {

class Metrics {
public:
    using Labels = std::vector<std::pair<std::string, std::string>>;
    enum class Type { counter, gauge };

    void declare(std::string name, Type type, std::string help);
    void inc(std::string_view name, const Labels& labels = {}, double by = 1.0);
    void set(std::string_view name, const Labels& labels, double value);
    [[nodiscard]] double get(std::string_view name, const Labels& labels = {}) const;
    /// The whole registry as Prometheus text.
    [[nodiscard]] std::string render() const;

private:
    struct Family {
        Type type = Type::counter;
        std::string help;
        std::map<std::string, double> series;  ///< rendered label set -> value
    };
    static std::string label_text(const Labels& labels);
    mutable std::mutex mu_;
    std::map<std::string, Family, std::less<>> families_;
};

}  // namespace gg::proxy
