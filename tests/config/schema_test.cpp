// Dump/reload round trip, diff, schema listing and Markdown, and the checks
// on mistakes in describe().
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "pasteflow/config/config.hpp"
#include "toy_config.hpp"

namespace {

using pasteflow::config::config_diff;
using pasteflow::config::Describer;
using pasteflow::config::dump_config;
using pasteflow::config::KeyInfo;
using pasteflow::config::parse_config_string;
using pasteflow::config::schema_keys;
using pasteflow::config::schema_markdown;
using toy::Interp;
using toy::RootConfig;

RootConfig unusual_config() {
  RootConfig c;
  c.data.train_json = "true";
  c.data.image_root = "  a: b # not a comment\n\"quoted\" \\ é";
  c.data.max_images = std::numeric_limits<std::int64_t>::max();
  c.data.seed = std::numeric_limits<std::uint64_t>::max();
  c.data.category_ids = {1, 2147483647};
  c.data.splits = {};
  c.data.mean = {0.1, 1.0 / 3.0, 0.0};
  c.augment.paste_prob = 1e-300;
  c.augment.copies = 0;
  c.augment.interp = Interp::kCubic;
  c.augment.scale_range = {std::numeric_limits<double>::max(), 5.0, 0.30000000000000004};
  c.augment.categories = {"", "5", "null", "- x"};
  c.augment.placement.border = 100000;
  c.augment.placement.allow_overlap = true;
  c.augment.placement.mode = "box";
  c.num_workers = 64;
  c.error_policy = "skip";
  return c;
}

TEST(ConfigSchema, DumpReloadsToEqualConfig) {
  for (const RootConfig& original : {RootConfig{}, unusual_config()}) {
    const std::string text = dump_config(original);
    const RootConfig back = parse_config_string<RootConfig>(text, "dump.yaml");
    EXPECT_TRUE(back == original) << text;
    EXPECT_TRUE(config_diff(back, original).empty()) << text;
    EXPECT_EQ(dump_config(back), text);
  }
}

TEST(ConfigSchema, DumpIsReadableYaml) {
  const std::string text = dump_config(RootConfig{});
  EXPECT_NE(text.find("data:\n  train_json: \"annotations/instances_train.json\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  mean: [0.485, 0.456, 0.406]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  interp: linear\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  placement:\n    border: 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  paste_prob: 0.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  categories: []\n"), std::string::npos) << text;
  EXPECT_NE(text.find("num_workers: 2\n"), std::string::npos) << text;
}

TEST(ConfigSchema, DiffNamesChangedKeys) {
  RootConfig a;
  RootConfig b;
  b.augment.placement.border = 6;
  b.data.mean[2] = 0.5;
  b.augment.scale_range.push_back(2.0);
  b.augment.interp = Interp::kNearest;
  EXPECT_EQ(config_diff(a, b), (std::vector<std::string>{"data.mean", "augment.interp", "augment.scale_range",
                                                         "augment.placement.border"}));
  EXPECT_TRUE(config_diff(a, a).empty());
}

TEST(ConfigSchema, KeysListEveryLeafWithTypeDefaultAndConstraint) {
  const std::vector<KeyInfo> keys = schema_keys<RootConfig>();
  std::vector<std::string> paths;
  for (const KeyInfo& k : keys) paths.push_back(k.path);
  EXPECT_EQ(paths, (std::vector<std::string>{
                       "data.train_json", "data.image_root", "data.max_images", "data.seed",
                       "data.category_ids", "data.splits", "data.mean", "augment.paste_prob", "augment.copies",
                       "augment.interp", "augment.scale_range", "augment.categories",
                       "augment.placement.border", "augment.placement.max_tries",
                       "augment.placement.allow_overlap", "augment.placement.mode", "num_workers",
                       "error_policy"}));
  auto find = [&](const std::string& p) {
    for (const KeyInfo& k : keys) {
      if (k.path == p) return k;
    }
    return KeyInfo{};
  };
  const KeyInfo border = find("augment.placement.border");
  EXPECT_EQ(border.type, "int");
  EXPECT_EQ(border.default_value, "5");
  EXPECT_EQ(border.constraint, "[0, 100000]");
  EXPECT_EQ(border.doc, "minimum distance in px from every image edge");
  const KeyInfo mode = find("augment.placement.mode");
  EXPECT_EQ(mode.type, "string");
  EXPECT_EQ(mode.default_value, "\"mask\"");
  EXPECT_EQ(mode.constraint, "one of: mask, box");
  const KeyInfo interp = find("augment.interp");
  EXPECT_EQ(interp.type, "enum");
  EXPECT_EQ(interp.default_value, "linear");
  EXPECT_EQ(interp.constraint, "one of: nearest, linear, cubic");
  const KeyInfo mean = find("data.mean");
  EXPECT_EQ(mean.type, "float[3]");
  EXPECT_EQ(mean.default_value, "[0.485, 0.456, 0.406]");
  EXPECT_EQ(mean.constraint, "[0.0, 1.0]");
  EXPECT_EQ(find("data.category_ids").type, "list[int]");
  EXPECT_EQ(find("data.category_ids").default_value, "[]");
  EXPECT_EQ(find("data.category_ids").constraint, ">= 1");
  EXPECT_EQ(find("data.seed").type, "uint64");
  EXPECT_EQ(find("data.seed").constraint, "");
  EXPECT_EQ(find("data.max_images").type, "int64");
  EXPECT_EQ(find("augment.placement.allow_overlap").default_value, "false");
}

TEST(ConfigSchema, MarkdownHasEveryKeyWithItsDoc) {
  const std::string md = schema_markdown<RootConfig>();
  EXPECT_EQ(md.rfind("| key | type | default | allowed | description |\n", 0), 0u) << md;
  for (const KeyInfo& k : schema_keys<RootConfig>()) {
    EXPECT_NE(md.find("| `" + k.path + "` | " + k.type + " | `" + k.default_value + "` | "), std::string::npos)
        << k.path << "\n" << md;
    EXPECT_NE(md.find(k.doc + " |\n"), std::string::npos) << k.path;
  }
  EXPECT_NE(md.find("| `augment.placement.mode` | string | `\"mask\"` | one of: mask, box | occupancy test |\n"),
            std::string::npos)
      << md;
}

// ------------------------------------------------------------- describe() mistakes

enum class Color { kRed, kGreen };

struct EnumWithoutNames {
  Color color = Color::kRed;
  static void describe(Describer<EnumWithoutNames>& d) { d.field("color", &EnumWithoutNames::color, "a color"); }
};

struct DefaultOutOfRange {
  int n = 0;
  static void describe(Describer<DefaultOutOfRange>& d) { d.field("n", &DefaultOutOfRange::n, "count").range(1, 9); }
};

struct NestedBadDefault {
  DefaultOutOfRange inner;
  static void describe(Describer<NestedBadDefault>& d) { d.field("inner", &NestedBadDefault::inner, "inner"); }
};

struct DuplicateKey {
  int a = 0;
  int b = 0;
  static void describe(Describer<DuplicateKey>& d) {
    d.field("a", &DuplicateKey::a, "first");
    d.field("a", &DuplicateKey::b, "second");
  }
};

struct NoDoc {
  int a = 0;
  static void describe(Describer<NoDoc>& d) { d.field("a", &NoDoc::a, ""); }
};

struct BadName {
  int a = 0;
  static void describe(Describer<BadName>& d) { d.field("a.b", &BadName::a, "dotted"); }
};

template <class T>
std::string schema_error_of() {
  try {
    schema_keys<T>();
  } catch (const pasteflow::ConfigError& e) {
    ADD_FAILURE() << "a describe() mistake is not a ConfigError: " << e.what();
  } catch (const pasteflow::Error& e) {
    EXPECT_EQ(e.reason(), "schema_error");
    return e.what();
  }
  ADD_FAILURE() << "no schema_error";
  return "";
}

TEST(ConfigSchema, DescribeMistakesAreReported) {
  EXPECT_NE(schema_error_of<EnumWithoutNames>().find("enum key 'color' needs one_of"), std::string::npos);
  const std::string range = schema_error_of<DefaultOutOfRange>();
  EXPECT_NE(range.find("key 'n'"), std::string::npos) << range;
  EXPECT_NE(range.find("value 0 is out of range [1, 9]"), std::string::npos) << range;
  EXPECT_NE(schema_error_of<NestedBadDefault>().find("key 'inner.n'"), std::string::npos);
  EXPECT_NE(schema_error_of<DuplicateKey>().find("key 'a' declared twice"), std::string::npos);
  EXPECT_NE(schema_error_of<NoDoc>().find("has no documentation"), std::string::npos);
  EXPECT_NE(schema_error_of<BadName>().find("[A-Za-z0-9_]"), std::string::npos);
}

}  // namespace
