// Schema checks, value formatting, dump, key listing and diff.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "internal.hpp"
#include "pasteflow/config/config.hpp"

namespace pasteflow::config::detail {

// ------------------------------------------------------------- elements

std::size_t element_count(const FieldSchema& f, void* member) {
  if (f.shape == Shape::kScalar) return 1;
  if (f.shape == Shape::kArray) return f.array_size;
  return with_element_type(f.kind, [&](auto tag) {
    using E = typename decltype(tag)::type;
    return static_cast<std::vector<E>*>(member)->size();
  });
}

void* element_at(const FieldSchema& f, void* member, std::size_t i) {
  if (f.shape == Shape::kScalar) return member;
  return with_element_type(f.kind, [&](auto tag) -> void* {
    using E = typename decltype(tag)::type;
    if (f.shape == Shape::kArray) return static_cast<E*>(member) + i;
    if constexpr (std::is_same_v<E, bool>) {
      return nullptr;  // describe() rejects std::vector<bool>
    } else {
      return &(*static_cast<std::vector<E>*>(member))[i];
    }
  });
}

namespace {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kInt64: return "int64";
    case Kind::kUInt64: return "uint64";
    case Kind::kDouble: return "float";
    case Kind::kString: return "string";
    case Kind::kEnum: return "enum";
    case Kind::kStruct: return "section";
  }
  return "?";
}

std::string number_text(Kind k, const Number& n) {
  if (k == Kind::kDouble) return format_double(n.d);
  if (k == Kind::kUInt64) return std::to_string(n.u);
  return std::to_string(n.i);
}

std::string quote(const std::string& s) {
  YAML::Emitter out;
  out << YAML::DoubleQuoted << s;
  return out.c_str();
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

[[noreturn]] void schema_error(const StructSchema& s, const FieldSchema* f, const std::string& what) {
  Location where;
  if (f != nullptr) where.key = f->name;
  throw Error("schema_error", "config struct " + s.type_name + ": " + what, where);
}

}  // namespace

std::string type_name(const FieldSchema& f) {
  const std::string elem = kind_name(f.kind);
  if (f.shape == Shape::kVector) return "list[" + elem + "]";
  if (f.shape == Shape::kArray) return elem + "[" + std::to_string(f.array_size) + "]";
  return elem;
}

std::string constraint_text(const FieldSchema& f) {
  if (!f.choices.empty()) return "one of: " + join(f.choices, ", ");
  if (f.has_min && f.has_max) {
    return "[" + number_text(f.kind, f.min) + ", " + number_text(f.kind, f.max) + "]";
  }
  if (f.has_min) return ">= " + number_text(f.kind, f.min);
  if (f.has_max) return "<= " + number_text(f.kind, f.max);
  return "";
}

std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string enum_name(const FieldSchema& f, std::int64_t value) {
  for (std::size_t i = 0; i < f.enum_values.size(); ++i) {
    if (f.enum_values[i] == value) return f.choices[i];
  }
  return std::to_string(value);
}

std::string element_text(const FieldSchema& f, void* elem) {
  switch (f.kind) {
    case Kind::kBool: return *static_cast<bool*>(elem) ? "true" : "false";
    case Kind::kInt: return std::to_string(*static_cast<int*>(elem));
    case Kind::kInt64: return std::to_string(*static_cast<std::int64_t*>(elem));
    case Kind::kUInt64: return std::to_string(*static_cast<std::uint64_t*>(elem));
    case Kind::kDouble: return format_double(*static_cast<double*>(elem));
    case Kind::kString: return quote(*static_cast<std::string*>(elem));
    case Kind::kEnum: return enum_name(f, f.enum_get(elem));
    case Kind::kStruct: break;
  }
  return "";
}

std::string check_element(const FieldSchema& f, void* elem) {
  bool below = false;
  bool above = false;
  switch (f.kind) {
    case Kind::kInt:
    case Kind::kInt64: {
      const std::int64_t v = f.kind == Kind::kInt ? *static_cast<int*>(elem)
                                                  : *static_cast<std::int64_t*>(elem);
      below = f.has_min && v < f.min.i;
      above = f.has_max && v > f.max.i;
      break;
    }
    case Kind::kUInt64: {
      const std::uint64_t v = *static_cast<std::uint64_t*>(elem);
      below = f.has_min && v < f.min.u;
      above = f.has_max && v > f.max.u;
      break;
    }
    case Kind::kDouble: {
      const double v = *static_cast<double*>(elem);
      // NaN fails every bound.
      below = f.has_min && !(v >= f.min.d);
      above = f.has_max && !(v <= f.max.d);
      break;
    }
    case Kind::kString: {
      const auto& v = *static_cast<std::string*>(elem);
      if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) {
        return quote(v) + " is not one of: " + join(f.choices, ", ");
      }
      return "";
    }
    case Kind::kEnum: {
      const std::int64_t v = f.enum_get(elem);
      if (std::find(f.enum_values.begin(), f.enum_values.end(), v) == f.enum_values.end()) {
        return "enum value " + std::to_string(v) + " has no name (names: " + join(f.choices, ", ") + ")";
      }
      return "";
    }
    case Kind::kBool:
    case Kind::kStruct: return "";
  }
  if (below || above) {
    return "value " + element_text(f, elem) + " is out of range " + constraint_text(f);
  }
  return "";
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += sep;
    out += items[i];
  }
  return out;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

// ------------------------------------------------------------- schema checks

void finish_struct(StructSchema& s) {
  std::set<std::string> names;
  for (const FieldSchema& f : s.fields) {
    if (f.name.empty() || !std::all_of(f.name.begin(), f.name.end(), is_name_char)) {
      schema_error(s, &f, "key '" + f.name + "' must be a non-empty [A-Za-z0-9_] name");
    }
    if (f.name == "_base_") schema_error(s, &f, "'_base_' is reserved for inheritance");
    if (!names.insert(f.name).second) schema_error(s, &f, "key '" + f.name + "' declared twice");
    if (f.doc.empty()) schema_error(s, &f, "key '" + f.name + "' has no documentation");
    if (f.kind == Kind::kEnum && f.choices.empty()) {
      schema_error(s, &f, "enum key '" + f.name + "' needs one_of({{\"name\", value}, ...})");
    }
    const std::set<std::string> unique(f.choices.begin(), f.choices.end());
    if (unique.size() != f.choices.size()) {
      schema_error(s, &f, "key '" + f.name + "' lists a choice twice");
    }
    if (f.has_min && f.has_max) {
      const bool inverted = f.kind == Kind::kDouble    ? f.min.d > f.max.d
                            : f.kind == Kind::kUInt64 ? f.min.u > f.max.u
                                                       : f.min.i > f.max.i;
      if (inverted) schema_error(s, &f, "key '" + f.name + "' has min > max");
    }
  }
}

namespace {

void check_struct(const StructSchema& s, void* obj, const std::string& prefix) {
  for (const FieldSchema& f : s.fields) {
    const std::string key = prefix + f.name;
    void* member = f.access(obj);
    if (f.kind == Kind::kStruct) {
      check_struct(*f.nested, member, key + ".");
      continue;
    }
    const std::size_t n = element_count(f, member);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string why = check_element(f, element_at(f, member, i));
      if (!why.empty()) {
        Location where;
        where.key = f.shape == Shape::kScalar ? key : key + "[" + std::to_string(i) + "]";
        throw Error("schema_error", "default violates the schema: " + why, where);
      }
    }
  }
}

// Leaf values as YAML, in declaration order.
void emit_struct(YAML::Emitter& out, const StructSchema& s, void* obj) {
  out << YAML::BeginMap;
  for (const FieldSchema& f : s.fields) {
    out << YAML::Key << f.name << YAML::Value;
    void* member = f.access(obj);
    if (f.kind == Kind::kStruct) {
      if (f.nested->fields.empty()) out << YAML::Flow;
      emit_struct(out, *f.nested, member);
      continue;
    }
    auto emit_element = [&](void* elem) {
      if (f.kind == Kind::kString) {
        out << YAML::DoubleQuoted << *static_cast<std::string*>(elem);
      } else {
        out << element_text(f, elem);
      }
    };
    if (f.shape == Shape::kScalar) {
      emit_element(member);
    } else {
      out << YAML::Flow << YAML::BeginSeq;
      const std::size_t n = element_count(f, member);
      for (std::size_t i = 0; i < n; ++i) emit_element(element_at(f, member, i));
      out << YAML::EndSeq;
    }
  }
  out << YAML::EndMap;
}

std::string leaf_text(const FieldSchema& f, void* member) {
  if (f.shape == Shape::kScalar) return element_text(f, member);
  std::string out = "[";
  const std::size_t n = element_count(f, member);
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) out += ", ";
    out += element_text(f, element_at(f, member, i));
  }
  return out + "]";
}

void collect_keys(const StructSchema& s, void* defaults, const std::string& prefix,
                  std::vector<KeyInfo>& out) {
  for (const FieldSchema& f : s.fields) {
    void* member = f.access(defaults);
    if (f.kind == Kind::kStruct) {
      collect_keys(*f.nested, member, prefix + f.name + ".", out);
      continue;
    }
    out.push_back({prefix + f.name, type_name(f), leaf_text(f, member), constraint_text(f), f.doc});
  }
}

bool elements_equal(const FieldSchema& f, void* a, void* b) {
  switch (f.kind) {
    case Kind::kBool: return *static_cast<bool*>(a) == *static_cast<bool*>(b);
    case Kind::kInt: return *static_cast<int*>(a) == *static_cast<int*>(b);
    case Kind::kInt64: return *static_cast<std::int64_t*>(a) == *static_cast<std::int64_t*>(b);
    case Kind::kUInt64: return *static_cast<std::uint64_t*>(a) == *static_cast<std::uint64_t*>(b);
    case Kind::kDouble: {
      const double x = *static_cast<double*>(a);
      const double y = *static_cast<double*>(b);
      return x == y || (std::isnan(x) && std::isnan(y));
    }
    case Kind::kString: return *static_cast<std::string*>(a) == *static_cast<std::string*>(b);
    case Kind::kEnum: return f.enum_get(a) == f.enum_get(b);
    case Kind::kStruct: break;
  }
  return false;
}

void diff_struct(const StructSchema& s, void* a, void* b, const std::string& prefix,
                 std::vector<std::string>& out) {
  for (const FieldSchema& f : s.fields) {
    void* ma = f.access(a);
    void* mb = f.access(b);
    if (f.kind == Kind::kStruct) {
      diff_struct(*f.nested, ma, mb, prefix + f.name + ".", out);
      continue;
    }
    const std::size_t n = element_count(f, ma);
    bool same = n == element_count(f, mb);
    for (std::size_t i = 0; same && i < n; ++i) {
      same = elements_equal(f, element_at(f, ma, i), element_at(f, mb, i));
    }
    if (!same) out.push_back(prefix + f.name);
  }
}

std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

}  // namespace

void check_values(const StructSchema& schema, const void* obj) {
  check_struct(schema, const_cast<void*>(obj), "");
}

std::string dump(const StructSchema& schema, const void* obj) {
  YAML::Emitter out;
  emit_struct(out, schema, const_cast<void*>(obj));
  return std::string(out.c_str()) + "\n";
}

std::vector<KeyInfo> keys(const StructSchema& schema, const void* defaults) {
  std::vector<KeyInfo> out;
  collect_keys(schema, const_cast<void*>(defaults), "", out);
  return out;
}

std::string markdown(const StructSchema& schema, const void* defaults) {
  std::string out =
      "| key | type | default | allowed | description |\n"
      "|-----|------|---------|---------|-------------|\n";
  for (const KeyInfo& k : keys(schema, defaults)) {
    out += "| `" + k.path + "` | " + cell(k.type) + " | `" + cell(k.default_value) + "` | " +
           cell(k.constraint) + " | " + cell(k.doc) + " |\n";
  }
  return out;
}

std::vector<std::string> diff(const StructSchema& schema, const void* a, const void* b) {
  std::vector<std::string> out;
  diff_struct(schema, const_cast<void*>(a), const_cast<void*>(b), "", out);
  return out;
}

}  // namespace pasteflow::config::detail
