// Reading config files (_base_ chains), merging, overrides, and applying the
// merged tree to a struct through its schema.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "internal.hpp"
#include "pasteflow/config/config.hpp"

namespace pasteflow::config::detail {
namespace {

namespace fs = std::filesystem;

// ------------------------------------------------------------- origins

/// Where a piece of config text came from: a file position or an override.
struct Origin {
  std::string source;  ///< file path, or "override 'a.b=1'"
  bool from_file = false;
  int line = -1;  ///< 0-based, as in YAML::Mark
  int column = -1;

  Origin at(const YAML::Mark& mark) const {
    Origin o = *this;
    if (from_file && !mark.is_null()) {
      o.line = mark.line;
      o.column = mark.column;
    }
    return o;
  }
  std::string text() const {
    if (line < 0) return source;
    return source + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1);
  }
};

[[noreturn]] void fail(const char* reason, const std::string& message, const Origin& origin,
                       const std::string& key) {
  Location where;
  where.file = origin.text();
  where.key = key;
  throw ConfigError(reason, message, where);
}

// ------------------------------------------------------------- merged tree

/// A YAML::Node handle with value semantics on assignment: assigning rebinds
/// the handle (YAML::Node::operator= would overwrite the shared node, which
/// every other handle to it would see).
struct NodeRef {
  YAML::Node node;
  NodeRef() = default;
  NodeRef(const YAML::Node& n) : node(n) {}  // NOLINT(google-explicit-constructor)
  NodeRef(const NodeRef&) = default;
  NodeRef& operator=(const NodeRef& other) {
    node.reset(other.node);
    return *this;
  }
};

struct Entry;

/// A mapping (entries in first-seen order) or a leaf YAML value.
struct Tree {
  bool is_map = false;
  std::vector<Entry> entries;
  NodeRef leaf;
  Origin origin;  ///< of the value
};

struct Entry {
  std::string key;
  Origin key_origin;
  Tree value;
};

std::string join_key(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

Tree to_tree(const YAML::Node& node, const Origin& src, const std::string& prefix) {
  Tree t;
  t.origin = src.at(node.Mark());
  if (!node.IsMap()) {
    t.leaf = node;
    return t;
  }
  t.is_map = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Origin key_origin = src.at(it->first.Mark());
    if (!it->first.IsScalar()) {
      fail("type_mismatch", "mapping keys must be plain names", key_origin, prefix);
    }
    const std::string name = it->first.Scalar();
    const std::string key = join_key(prefix, name);
    for (const Entry& e : t.entries) {
      if (e.key == name) {
        fail("duplicate_key", "key given twice in one mapping (first at " + e.key_origin.text() + ")",
             key_origin, key);
      }
    }
    t.entries.push_back({name, key_origin, to_tree(it->second, src, key)});
  }
  return t;
}

/// Deep merge: mappings key by key, everything else replaced; a null value
/// on top of a mapping leaves it as it is (an empty section).
void merge(Tree& dst, Tree&& src) {
  if (dst.is_map && src.is_map) {
    for (Entry& e : src.entries) {
      auto it = std::find_if(dst.entries.begin(), dst.entries.end(),
                             [&](const Entry& d) { return d.key == e.key; });
      if (it == dst.entries.end()) {
        dst.entries.push_back(std::move(e));
      } else {
        it->key_origin = e.key_origin;
        merge(it->value, std::move(e.value));
      }
    }
    return;
  }
  if (dst.is_map && !src.is_map && src.leaf.node.IsNull()) return;
  dst = std::move(src);
}

// ------------------------------------------------------------- files

struct Frame {
  std::string canonical;
  std::string display;
};

fs::path canonical_of(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? fs::path(path).lexically_normal() : p;
}

/// yaml-cpp's message, except for its guard against stack exhaustion,
/// whose own message is "bad file".
std::string parser_message(const YAML::ParserException& e) {
  if (const auto* deep = dynamic_cast<const YAML::DeepRecursion*>(&e)) {
    return "nested more than " + std::to_string(deep->depth() - 1) + " levels deep";
  }
  return e.msg;
}

Tree parse_document(const std::string& text, const std::string& display) {
  Origin src{display, true, -1, -1};
  YAML::Node doc;
  try {
    doc.reset(YAML::Load(text));
  } catch (const YAML::ParserException& e) {
    fail("yaml_syntax", "YAML syntax error: " + parser_message(e), src.at(e.mark), "");
  }
  if (doc.IsNull()) {
    Tree empty;
    empty.is_map = true;
    empty.origin = src;
    return empty;
  }
  if (!doc.IsMap()) {
    fail("type_mismatch", "the top level of a config must be a mapping of keys", src.at(doc.Mark()), "");
  }
  return to_tree(doc, src, "");
}

/// The paths listed by a `_base_` entry (a string or a list of strings).
std::vector<std::pair<std::string, Origin>> base_paths(const Tree& base) {
  std::vector<std::pair<std::string, Origin>> out;
  const char* what = "_base_ must be a path or a list of paths";
  if (base.is_map) fail("bad_base", what, base.origin, "_base_");
  const YAML::Node& n = base.leaf.node;
  if (n.IsScalar()) {
    out.emplace_back(n.Scalar(), base.origin);
  } else if (n.IsSequence()) {
    for (const YAML::Node& item : n) {
      if (!item.IsScalar()) fail("bad_base", what, base.origin.at(item.Mark()), "_base_");
      out.emplace_back(item.Scalar(), base.origin.at(item.Mark()));
    }
  } else {
    fail("bad_base", what, base.origin, "_base_");
  }
  for (const auto& [path, origin] : out) {
    if (path.empty()) fail("bad_base", "empty path in _base_", origin, "_base_");
  }
  return out;
}

Tree load_tree(const std::string& display, const std::string* text, std::vector<Frame>& stack,
               const Origin* included_from) {
  const std::string canonical = canonical_of(display).string();
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].canonical != canonical) continue;
    std::string chain;
    for (std::size_t j = i; j < stack.size(); ++j) chain += stack[j].display + " -> ";
    fail("base_cycle", "_base_ inheritance cycle: " + chain + display,
         included_from != nullptr ? *included_from : Origin{display, true, -1, -1}, "_base_");
  }

  std::string content;
  if (text != nullptr) {
    content = *text;
  } else {
    // A directory opens as an empty stream: refuse everything but a regular file.
    std::error_code ec;
    const bool regular = fs::is_regular_file(display, ec);
    std::ifstream in;
    if (regular) in.open(display, std::ios::binary);
    if (!regular || !in) {
      const std::string why = fs::is_directory(display, ec) ? " (a directory)"
                              : !fs::exists(display, ec)    ? " (no such file)"
                                                            : "";
      if (included_from != nullptr) {
        fail("cannot_open", "cannot open base config '" + display + "'" + why, *included_from, "_base_");
      }
      fail("cannot_open", "cannot open config file" + why, Origin{display, true, -1, -1}, "");
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    content = buf.str();
  }

  stack.push_back({canonical, display});
  Tree own = parse_document(content, display);
  Tree result;
  result.is_map = true;
  result.origin = own.origin;
  auto base = std::find_if(own.entries.begin(), own.entries.end(),
                           [](const Entry& e) { return e.key == "_base_"; });
  if (base != own.entries.end()) {
    const auto paths = base_paths(base->value);
    own.entries.erase(base);
    const fs::path dir = fs::path(display).parent_path();
    for (const auto& [path, origin] : paths) {
      const fs::path p(path);
      const std::string resolved = (p.is_absolute() ? p : (dir / p)).lexically_normal().string();
      merge(result, load_tree(resolved, nullptr, stack, &origin));
    }
  }
  merge(result, std::move(own));
  stack.pop_back();
  return result;
}

// ------------------------------------------------------------- overrides

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

Tree override_tree(const std::string& text) {
  const Origin src{"override '" + text + "'", false, -1, -1};
  const auto eq = text.find('=');
  const std::string key = trim(text.substr(0, eq));
  const char* usage = "an override must look like key.path=value";
  if (eq == std::string::npos || key.empty()) fail("bad_override", usage, src, key);
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (true) {
    const auto dot = key.find('.', begin);
    parts.push_back(key.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (parts.back().empty()) fail("bad_override", usage, src, key);
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  const std::string value_text = text.substr(eq + 1);
  YAML::Node value;
  if (trim(value_text).empty()) {
    value.reset(YAML::Node(std::string()));
  } else {
    try {
      value.reset(YAML::Load(value_text));
    } catch (const YAML::ParserException& e) {
      fail("bad_override", "value is not valid YAML: " + parser_message(e), src, key);
    }
  }
  Tree t = to_tree(value, src, key);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    Tree parent;
    parent.is_map = true;
    parent.origin = src;
    parent.entries.push_back({*it, src, std::move(t)});
    t = std::move(parent);
  }
  return t;
}

// ------------------------------------------------------------- applying

/// "'abc'", "string \"5\"", "a list", "a mapping", "null".
std::string describe_node(const YAML::Node& n) {
  if (n.IsNull()) return "null";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.Tag() == "?") return "'" + n.Scalar() + "'";
  return "string \"" + n.Scalar() + "\"";
}

/// Plain (unquoted, untagged) scalar text, or nullptr.
const std::string* plain(const YAML::Node& n) {
  return n.IsScalar() && n.Tag() == "?" ? &n.Scalar() : nullptr;
}

template <class I>
bool parse_integer(const std::string& s, I& out) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  if (b == e || *b == '+' || (std::is_unsigned_v<I> && *b == '-')) return false;
  const auto res = std::from_chars(b, e, out);
  return res.ec == std::errc() && res.ptr == e;
}

bool parse_double(const std::string& s, double& out) {
  std::string t = s;
  const bool neg = !t.empty() && t[0] == '-';
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.erase(0, 1);
  if (t == ".inf" || t == ".Inf" || t == ".INF") {
    out = neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    return true;
  }
  if (t == ".nan" || t == ".NaN" || t == ".NAN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return !neg && s[0] != '+';
  }
  if (t.empty() || t[0] == '-' || t[0] == '+') return false;
  const auto res = std::from_chars(t.data(), t.data() + t.size(), out);
  if (res.ec != std::errc() || res.ptr != t.data() + t.size()) return false;
  if (neg) out = -out;
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  std::string t = s;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "yes" || t == "on") {
    out = true;
    return true;
  }
  if (t == "false" || t == "no" || t == "off") {
    out = false;
    return true;
  }
  return false;
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  const std::size_t limit = std::max<std::size_t>(1, std::min<std::size_t>(3, (word.size() + 2) / 3));
  std::size_t best = limit + 1;
  std::string out;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best) {
      best = d;
      out = c;
    }
  }
  return out;
}

struct Applier {
  const StructSchema& root;

  void all_paths(const StructSchema& s, const std::string& prefix, std::vector<std::string>& out) const {
    for (const FieldSchema& f : s.fields) {
      out.push_back(join_key(prefix, f.name));
      if (f.kind == Kind::kStruct) all_paths(*f.nested, join_key(prefix, f.name), out);
    }
  }

  /// " (did you mean 'a.b'?)" or "".
  std::string suggestion(const StructSchema& here, const std::string& prefix, const std::string& name) const {
    std::vector<std::string> siblings;
    for (const FieldSchema& f : here.fields) siblings.push_back(f.name);
    std::string hit = closest(name, siblings);
    if (!hit.empty()) return " (did you mean '" + join_key(prefix, hit) + "'?)";
    // Same name (or a near miss) elsewhere in the schema: a key in the wrong section.
    std::vector<std::string> paths;
    all_paths(root, "", paths);
    std::vector<std::string> lasts;
    for (const std::string& p : paths) lasts.push_back(p.substr(p.rfind('.') + 1));
    hit = closest(name, lasts);
    if (hit.empty()) return "";
    std::vector<std::string> where;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      if (lasts[i] == hit) where.push_back("'" + paths[i] + "'");
    }
    return " (did you mean " + join(where, " or ") + "?)";
  }

  void apply_struct(const StructSchema& s, void* obj, const Tree& t, const std::string& prefix) const {
    if (!t.is_map) {
      if (t.leaf.node.IsNull()) return;
      std::vector<std::string> names;
      for (const FieldSchema& f : s.fields) names.push_back(f.name);
      fail("type_mismatch",
           "expected a section (mapping with keys " + join(names, ", ") + "), got " + describe_node(t.leaf.node),
           t.origin, prefix);
    }
    for (const Entry& e : t.entries) {
      const std::string key = join_key(prefix, e.key);
      auto f = std::find_if(s.fields.begin(), s.fields.end(),
                            [&](const FieldSchema& x) { return x.name == e.key; });
      if (f == s.fields.end()) {
        fail("unknown_key", "unknown key" + suggestion(s, prefix, e.key), e.key_origin, key);
      }
      if (f->kind == Kind::kStruct) {
        apply_struct(*f->nested, f->access(obj), e.value, key);
      } else {
        apply_leaf(*f, f->access(obj), e.value, key);
      }
    }
  }

  void apply_leaf(const FieldSchema& f, void* member, const Tree& t, const std::string& key) const {
    if (t.is_map) fail("type_mismatch", "expected " + type_name(f) + ", got a mapping", t.origin, key);
    const YAML::Node& n = t.leaf.node;
    if (f.shape == Shape::kScalar) {
      set_element(f, member, n, t.origin, key);
      return;
    }
    if (!n.IsSequence()) {
      fail("type_mismatch", "expected " + type_name(f) + ", got " + describe_node(n), t.origin, key);
    }
    if (f.shape == Shape::kArray && n.size() != f.array_size) {
      fail("type_mismatch",
           "expected " + type_name(f) + " (exactly " + std::to_string(f.array_size) + " elements), got " +
               std::to_string(n.size()),
           t.origin, key);
    }
    if (f.shape == Shape::kVector) {
      with_element_type(f.kind, [&](auto tag) {
        using E = typename decltype(tag)::type;
        static_cast<std::vector<E>*>(member)->assign(n.size(), E{});
      });
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const YAML::Node item = n[i];
      set_element(f, element_at(f, member, i), item, t.origin.at(item.Mark()),
                  key + "[" + std::to_string(i) + "]");
    }
  }

  void set_element(const FieldSchema& f, void* elem, const YAML::Node& n, const Origin& origin,
                   const std::string& key) const {
    const std::string expected = f.shape == Shape::kScalar ? type_name(f) : type_name(f) + " element";
    auto mismatch = [&](const std::string& extra) {
      fail("type_mismatch", "expected " + expected + extra + ", got " + describe_node(n), origin, key);
    };
    const std::string* s = plain(n);
    switch (f.kind) {
      case Kind::kBool:
        if (s == nullptr || !parse_bool(*s, *static_cast<bool*>(elem))) mismatch(" (true or false)");
        break;
      case Kind::kInt: {
        std::int64_t v = 0;
        if (s == nullptr || !parse_integer(*s, v)) mismatch("");
        if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
          fail("out_of_range", "value " + *s + " does not fit in an int", origin, key);
        }
        *static_cast<int*>(elem) = static_cast<int>(v);
        break;
      }
      case Kind::kInt64:
        if (s == nullptr || !parse_integer(*s, *static_cast<std::int64_t*>(elem))) mismatch("");
        break;
      case Kind::kUInt64:
        if (s == nullptr || !parse_integer(*s, *static_cast<std::uint64_t*>(elem))) {
          mismatch(" (a non-negative integer below 2^64)");
        }
        break;
      case Kind::kDouble: {
        double& v = *static_cast<double*>(elem);
        if (s == nullptr || !parse_double(*s, v)) mismatch("");
        // No key means anything by NaN or infinity; a NaN would also pass
        // every later comparison in the code that reads the value.
        if (!std::isfinite(v)) fail("not_finite", "value " + *s + " is not a finite number", origin, key);
        break;
      }
      case Kind::kString:
        if (!n.IsScalar()) mismatch("");
        *static_cast<std::string*>(elem) = n.Scalar();
        break;
      case Kind::kEnum: {
        if (!n.IsScalar()) mismatch(" (one of: " + join(f.choices, ", ") + ")");
        auto it = std::find(f.choices.begin(), f.choices.end(), n.Scalar());
        if (it == f.choices.end()) {
          const std::string near = closest(n.Scalar(), f.choices);
          fail("bad_choice",
               "'" + n.Scalar() + "' is not one of: " + join(f.choices, ", ") +
                   (near.empty() ? "" : " (did you mean '" + near + "'?)"),
               origin, key);
        }
        f.enum_set(elem, f.enum_values[static_cast<std::size_t>(it - f.choices.begin())]);
        return;
      }
      case Kind::kStruct: return;
    }
    const std::string why = check_element(f, elem);
    if (!why.empty()) {
      std::string near;
      if (f.kind == Kind::kString) near = closest(n.Scalar(), f.choices);
      fail(f.kind == Kind::kString ? "bad_choice" : "out_of_range",
           why + (near.empty() ? "" : " (did you mean '" + near + "'?)"), origin, key);
    }
  }
};

void load_into(const StructSchema& schema, void* obj, const std::string& name, const std::string* text,
               const std::vector<std::string>& overrides) {
  std::vector<Frame> stack;
  Tree tree = load_tree(name, text, stack, nullptr);
  for (const std::string& o : overrides) merge(tree, override_tree(o));
  Applier{schema}.apply_struct(schema, obj, tree, "");
}

}  // namespace

void load_file(const StructSchema& schema, void* obj, const std::string& path,
               const std::vector<std::string>& overrides) {
  load_into(schema, obj, path, nullptr, overrides);
}

void load_string(const StructSchema& schema, void* obj, std::string_view yaml, const std::string& name,
                 const std::vector<std::string>& overrides) {
  const std::string text(yaml);
  load_into(schema, obj, name, &text, overrides);
}

}  // namespace pasteflow::config::detail
