// Config structs describe themselves once, beside the code that uses them:
//
//   struct PlacementConfig {
//     int border = 5;
//     std::string mode = "mask";
//     static void describe(pasteflow::config::Describer<PlacementConfig>& d) {
//       d.field("border", &PlacementConfig::border, "minimum distance in px from every image edge")
//           .range(0, 100000);
//       d.field("mode", &PlacementConfig::mode, "occupancy test").one_of({"mask", "box"});
//     }
//   };
//
// Defaults are the struct's default member initialisers. Field types: bool,
// int, int64_t, uint64_t, double, std::string, enums (names given with
// one_of), std::vector and std::array of int/int64_t/uint64_t/double/string,
// and nested structs that have their own describe().
//
// This header has no YAML dependency; loading lives in config.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace pasteflow::config {

/// Element type of a field (for vectors and arrays: of each element).
enum class Kind : std::uint8_t { kBool, kInt, kInt64, kUInt64, kDouble, kString, kEnum, kStruct };
/// Container of a field.
enum class Shape : std::uint8_t { kScalar, kVector, kArray };

template <class T>
class Describer;

namespace detail {

struct StructSchema;

/// An inclusive bound; the member used follows the field's Kind
/// (i: int/int64, u: uint64, d: double).
struct Number {
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0.0;
};

/// One described field, type-erased. Walked by the code in config/*.cpp.
struct FieldSchema {
  std::string name;
  std::string doc;
  Kind kind = Kind::kInt;
  Shape shape = Shape::kScalar;
  std::size_t array_size = 0;  ///< N of std::array<E, N>
  /// Address of the member in an object of the owning struct; for
  /// std::array, the address of its first element.
  std::function<void*(void*)> access;
  const StructSchema* nested = nullptr;  ///< Kind::kStruct
  bool has_min = false;
  bool has_max = false;
  Number min;
  Number max;
  std::vector<std::string> choices;        ///< allowed strings / enum names
  std::vector<std::int64_t> enum_values;   ///< parallel to choices (Kind::kEnum)
  std::int64_t (*enum_get)(const void*) = nullptr;
  void (*enum_set)(void*, std::int64_t) = nullptr;
};

struct StructSchema {
  std::string type_name;
  std::vector<FieldSchema> fields;
};

/// Checks a freshly described struct (names, docs, enum choices, bounds);
/// throws pasteflow::Error("schema_error") on a programming mistake.
void finish_struct(StructSchema& schema);

template <class T, class = void>
struct has_describe : std::false_type {};
template <class T>
struct has_describe<T, std::void_t<decltype(T::describe(std::declval<Describer<T>&>()))>>
    : std::true_type {};

template <class>
inline constexpr bool kAlwaysFalse = false;

template <class E>
constexpr Kind kind_of() {
  if constexpr (std::is_same_v<E, bool>) {
    return Kind::kBool;
  } else if constexpr (std::is_same_v<E, int>) {
    return Kind::kInt;
  } else if constexpr (std::is_same_v<E, std::int64_t>) {
    return Kind::kInt64;
  } else if constexpr (std::is_same_v<E, std::uint64_t>) {
    return Kind::kUInt64;
  } else if constexpr (std::is_same_v<E, double>) {
    return Kind::kDouble;
  } else if constexpr (std::is_same_v<E, std::string>) {
    return Kind::kString;
  } else if constexpr (std::is_enum_v<E>) {
    return Kind::kEnum;
  } else if constexpr (has_describe<E>::value) {
    return Kind::kStruct;
  } else {
    static_assert(kAlwaysFalse<E>,
                  "unsupported config field type (bool, int, int64_t, uint64_t, double, "
                  "std::string, enum, struct with describe(), or vector/array of those scalars)");
    return Kind::kBool;
  }
}

template <class M>
struct ShapeOf {
  static constexpr Shape shape = Shape::kScalar;
  static constexpr std::size_t size = 0;
  using Elem = M;
};
template <class E, class A>
struct ShapeOf<std::vector<E, A>> {
  static constexpr Shape shape = Shape::kVector;
  static constexpr std::size_t size = 0;
  using Elem = E;
};
template <class E, std::size_t N>
struct ShapeOf<std::array<E, N>> {
  static constexpr Shape shape = Shape::kArray;
  static constexpr std::size_t size = N;
  using Elem = E;
};

template <class E>
std::int64_t enum_get(const void* p) {
  return static_cast<std::int64_t>(*static_cast<const E*>(p));
}
template <class E>
void enum_set(void* p, std::int64_t v) {
  *static_cast<E*>(p) = static_cast<E>(v);
}

template <class T>
const StructSchema& schema_of();

}  // namespace detail

/// Returned by Describer::field to attach constraints to the field just
/// declared. Only the constraints that fit the field's type compile.
template <class M>
class FieldBuilder {
 public:
  using Elem = typename detail::ShapeOf<M>::Elem;
  static constexpr bool kNumeric = std::is_arithmetic_v<Elem> && !std::is_same_v<Elem, bool>;

  FieldBuilder(detail::StructSchema& schema, std::size_t index) : schema_(schema), index_(index) {}

  /// Inclusive bounds (for vectors and arrays: of every element).
  FieldBuilder& range(Elem lo, Elem hi) { return min(lo).max(hi); }
  FieldBuilder& min(Elem lo) {
    static_assert(kNumeric, "min/max/range need a numeric field");
    set(field().min, lo);
    field().has_min = true;
    return *this;
  }
  FieldBuilder& max(Elem hi) {
    static_assert(kNumeric, "min/max/range need a numeric field");
    set(field().max, hi);
    field().has_max = true;
    return *this;
  }
  /// Allowed values of a string field (or of every element of a string list).
  template <class E = Elem, std::enable_if_t<std::is_same_v<E, std::string>, int> = 0>
  FieldBuilder& one_of(std::vector<std::string> choices) {
    field().choices = std::move(choices);
    return *this;
  }
  /// Names of an enum field's values, e.g. {{"mask", Mode::kMask}, {"box", Mode::kBox}}.
  /// Required for every enum field.
  template <class E = Elem, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  FieldBuilder& one_of(const std::vector<std::pair<std::string, E>>& names) {
    field().choices.clear();
    field().enum_values.clear();
    for (const auto& [name, value] : names) {
      field().choices.push_back(name);
      field().enum_values.push_back(static_cast<std::int64_t>(value));
    }
    return *this;
  }

 private:
  detail::FieldSchema& field() { return schema_.fields[index_]; }
  static void set(detail::Number& n, Elem v) {
    if constexpr (std::is_floating_point_v<Elem>) {
      n.d = static_cast<double>(v);
    } else if constexpr (std::is_unsigned_v<Elem>) {
      n.u = static_cast<std::uint64_t>(v);
    } else {
      n.i = static_cast<std::int64_t>(v);
    }
  }

  detail::StructSchema& schema_;
  std::size_t index_;
};

/// Passed to T::describe(); declares T's fields in the order they are dumped.
template <class T>
class Describer {
 public:
  explicit Describer(detail::StructSchema& schema) : schema_(schema) {}

  /// Declares member `member` under YAML key `name`, with one line of `doc`.
  template <class M>
  FieldBuilder<M> field(std::string name, M T::*member, std::string doc) {
    using S = detail::ShapeOf<M>;
    using E = typename S::Elem;
    constexpr Kind kind = detail::kind_of<E>();
    static_assert(S::shape == Shape::kScalar ||
                      (kind != Kind::kBool && kind != Kind::kEnum && kind != Kind::kStruct),
                  "vectors and arrays hold int, int64_t, uint64_t, double or std::string");
    detail::FieldSchema f;
    f.name = std::move(name);
    f.doc = std::move(doc);
    f.kind = kind;
    f.shape = S::shape;
    f.array_size = S::size;
    if constexpr (S::shape == Shape::kArray) {
      f.access = [member](void* obj) -> void* { return (static_cast<T*>(obj)->*member).data(); };
    } else {
      f.access = [member](void* obj) -> void* { return &(static_cast<T*>(obj)->*member); };
    }
    if constexpr (kind == Kind::kStruct) f.nested = &detail::schema_of<E>();
    if constexpr (kind == Kind::kEnum) {
      f.enum_get = &detail::enum_get<E>;
      f.enum_set = &detail::enum_set<E>;
    }
    schema_.fields.push_back(std::move(f));
    return FieldBuilder<M>(schema_, schema_.fields.size() - 1);
  }

 private:
  detail::StructSchema& schema_;
};

namespace detail {

/// The schema of T, built from T::describe() on first use.
template <class T>
const StructSchema& schema_of() {
  static_assert(has_describe<T>::value, "config struct needs static void describe(Describer<T>&)");
  static_assert(std::is_default_constructible_v<T>, "config struct must be default-constructible");
  static const StructSchema schema = [] {
    StructSchema s;
    s.type_name = typeid(T).name();
    Describer<T> d(s);
    T::describe(d);
    finish_struct(s);
    return s;
  }();
  return schema;
}

}  // namespace detail
}  // namespace pasteflow::config
