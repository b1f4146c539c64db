// A small streaming JSON writer for reports and result files: correct
// escaping, shortest round-trip doubles, optional indentation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pasteflow {

class JsonWriter {
 public:
  /// indent = 0 writes compact JSON.
  explicit JsonWriter(int indent = 0) : indent_(indent) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  /// Member key; must be followed by exactly one value or container.
  JsonWriter& key(std::string_view k);

  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(double d);  ///< NaN/inf are written as null
  JsonWriter& value(float f) { return value(static_cast<double>(f)); }
  JsonWriter& value(int64_t i);
  JsonWriter& value(uint64_t u);
  JsonWriter& value(int i) { return value(static_cast<int64_t>(i)); }
  JsonWriter& value(unsigned u) { return value(static_cast<uint64_t>(u)); }
  JsonWriter& value(long long i) { return value(static_cast<int64_t>(i)); }
  JsonWriter& value(unsigned long long u) { return value(static_cast<uint64_t>(u)); }
  JsonWriter& value(bool b);
  JsonWriter& null();
  /// Inserts pre-serialised JSON as one value (caller guarantees validity).
  JsonWriter& raw(std::string_view json);

  template <typename T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const noexcept { return out_; }
  std::string take() { return std::move(out_); }

  /// Appends `s` as a quoted, escaped JSON string to `out`.
  static void escape(std::string_view s, std::string& out);
  /// Shortest decimal representation that parses back to the same double.
  static void append_double(double d, std::string& out);

 private:
  void before_value();
  void newline();

  std::string out_;
  struct Level {
    bool is_object;
    bool empty;
  };
  std::vector<Level> stack_;
  bool after_key_ = false;
  int indent_;
};

}  // namespace pasteflow
