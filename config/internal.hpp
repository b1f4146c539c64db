// Private helpers of the config layer, shared by schema.cpp and loader.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/config/describe.hpp"

namespace pasteflow::config::detail {

template <class E>
struct Tag {
  using type = E;
};

/// Calls fn(Tag<E>{}) with E the C++ type of a vector/array/scalar element
/// of kind `k` (not kEnum or kStruct, which have no single C++ type here).
template <class Fn>
decltype(auto) with_element_type(Kind k, Fn&& fn) {
  switch (k) {
    case Kind::kBool: return fn(Tag<bool>{});
    case Kind::kInt: return fn(Tag<int>{});
    case Kind::kInt64: return fn(Tag<std::int64_t>{});
    case Kind::kUInt64: return fn(Tag<std::uint64_t>{});
    case Kind::kDouble: return fn(Tag<double>{});
    case Kind::kString:
    case Kind::kEnum:
    case Kind::kStruct: break;
  }
  return fn(Tag<std::string>{});
}

/// Number of elements of a leaf field (1 for scalars).
std::size_t element_count(const FieldSchema& f, void* member);
/// Address of element i of a leaf field (`member` = f.access(obj)).
void* element_at(const FieldSchema& f, void* member, std::size_t i);

/// "int", "float", "list[string]", "float[3]", ...
std::string type_name(const FieldSchema& f);
/// "[0, 100]", ">= 1", "<= 5", "one of: a, b", or "".
std::string constraint_text(const FieldSchema& f);
/// Shortest text that reads back to exactly v; always looks like a float
/// ("1.0", "0.1", "1e-05", ".inf", ".nan").
std::string format_double(double v);
/// YAML text of one element: 5, 1.5, true, mask (enum name), "quoted string".
std::string element_text(const FieldSchema& f, void* elem);
/// Empty when element `elem` satisfies the field's bounds/choices, else the reason.
std::string check_element(const FieldSchema& f, void* elem);
/// Name of an enum value, or its number when it has no name.
std::string enum_name(const FieldSchema& f, std::int64_t value);
/// "a", "b" -> "a, b".
std::string join(const std::vector<std::string>& items, const char* sep);
/// Optimal string alignment distance (insert, delete, substitute, transpose).
std::size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace pasteflow::config::detail
