// Errors with context: every exception the library throws names the input
// (file), the place in it (JSON path or byte offset) and the record id.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace pasteflow {

/// Where in an input a problem was found. Every field is optional.
struct Location {
  std::string file;          ///< path of the input file
  std::string path;          ///< JSON path, e.g. "annotations[12].segmentation[0]"
  int64_t byte_offset = -1;  ///< byte offset in the file, -1 when unknown
  std::string record;        ///< record identity, e.g. "annotation id 1234"
  std::string key;           ///< config key path, e.g. "augment.paste.max_tries"

  /// "file:byte 120: annotations[3] (annotation id 7)"; empty parts omitted.
  std::string to_string() const;
};

/// Base class of every pasteflow exception. `reason()` is a short stable
/// code ("odd_polygon", "unknown_image", ...) used to count skipped records.
class Error : public std::runtime_error {
 public:
  Error(std::string reason, const std::string& message, Location where = {});
  const std::string& reason() const noexcept { return reason_; }
  const Location& where() const noexcept { return where_; }
  /// The message without the location prefix.
  const std::string& detail() const noexcept { return detail_; }

 private:
  std::string reason_;
  std::string detail_;
  Location where_;
};

/// Bad input data (annotation files, images, TIFFs).
class InputError : public Error {
 public:
  using Error::Error;
};

/// Bad configuration (unknown key, wrong type, out of range).
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// What to do with a bad record: fail on the first one, or drop it and count.
enum class ErrorPolicy { kStrict, kSkip };

/// Parses "strict" / "skip"; throws ConfigError otherwise.
ErrorPolicy parse_error_policy(const std::string& text);
const char* to_string(ErrorPolicy policy) noexcept;

/// Counts of records dropped under ErrorPolicy::kSkip, by reason code, with
/// the first message seen for each reason (for reports).
class SkipReport {
 public:
  void add(const Error& error);
  void add(const std::string& reason, const std::string& message);
  void merge(const SkipReport& other);
  uint64_t total() const noexcept;
  uint64_t count(const std::string& reason) const;
  const std::map<std::string, uint64_t>& counts() const noexcept { return counts_; }
  const std::map<std::string, std::string>& first_messages() const noexcept { return first_; }
  bool empty() const noexcept { return counts_.empty(); }

 private:
  std::map<std::string, uint64_t> counts_;
  std::map<std::string, std::string> first_;
};

}  // namespace pasteflow
