#include "glassgate/proxy/ops/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace gg::proxy {

std::string Metrics::label_text(const Labels& labels) {
    if (labels.empty()) return {};
    std::string s = "{";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) s += ',';
        s += labels[i].first;
        s += "=\"";
        for (char c : labels[i].second) {
            if (c == '\\' || c == '"') {
                s += '\\';
                s += c;
            } else if (c == '\n') {
                s += "\\n";
            } else {
                s += c;
            }
        }
        s += '"';
    }
    return s + "}";
}

void Metrics::declare(std::string name, Type type, std::string help) {
    std::lock_guard lk(mu_);
    auto& f = families_[std::move(name)];
    f.type = type;
    f.help = std::move(help);
}

void Metrics::inc(std::string_view name, const Labels& labels, double by) {
    std::lock_guard lk(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
    it->second.series[label_text(labels)] += by;
}

void Metrics::set(std::string_view name, const Labels& labels, double value) {
    std::lock_guard lk(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) it = families_.emplace(std::string(name), Family{Type::gauge, "", {}}).first;
    it->second.series[label_text(labels)] = value;
}

double Metrics::get(std::string_view name, const Labels& labels) const {
    std::lock_guard lk(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0;
    auto s = it->second.series.find(label_text(labels));
    return s == it->second.series.end() ? 0 : s->second;
}

std::string Metrics::render() const {
    std::lock_guard lk(mu_);
    std::string out;
    for (const auto& [name, f] : families_) {
        if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + (f.type == Type::counter ? " counter\n" : " gauge\n");
        for (const auto& [labels, v] : f.series) {
            char num[64];
            if (std::floor(v) == v && std::fabs(v) < 1e15) {
                std::snprintf(num, sizeof num, "%.0f", v);
            } else {
                std::snprintf(num, sizeof num, "%.17g", v);
            }
            out += name + labels + " " + num + "\n";
        }
    }
    return out;
}

}  // namespace gg::proxy
