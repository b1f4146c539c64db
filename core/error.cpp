#include "pasteflow/core/error.hpp"

namespace pasteflow {

std::string Location::to_string() const {
  std::string out = file;
  if (byte_offset >= 0) {
    out += (out.empty() ? "byte " : ":byte ") + std::to_string(byte_offset);
  }
  std::string inner = path;
  if (!key.empty()) inner += (inner.empty() ? "" : " ") + std::string("key '") + key + "'";
  if (!record.empty()) inner += (inner.empty() ? "" : " ") + std::string("(") + record + ")";
  if (!inner.empty()) out += (out.empty() ? "" : ": ") + inner;
  return out;
}

namespace {
std::string compose(const std::string& message, const Location& where) {
  const std::string prefix = where.to_string();
  return prefix.empty() ? message : prefix + ": " + message;
}
}  // namespace

Error::Error(std::string reason, const std::string& message, Location where)
    : std::runtime_error(compose(message, where)),
      reason_(std::move(reason)),
      detail_(message),
      where_(std::move(where)) {}

ErrorPolicy parse_error_policy(const std::string& text) {
  if (text == "strict" || text == "fail") return ErrorPolicy::kStrict;
  if (text == "skip") return ErrorPolicy::kSkip;
  throw ConfigError("bad_value", "error policy must be 'strict' or 'skip', got '" + text + "'");
}

const char* to_string(ErrorPolicy policy) noexcept {
  return policy == ErrorPolicy::kStrict ? "strict" : "skip";
}

void SkipReport::add(const Error& error) { add(error.reason(), error.what()); }

void SkipReport::add(const std::string& reason, const std::string& message) {
  auto [it, inserted] = counts_.emplace(reason, 0);
  ++it->second;
  if (inserted) first_.emplace(reason, message);
}

void SkipReport::merge(const SkipReport& other) {
  for (const auto& [reason, n] : other.counts_) {
    auto [it, inserted] = counts_.emplace(reason, 0);
    it->second += n;
    if (inserted) first_.emplace(reason, other.first_.at(reason));
  }
}

uint64_t SkipReport::total() const noexcept {
  uint64_t n = 0;
  for (const auto& kv : counts_) n += kv.second;
  return n;
}

uint64_t SkipReport::count(const std::string& reason) const {
  auto it = counts_.find(reason);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace pasteflow
