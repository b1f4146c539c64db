// Loading configs: defaults, _base_ inheritance, overrides, and the errors
// (each asserted for reason code, key path, source and line).
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "pasteflow/config/config.hpp"
#include "toy_config.hpp"

namespace {

using pasteflow::ConfigError;
using pasteflow::config::config_diff;
using pasteflow::config::load_config;
using pasteflow::config::parse_config_string;
using toy::Interp;
using toy::RootConfig;

const std::string kDir = std::string(PASTEFLOW_TEST_DATA) + "/config/";

RootConfig load(const std::string& rel, const std::vector<std::string>& overrides = {}) {
  return load_config<RootConfig>(kDir + rel, overrides);
}

RootConfig parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return parse_config_string<RootConfig>(yaml, "inline.yaml", overrides);
}

/// Runs fn, expects a ConfigError with `reason` and `key`, whose what()
/// contains every string of `parts`; returns what().
std::string expect_error(const std::function<void()>& fn, const std::string& reason, const std::string& key,
                         const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.reason(), reason) << what;
    EXPECT_EQ(e.where().key, key) << what;
    for (const std::string& p : parts) EXPECT_NE(what.find(p), std::string::npos) << "missing '" << p << "' in: " << what;
    return what;
  }
  ADD_FAILURE() << "no ConfigError thrown (expected " << reason << ")";
  return "";
}

// ------------------------------------------------------------- defaults

TEST(ConfigLoad, EmptyFileGivesDefaults) {
  const RootConfig def;
  const RootConfig cfg = load("empty.yaml");
  EXPECT_TRUE(cfg == def);
  EXPECT_TRUE(config_diff(cfg, def).empty());
  EXPECT_EQ(cfg.augment.placement.border, 5);
  EXPECT_EQ(cfg.data.mean[1], 0.456);
  EXPECT_TRUE(parse("# nothing but a comment\n") == def);
  EXPECT_TRUE(parse("augment:\n  placement:\n") == def);  // null sections change nothing
}

TEST(ConfigLoad, MissingFileNamesThePath) {
  expect_error([] { load("nope.yaml"); }, "cannot_open", "", {"config/nope.yaml", "cannot open config file"});
}

// ------------------------------------------------------------- inheritance

TEST(ConfigLoad, BaseInheritanceTwoLevelsAndListOfBases) {
  const RootConfig cfg = load("exp/child.yaml");
  // grand.yaml only
  EXPECT_EQ(cfg.data.train_json, "grand/train.json");
  EXPECT_EQ(cfg.data.seed, 7u);
  EXPECT_EQ(cfg.augment.paste_prob, 0.25);
  EXPECT_EQ(cfg.augment.placement.mode, "box");
  EXPECT_EQ(cfg.num_workers, 3);
  // mid.yaml over grand.yaml; the list is replaced, not merged
  EXPECT_EQ(cfg.data.image_root, "mid/images");
  EXPECT_EQ(cfg.augment.scale_range, (std::vector<double>{0.9, 1.1}));
  // placement.yaml (second base) over mid.yaml
  EXPECT_EQ(cfg.augment.placement.max_tries, 30);
  EXPECT_TRUE(cfg.augment.placement.allow_overlap);
  EXPECT_EQ(cfg.augment.interp, Interp::kNearest);
  // child.yaml over everything; placement.border deep-merged next to mode
  EXPECT_EQ(cfg.augment.copies, 5);
  EXPECT_EQ(cfg.augment.placement.border, 11);
  // untouched keys keep the struct defaults
  EXPECT_EQ(cfg.data.max_images, -1);
  EXPECT_EQ(cfg.error_policy, "strict");
}

TEST(ConfigLoad, DiamondIsNotACycle) {
  const RootConfig cfg = load("exp/diamond.yaml");
  // grand.yaml comes last, so it wins over mid.yaml again
  EXPECT_EQ(cfg.data.image_root, "grand/images");
  EXPECT_EQ(cfg.augment.scale_range, (std::vector<double>{0.5, 2.0, 3.0}));
  EXPECT_EQ(cfg.augment.placement.max_tries, 20);  // only mid.yaml sets it
}

TEST(ConfigLoad, BaseCycleIsAnError) {
  // a -> b -> sub/c -> a; reported where c.yaml includes a.yaml
  expect_error([] { load("cycle/a.yaml"); }, "base_cycle", "_base_",
               {"inheritance cycle", "cycle/a.yaml -> ", "cycle/b.yaml -> ", "cycle/sub/c.yaml -> ",
                "sub/c.yaml:1:9"});
  expect_error([] { load("cycle/self.yaml"); }, "base_cycle", "_base_",
               {"cycle/self.yaml -> ", "self.yaml:1:9"});
}

TEST(ConfigLoad, MissingBaseNamesIncludingFileAndLine) {
  expect_error([] { load("exp/missing_base.yaml"); }, "cannot_open", "_base_",
               {"base/does_not_exist.yaml", "missing_base.yaml:3:5"});
}

TEST(ConfigLoad, BaseFromStringResolvesAgainstName) {
  const RootConfig cfg =
      parse_config_string<RootConfig>("_base_: base/grand.yaml\nnum_workers: 9\n", kDir + "inline.yaml");
  EXPECT_EQ(cfg.data.image_root, "grand/images");
  EXPECT_EQ(cfg.num_workers, 9);
  expect_error([] { parse("_base_: {a: 1}\n"); }, "bad_base", "_base_", {"inline.yaml:1:9", "list of paths"});
}

// ------------------------------------------------------------- overrides

TEST(ConfigLoad, Overrides) {
  const RootConfig cfg = load("exp/child.yaml", {
                                                    "augment.placement.border=9",
                                                    "augment.scale_range=[0.25, 4]",
                                                    "augment.placement.allow_overlap=false",
                                                    "augment.interp=cubic",
                                                    "data.image_root=/x/y z",
                                                    "data.train_json=",
                                                    "data.mean=[0.1, 0.2, 0.3]",
                                                    "data.category_ids=[3, 1]",
                                                    "data.max_images=1000000000000",
                                                    "num_workers=8",
                                                    "num_workers=6",
                                                });
  EXPECT_EQ(cfg.augment.placement.border, 9);
  EXPECT_EQ(cfg.augment.scale_range, (std::vector<double>{0.25, 4.0}));
  EXPECT_FALSE(cfg.augment.placement.allow_overlap);
  EXPECT_EQ(cfg.augment.interp, Interp::kCubic);
  EXPECT_EQ(cfg.data.image_root, "/x/y z");
  EXPECT_EQ(cfg.data.train_json, "");
  EXPECT_EQ(cfg.data.mean, (std::array<double, 3>{0.1, 0.2, 0.3}));
  EXPECT_EQ(cfg.data.category_ids, (std::vector<int>{3, 1}));
  EXPECT_EQ(cfg.data.max_images, 1000000000000);
  EXPECT_EQ(cfg.num_workers, 6);  // later override wins
  // keys not overridden still come from the files
  EXPECT_EQ(cfg.augment.placement.max_tries, 30);
  EXPECT_EQ(cfg.augment.placement.mode, "box");
}

TEST(ConfigLoad, OverrideWithFlowMappingMergesIntoSection) {
  const RootConfig cfg = parse("augment: {placement: {max_tries: 4}}\n", {"augment.placement={border: 1, mode: box}"});
  EXPECT_EQ(cfg.augment.placement.border, 1);
  EXPECT_EQ(cfg.augment.placement.mode, "box");
  EXPECT_EQ(cfg.augment.placement.max_tries, 4);
  // Overrides alone, on the defaults.
  const RootConfig only = parse_config_string<RootConfig>("", "<defaults>", {"augment.copies=0"});
  EXPECT_EQ(only.augment.copies, 0);
}

TEST(ConfigLoad, OverrideOfUnknownKeyNamesTheOverride) {
  expect_error([] { load("exp/child.yaml", {"augment.placment.border=3"}); }, "unknown_key", "augment.placment",
               {"override 'augment.placment.border=3'", "unknown key", "did you mean 'augment.placement'"});
  expect_error([] { parse("", {"augment.placement.border=1", "augment.placement.colour=red"}); }, "unknown_key",
               "augment.placement.colour", {"override 'augment.placement.colour=red'"});
}

TEST(ConfigLoad, MalformedOverrides) {
  expect_error([] { parse("", {"augment.copies"}); }, "bad_override", "augment.copies",
               {"override 'augment.copies'", "key.path=value"});
  expect_error([] { parse("", {"=5"}); }, "bad_override", "", {"override '=5'"});
  expect_error([] { parse("", {"augment..copies=5"}); }, "bad_override", "augment..copies", {"key.path=value"});
  expect_error([] { parse("", {"augment.scale_range=[1,"}); }, "bad_override", "augment.scale_range",
               {"not valid YAML"});
  expect_error([] { parse("", {"augment.copies=many"}); }, "type_mismatch", "augment.copies",
               {"override 'augment.copies=many'", "expected int, got 'many'"});
}

// ------------------------------------------------------------- unknown keys

TEST(ConfigLoad, UnknownKeyNamesPathFileAndLine) {
  const std::string what = expect_error([] { load("errors/unknown_key.yaml"); }, "unknown_key",
                                        "augment.placement.bordr",
                                        {"errors/unknown_key.yaml:4:5", "key 'augment.placement.bordr'",
                                         "unknown key", "did you mean 'augment.placement.border'"});
  EXPECT_EQ(what.find("child_of_unknown"), std::string::npos);
}

TEST(ConfigLoad, UnknownKeyInBaseNamesTheBaseFile) {
  expect_error([] { load("errors/child_of_unknown.yaml"); }, "unknown_key", "augment.placement.bordr",
               {"errors/unknown_key.yaml:4:5"});
}

TEST(ConfigLoad, UnknownKeySuggestions) {
  // a key in the wrong section: suggested by its full path
  expect_error([] { parse("augment:\n  border: 3\n"); }, "unknown_key", "augment.border",
               {"inline.yaml:2:3", "did you mean 'augment.placement.border'"});
  // nothing close: no suggestion
  const std::string what = expect_error([] { parse("frobnicate: 1\n"); }, "unknown_key", "frobnicate",
                                        {"inline.yaml:1:1"});
  EXPECT_EQ(what.find("did you mean"), std::string::npos) << what;
  // _base_ is only special at the top level
  expect_error([] { parse("data:\n  _base_: x.yaml\n"); }, "unknown_key", "data._base_", {"inline.yaml:2:3"});
}

// ------------------------------------------------------------- types

TEST(ConfigLoad, WrongTypes) {
  expect_error([] { load("errors/wrong_type.yaml"); }, "type_mismatch", "augment.copies",
               {"errors/wrong_type.yaml:4:11", "expected int, got 'three'"});
  expect_error([] { parse("augment:\n  copies: \"5\"\n"); }, "type_mismatch", "augment.copies",
               {"inline.yaml:2:11", "expected int, got string \"5\""});
  expect_error([] { parse("num_workers: [1, 2]\n"); }, "type_mismatch", "num_workers",
               {"inline.yaml:1:14", "expected int, got a list"});
  expect_error([] { parse("augment:\n  scale_range: 0.5\n"); }, "type_mismatch", "augment.scale_range",
               {"inline.yaml:2:16", "expected list[float], got '0.5'"});
  expect_error([] { parse("num_workers: {a: 1}\n"); }, "type_mismatch", "num_workers",
               {"expected int, got a mapping"});
  expect_error([] { parse("augment: 5\n"); }, "type_mismatch", "augment",
               {"inline.yaml:1:10", "expected a section", "got '5'"});
  expect_error([] { parse("data:\n  category_ids: [1, x, 3]\n"); }, "type_mismatch", "data.category_ids[1]",
               {"inline.yaml:2:21", "expected list[int] element, got 'x'"});
  expect_error([] { parse("data:\n  mean: [0.1, 0.2]\n"); }, "type_mismatch", "data.mean",
               {"expected float[3] (exactly 3 elements), got 2"});
  expect_error([] { parse("augment:\n  placement:\n    allow_overlap: maybe\n"); }, "type_mismatch",
               "augment.placement.allow_overlap", {"inline.yaml:3:20", "expected bool (true or false)"});
  expect_error([] { parse("data:\n  seed: -1\n"); }, "type_mismatch", "data.seed", {"expected uint64"});
  expect_error([] { parse("augment:\n  paste_prob: 1.5x\n"); }, "type_mismatch", "augment.paste_prob",
               {"expected float, got '1.5x'"});
  expect_error([] { parse("data:\n  image_root: ~\n"); }, "type_mismatch", "data.image_root",
               {"expected string, got null"});
  expect_error([] { parse("[1, 2]\n"); }, "type_mismatch", "", {"inline.yaml:1:1", "top level"});
}

TEST(ConfigLoad, YamlSyntaxAndDuplicateKeys) {
  expect_error([] { parse("data:\n  mean: [0.1,\nnum_workers: 2\n"); }, "yaml_syntax", "",
               {"inline.yaml:", "YAML syntax error"});
  expect_error([] { parse("augment:\n  copies: 1\n  copies: 2\n"); }, "duplicate_key", "augment.copies",
               {"inline.yaml:3:3", "first at inline.yaml:2:3"});
}

TEST(ConfigLoad, ScalarSpellings) {
  const RootConfig cfg = parse(
      "augment:\n  paste_prob: 1\n  scale_range: [3, 2, 1e-3, +0.5]\n  placement:\n    allow_overlap: yes\n"
      "data:\n  max_images: +12\n  seed: 18446744073709551615\n  splits: [val, \"test\"]\n");
  EXPECT_EQ(cfg.augment.paste_prob, 1.0);
  ASSERT_EQ(cfg.augment.scale_range.size(), 4u);
  EXPECT_EQ(cfg.augment.scale_range[0], 3.0);
  EXPECT_EQ(cfg.augment.scale_range[2], 1e-3);
  EXPECT_EQ(cfg.augment.scale_range[3], 0.5);
  EXPECT_TRUE(cfg.augment.placement.allow_overlap);
  EXPECT_EQ(cfg.data.max_images, 12);
  EXPECT_EQ(cfg.data.seed, 18446744073709551615ull);
  EXPECT_EQ(cfg.data.splits, (std::vector<std::string>{"val", "test"}));
}

// ------------------------------------------------------------- ranges and choices

TEST(ConfigLoad, OutOfRange) {
  expect_error([] { load("errors/out_of_range.yaml"); }, "out_of_range", "data.mean[1]",
               {"errors/out_of_range.yaml:2:15", "value 1.5 is out of range [0.0, 1.0]"});
  expect_error([] { parse("augment:\n  placement:\n    border: -1\n"); }, "out_of_range", "augment.placement.border",
               {"inline.yaml:3:13", "value -1 is out of range [0, 100000]"});
  expect_error([] { parse("num_workers: 65\n"); }, "out_of_range", "num_workers", {"out of range [1, 64]"});
  expect_error([] { parse("data:\n  max_images: -2\n"); }, "out_of_range", "data.max_images", {">= -1"});
  expect_error([] { parse("data:\n  category_ids: [4, 0]\n"); }, "out_of_range", "data.category_ids[1]",
               {"value 0 is out of range >= 1"});
  expect_error([] { parse("num_workers: 3000000000\n"); }, "out_of_range", "num_workers",
               {"does not fit in an int"});
}

TEST(ConfigLoad, ChoiceNotAllowedListsChoices) {
  expect_error([] { parse("augment:\n  interp: bicubic\n"); }, "bad_choice", "augment.interp",
               {"inline.yaml:2:11", "'bicubic' is not one of: nearest, linear, cubic", "did you mean 'cubic'"});
  expect_error([] { load("empty.yaml", {"augment.placement.mode=boxx"}); }, "bad_choice",
               "augment.placement.mode",
               {"override 'augment.placement.mode=boxx'", "\"boxx\" is not one of: mask, box",
                "did you mean 'box'"});
  expect_error([] { parse("data:\n  splits: [train, dev]\n"); }, "bad_choice", "data.splits[1]",
               {"inline.yaml:2:19", "is not one of: train, val, test"});
  expect_error([] { parse("augment:\n  interp: [linear]\n"); }, "type_mismatch", "augment.interp",
               {"one of: nearest, linear, cubic", "got a list"});
}

// ------------------------------------------------------------- regressions (issue 10)

// `.nan` passed every key without bounds (and `.inf` every key without an
// upper bound): a NaN mean or scale went on to poison every later number.
TEST(ConfigRegression, NanAndInfinityAreRejectedWithTheKeyPath) {
  expect_error([] { parse("augment:\n  scale_range: [1, .inf]\n"); }, "not_finite", "augment.scale_range[1]",
               {"inline.yaml:2:20", "value .inf is not a finite number"});
  expect_error([] { parse("augment:\n  paste_prob: .nan\n"); }, "not_finite", "augment.paste_prob",
               {"inline.yaml:2:15", "value .nan is not a finite number"});
  expect_error([] { parse("data:\n  mean: [0.5, -.inf, 0.5]\n"); }, "not_finite", "data.mean[1]",
               {"inline.yaml:2:15"});
  // from_chars spells them without the dot too.
  expect_error([] { parse("augment:\n  scale_range: [nan]\n"); }, "not_finite", "augment.scale_range[0]", {});
  expect_error([] { parse("", {"augment.paste_prob=inf"}); }, "not_finite", "augment.paste_prob",
               {"override 'augment.paste_prob=inf'"});
}

// A directory opens as an empty stream: a `_base_` naming one was read as an
// empty file and the config silently fell back to the defaults.
TEST(ConfigRegression, BaseThatIsADirectoryIsRefused) {
  expect_error([] { parse("_base_: " + kDir + "exp\nnum_workers: 4\n"); }, "cannot_open", "_base_",
               {"inline.yaml:1:9", "config/exp' (a directory)"});
  expect_error([] { load("exp"); }, "cannot_open", "", {"config/exp", "cannot open config file (a directory)"});
}

// yaml-cpp stops at 2000 levels with the message "bad file".
TEST(ConfigRegression, DeepNestingSaysHowDeep) {
  expect_error([] { parse("data:\n  mean: " + std::string(200000, '[') + "\n"); }, "yaml_syntax", "",
               {"inline.yaml:", "nested more than"});
  expect_error([] { parse("", {"data.mean=" + std::string(200000, '[')}); }, "bad_override", "data.mean",
               {"nested more than"});
}

// yaml-cpp keeps both entries of a repeated key; every spelling of a mapping
// (block, flow, inside an override) must name the second one.
TEST(ConfigRegression, DuplicateKeysInFlowMappingsAndOverrides) {
  expect_error([] { parse("augment: {copies: 1, copies: 2}\n"); }, "duplicate_key", "augment.copies",
               {"inline.yaml:1:22", "first at inline.yaml:1:11"});
  expect_error([] { parse("", {"augment={placement: {border: 1, border: 2}}"}); }, "duplicate_key",
               "augment.placement.border", {"override 'augment={placement: {border: 1, border: 2}}'"});
  expect_error([] { parse("data:\n  seed: 1\n\"seed\": 2\ndata:\n  seed: 3\n"); }, "duplicate_key", "data",
               {"inline.yaml:4:1", "first at inline.yaml:1:1"});
}

}  // namespace
