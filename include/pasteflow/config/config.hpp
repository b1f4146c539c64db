// Loading, dumping and documenting configs described with describe.hpp.
//
//   auto cfg = pasteflow::config::load_config<RootConfig>("exp.yaml", {"augment.placement.border=8"});
//
// Files: YAML mappings. A top-level `_base_` (a path or a list of paths,
// relative to the including file) is loaded first; bases are deep-merged in
// order, then the file itself on top (mappings merge key by key, later wins;
// lists and scalars are replaced wholesale; a null section changes nothing).
// Overrides "a.b.c=value" are applied last, in order; `value` is read as
// YAML ("x=[1, 2]", "y=true", "z=" is the empty string).
//
// Every error is a pasteflow::ConfigError whose Location names the key path
// (`key`) and where the offending text came from (`file`): "path:line:column"
// for files (1-based), "override 'a.b=1'" for overrides. Reason codes:
// unknown_key, type_mismatch, out_of_range, not_finite (a float key given
// .nan or .inf), bad_choice, base_cycle, bad_base, cannot_open, yaml_syntax,
// duplicate_key, bad_override.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pasteflow/config/describe.hpp"
#include "pasteflow/core/error.hpp"

namespace pasteflow::config {

/// One leaf key of a schema.
struct KeyInfo {
  std::string path;           ///< "augment.placement.border"
  std::string type;           ///< "int", "float", "string", "bool", "enum", "list[int]", "float[3]", ...
  std::string default_value;  ///< YAML flow text of the default: 5, "mask", [0.5, 1.5]
  std::string constraint;     ///< "[0, 100]", ">= 1", "one of: mask, box"; empty when unconstrained
  std::string doc;            ///< one line of documentation
};

namespace detail {

/// The schema of Root after checking that Root's defaults satisfy it.
template <class Root>
const StructSchema& root_schema();

void check_values(const StructSchema& schema, const void* obj);
void load_file(const StructSchema& schema, void* obj, const std::string& path,
               const std::vector<std::string>& overrides);
void load_string(const StructSchema& schema, void* obj, std::string_view yaml,
                 const std::string& name, const std::vector<std::string>& overrides);
std::string dump(const StructSchema& schema, const void* obj);
std::vector<KeyInfo> keys(const StructSchema& schema, const void* defaults);
std::string markdown(const StructSchema& schema, const void* defaults);
std::vector<std::string> diff(const StructSchema& schema, const void* a, const void* b);

template <class Root>
const StructSchema& root_schema() {
  static const StructSchema& schema = []() -> const StructSchema& {
    const StructSchema& s = schema_of<Root>();
    const Root defaults{};
    check_values(s, &defaults);
    return s;
  }();
  return schema;
}

}  // namespace detail

/// Defaults of Root, then the file at `path` (with its `_base_` chain), then
/// `overrides`. Throws ConfigError.
template <class Root>
Root load_config(const std::string& path, const std::vector<std::string>& overrides = {}) {
  Root root{};
  detail::load_file(detail::root_schema<Root>(), &root, path, overrides);
  return root;
}

/// As load_config, for YAML text; `name` is used in error messages and as
/// the path that relative `_base_` entries are resolved against.
/// parse_config_string<Root>("", "<defaults>", overrides) applies overrides
/// to the defaults only.
template <class Root>
Root parse_config_string(std::string_view yaml, const std::string& name,
                         const std::vector<std::string>& overrides = {}) {
  Root root{};
  detail::load_string(detail::root_schema<Root>(), &root, yaml, name, overrides);
  return root;
}

/// Every key of `config` as a YAML document in schema order. Loading the
/// result gives back an equal config (doubles are written round-trip exact).
template <class Root>
std::string dump_config(const Root& config) {
  return detail::dump(detail::root_schema<Root>(), &config);
}

/// Key paths (leaves) whose values differ between `a` and `b`, in schema order.
template <class Root>
std::vector<std::string> config_diff(const Root& a, const Root& b) {
  return detail::diff(detail::root_schema<Root>(), &a, &b);
}

/// Every leaf key of Root's schema with its type, default, constraint and doc.
template <class Root>
std::vector<KeyInfo> schema_keys() {
  const Root defaults{};
  return detail::keys(detail::root_schema<Root>(), &defaults);
}

/// schema_keys() as a Markdown table: key | type | default | allowed | description.
template <class Root>
std::string schema_markdown() {
  const Root defaults{};
  return detail::markdown(detail::root_schema<Root>(), &defaults);
}

}  // namespace pasteflow::config
