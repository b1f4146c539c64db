// The pipeline's config schema and the shipped configs (configs/): every
// file loads, and resolves to the settings of the paper's table row it names
// (Kisantal et al., Tables 3-8); errors name the key and the file; overrides;
// dump -> reload; fields derived at run time are not keys.
#include "pasteflow/pipeline/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unistd.h>

#include "pasteflow/config/config.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/pipeline/loader.hpp"

namespace pasteflow::pipeline {
namespace {

namespace fs = std::filesystem;
const std::string kConfigs = std::string(PASTEFLOW_SOURCE_DIR) + "/configs";
const std::string kSample = PASTEFLOW_SAMPLE_DATA;

/// Every pipeline config shipped: configs/base.yaml and every *.yaml under
/// configs/paper/, as paths relative to configs/ ("paper/aug.yaml"). (Other
/// directories of configs/ hold other roots: models/, train/.)
std::set<std::string> config_files() {
  std::set<std::string> out;
  if (fs::exists(kConfigs + "/base.yaml")) out.insert("base.yaml");
  for (const auto& e : fs::recursive_directory_iterator(kConfigs + "/paper")) {
    if (e.is_regular_file() && e.path().extension() == ".yaml") {
      out.insert(fs::relative(e.path(), kConfigs).generic_string());
    }
  }
  return out;
}

// ------------------------------------------------------------- expectations
//
// What each file must resolve to, written by hand from the paper's text
// (sec. 5.1-5.4) as changes to the built-in defaults. A file in configs/
// without an entry here fails the test, so every shipped config is checked.

PipelineConfig original_aug() {
  PipelineConfig c;
  c.sampler.aug_mode = "original_aug";  // sec. 5.2 third setting: original + augmented copy (2x)
  c.sampler.aug_probability = 0.5;
  c.augment.strategy = "all";           // sec. 5.2: "copy and paste all small objects in each image once"
  c.augment.copies = 1;
  return c;
}

std::map<std::string, std::function<PipelineConfig()>> expectations() {
  std::map<std::string, std::function<PipelineConfig()>> m;
  m["base.yaml"] = [] { return PipelineConfig{}; };
  m["paper/baseline.yaml"] = [] { return PipelineConfig{}; };  // Table 3 baseline: no oversampling, no aug
  for (int k : {2, 3, 4}) {  // Table 3
    m["paper/oversample_" + std::to_string(k) + "x.yaml"] = [k] {
      PipelineConfig c;
      c.sampler.oversample = k;
      c.sampler.aug_mode = "none";
      return c;
    };
  }
  m["paper/aug.yaml"] = [] {  // Table 4 "aug": replace
    PipelineConfig c;
    c.sampler.aug_mode = "replace";
    return c;
  };
  m["paper/aug_oversample_2x.yaml"] = [] {  // Table 4 "aug+oversample 2x"
    PipelineConfig c;
    c.sampler.aug_mode = "aug_oversample";
    return c;
  };
  m["paper/original_aug.yaml"] = original_aug;  // Table 4 "original+aug", Table 8 row 1
  for (int k = 1; k <= 5; ++k) {
    m["paper/one_object_" + std::to_string(k) + "x.yaml"] = [k] {  // Table 5
      PipelineConfig c = original_aug();
      c.augment.strategy = "one";
      c.augment.copies = k;
      return c;
    };
    m["paper/several_objects_" + std::to_string(k) + "x.yaml"] = [k] {  // Table 6
      PipelineConfig c = original_aug();
      c.augment.strategy = "several";
      c.augment.num_objects = 2;
      c.augment.copies = k;
      return c;
    };
  }
  for (int k = 1; k <= 3; ++k) {
    m["paper/all_objects_" + std::to_string(k) + "x.yaml"] = [k] {  // Table 7
      PipelineConfig c = original_aug();
      c.augment.strategy = "all";
      c.augment.copies = k;
      return c;
    };
  }
  m["paper/overlapping.yaml"] = [] {  // Table 8 "overlapping"
    PipelineConfig c = original_aug();
    c.augment.placement.allow_overlap = true;
    return c;
  };
  for (int k : {3, 5}) {
    m["paper/blur_" + std::to_string(k) + ".yaml"] = [k] {  // Table 8 "blur k"
      PipelineConfig c = original_aug();
      c.augment.composite.blur_kernel = k;
      return c;
    };
  }
  return m;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

TEST(PipelineConfigFiles, EveryShippedConfigHasExpectationsAndTheSetIsComplete) {
  const auto files = config_files();
  const auto expect = expectations();
  std::set<std::string> expected_names;
  for (const auto& [name, f] : expect) expected_names.insert(name);
  EXPECT_EQ(files, expected_names);
  EXPECT_EQ(files.size(), 2u + 3u + 3u + 5u + 5u + 3u + 3u);  // base, baseline + Tables 3..8 rows
}

TEST(PipelineConfigFiles, EveryFileResolvesToItsTableRow) {
  const auto expect = expectations();
  for (const std::string& name : config_files()) {
    SCOPED_TRACE(name);
    const PipelineConfig got = load_pipeline_config(kConfigs + "/" + name);
    auto it = expect.find(name);
    ASSERT_NE(it, expect.end());
    const PipelineConfig want = it->second();
    EXPECT_EQ(config::config_diff(want, got), std::vector<std::string>{}) << "differing keys: "
                                                                          << join(config::config_diff(want, got));
  }
}

TEST(PipelineConfigFiles, KeyValuesOfTheTableRows) {
  // The same facts stated key by key, independent of the expectation table.
  auto load = [](const std::string& name) { return load_pipeline_config(kConfigs + "/paper/" + name); };
  EXPECT_EQ(load("baseline.yaml").sampler.oversample, 1.0);
  EXPECT_EQ(load("baseline.yaml").sampler.aug_mode, "none");
  EXPECT_EQ(load("oversample_3x.yaml").sampler.oversample, 3.0);
  EXPECT_EQ(load("oversample_3x.yaml").sampler.aug_mode, "none");
  EXPECT_EQ(load("oversample_4x.yaml").sampler.oversample, 4.0);
  EXPECT_EQ(load("aug.yaml").sampler.aug_mode, "replace");
  EXPECT_EQ(load("aug_oversample_2x.yaml").sampler.aug_mode, "aug_oversample");
  const PipelineConfig oa = load("original_aug.yaml");
  EXPECT_EQ(oa.sampler.aug_mode, "original_aug");
  EXPECT_EQ(oa.sampler.aug_probability, 0.5);
  EXPECT_EQ(oa.augment.strategy, "all");
  EXPECT_EQ(oa.augment.copies, 1);
  EXPECT_FALSE(oa.augment.placement.allow_overlap);
  EXPECT_EQ(oa.augment.composite.blur_kernel, 0);
  EXPECT_EQ(oa.augment.transform.scale, 0.2);      // sec. 4: +-20 %
  EXPECT_EQ(oa.augment.transform.rotation, 15.0);  // sec. 4: +-15 degrees
  EXPECT_EQ(oa.augment.placement.border, 5);       // sec. 4: five pixels from the boundaries
  EXPECT_EQ(oa.augment.extract.size_classes, std::vector<std::string>{"small"});
  EXPECT_EQ(load("one_object_4x.yaml").augment.strategy, "one");
  EXPECT_EQ(load("one_object_4x.yaml").augment.copies, 4);
  EXPECT_EQ(load("one_object_4x.yaml").sampler.aug_mode, "original_aug");
  EXPECT_EQ(load("several_objects_3x.yaml").augment.strategy, "several");
  EXPECT_EQ(load("several_objects_3x.yaml").augment.copies, 3);
  EXPECT_EQ(load("all_objects_2x.yaml").augment.strategy, "all");
  EXPECT_EQ(load("all_objects_2x.yaml").augment.copies, 2);
  EXPECT_TRUE(load("overlapping.yaml").augment.placement.allow_overlap);
  EXPECT_EQ(load("overlapping.yaml").sampler.aug_mode, "original_aug");
  EXPECT_EQ(load("blur_3.yaml").augment.composite.blur_kernel, 3);
  EXPECT_EQ(load("blur_5.yaml").augment.composite.blur_kernel, 5);
  EXPECT_EQ(load("blur_5.yaml").sampler.aug_mode, "original_aug");
}

// What the sampler does with each Table 3/4 setting, on two images: one
// with a small object, one with only a large one (offline materialisation,
// the paper's copies): copies per image and how many of them are augmented.
TEST(PipelineConfigFiles, SamplerSettingsMeanWhatTheTablesSay) {
  std::vector<stages::ImageInfo> infos(2);
  infos[0].has_small = true;
  infos[1].has_large = true;
  struct Row {
    std::string file;
    size_t small_copies, small_augmented, large_copies;
  };
  const std::vector<Row> rows = {
      {"baseline.yaml", 1, 0, 1},          {"oversample_2x.yaml", 2, 0, 1}, {"oversample_3x.yaml", 3, 0, 1},
      {"oversample_4x.yaml", 4, 0, 1},     {"aug.yaml", 1, 1, 1},           {"aug_oversample_2x.yaml", 2, 2, 1},
      {"original_aug.yaml", 2, 1, 1},      {"one_object_3x.yaml", 2, 1, 1}, {"blur_5.yaml", 2, 1, 1},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.file);
    PipelineConfig c = load_pipeline_config(kConfigs + "/paper/" + row.file);
    c.derive();
    const stages::Sampler sampler(c.sampler, infos);
    size_t copies[2] = {0, 0}, augmented[2] = {0, 0};
    for (const auto& t : sampler.materialise_tickets(c.seed)) {
      ++copies[t.image_index];
      augmented[t.image_index] += t.augment ? 1 : 0;
    }
    EXPECT_EQ(copies[0], row.small_copies);
    EXPECT_EQ(augmented[0], row.small_augmented);
    EXPECT_EQ(copies[1], row.large_copies);
    EXPECT_EQ(augmented[1], 0u);  // images without small objects are never augmented
  }
}

// ------------------------------------------------------------- errors, overrides

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("pasteflow_cfgtest_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    std::ofstream(p) << text;
    return p.string();
  }
};

ConfigError load_error(const std::string& path, const std::vector<std::string>& overrides = {}) {
  try {
    load_pipeline_config(path, overrides);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for " << path;
  return ConfigError("none", "none");
}

TEST(PipelineConfigErrors, UnknownKeyNamesTheKeyPathAndTheFile) {
  TempDir dir;
  const std::string path = dir.write("typo.yaml", "_base_: " + kConfigs + "/paper/original_aug.yaml\n"
                                                  "augment:\n  placement:\n    bordr: 3\n");
  const ConfigError e = load_error(path);
  EXPECT_EQ(e.reason(), "unknown_key");
  EXPECT_EQ(e.where().key, "augment.placement.bordr");
  EXPECT_NE(e.where().file.find(path), std::string::npos) << e.where().file;
  EXPECT_NE(std::string(e.what()).find("bordr"), std::string::npos);
}

TEST(PipelineConfigErrors, ErrorInABaseFileNamesThatFile) {
  TempDir dir;
  const std::string base = dir.write("base_bad.yaml", "sampler:\n  aug_mode: sometimes\n");
  const std::string top = dir.write("top.yaml", "_base_: base_bad.yaml\nseed: 3\n");
  const ConfigError e = load_error(top);
  EXPECT_EQ(e.reason(), "bad_choice");
  EXPECT_EQ(e.where().key, "sampler.aug_mode");
  EXPECT_NE(e.where().file.find("base_bad.yaml"), std::string::npos) << e.where().file;
}

TEST(PipelineConfigErrors, StageChecksNameTheKeyAndTheFile) {
  // A value each key's own range allows but the stage refuses.
  const std::string path = kConfigs + "/paper/original_aug.yaml";
  ConfigError e = load_error(path, {"augment.composite.blur_kernel=4"});
  EXPECT_EQ(e.where().key, "augment.composite.blur_kernel");
  EXPECT_EQ(e.where().file, path);
  e = load_error(path, {"sampler.world_size=2", "sampler.rank=2"});
  EXPECT_EQ(e.where().key, "sampler.rank");
  e = load_error(path, {"batch.mean=[0.5, 0.5]"});
  EXPECT_EQ(e.where().key, "batch.mean");
  e = load_error(path, {"size.small_max_area=10000"});  // above medium_max_area
  EXPECT_EQ(e.where().key, "size.small_max_area");
  EXPECT_EQ(e.where().file, path);
}

TEST(PipelineConfigErrors, RunTimeFieldsAreNotKeys) {
  const std::string path = kConfigs + "/paper/original_aug.yaml";
  for (const char* key : {"augment.seed=3", "sampler.seed=3", "augment.composite.id_base=5",
                          "augment.composite.size_class.small_max_area=5"}) {
    SCOPED_TRACE(key);
    const ConfigError e = load_error(path, {key});
    EXPECT_EQ(e.reason(), "unknown_key");
  }
  const std::string dumped = config::dump_config(load_pipeline_config(path));
  EXPECT_EQ(dumped.find("id_base"), std::string::npos);
  EXPECT_EQ(dumped.find("size_class:"), std::string::npos);
  EXPECT_EQ(dumped.find("\n  seed"), std::string::npos);
  EXPECT_EQ(dumped.rfind("seed"), 0u);  // only the root seed
}

TEST(PipelineConfigOverrides, OverridesApplyAfterTheFiles) {
  const PipelineConfig c = load_pipeline_config(kConfigs + "/paper/one_object_2x.yaml",
                                                {"augment.copies=5", "seed=42", "sampler.aug_probability=0.25",
                                                 "augment.extract.size_classes=[small, medium]", "size.source=mask"});
  EXPECT_EQ(c.augment.strategy, "one");
  EXPECT_EQ(c.augment.copies, 5);
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.sampler.aug_probability, 0.25);
  EXPECT_EQ(c.augment.extract.size_classes, (std::vector<std::string>{"small", "medium"}));
  EXPECT_EQ(c.size.source, stages::AreaSource::kMaskArea);
  const ConfigError e = load_error(kConfigs + "/paper/one_object_2x.yaml", {"augment.copies=0"});
  EXPECT_EQ(e.reason(), "out_of_range");
  EXPECT_EQ(e.where().key, "augment.copies");
}

TEST(PipelineConfigDump, DumpReloadsToAnEqualConfigForEveryFile) {
  for (const std::string& name : config_files()) {
    SCOPED_TRACE(name);
    const PipelineConfig a = load_pipeline_config(kConfigs + "/" + name, {"seed=18446744073709551615",
                                                                           "augment.composite.blur_sigma=0.1"});
    const std::string text = config::dump_config(a);
    const PipelineConfig b = config::parse_config_string<PipelineConfig>(text, "<dump>");
    EXPECT_EQ(config::config_diff(a, b), std::vector<std::string>{});
    EXPECT_EQ(config::dump_config(b), text);
  }
}

TEST(PipelineConfigDerive, DeriveCopiesSeedAndSizeClassesAndTheLoaderSetsIdBase) {
  PipelineConfig c = load_pipeline_config(kConfigs + "/paper/original_aug.yaml", {"seed=9", "size.small_max_area=500"});
  c.derive();
  EXPECT_EQ(c.sampler.seed, 9u);
  EXPECT_EQ(c.augment.seed, 9u);
  EXPECT_EQ(c.augment.composite.size_class.small_max_area, 500.0);

  io::LoadOptions opts;
  opts.image_root = kSample + "/images";
  const io::CocoDataset ds = io::load_coco(kSample + "/annotations.json", opts);
  int64_t max_id = 0;
  std::set<int64_t> ids;
  for (const auto& a : ds.annotations) {
    max_id = std::max(max_id, a.id);
    ids.insert(a.id);
  }
  PipelineConfig lc = load_pipeline_config(kConfigs + "/paper/original_aug.yaml",
                                           {"loader.threads=2", "loader.max_epochs=1", "sampler.shuffle=false"});
  Loader loader(ds, lc, Output::kSamples);
  EXPECT_EQ(loader.config().augment.composite.id_base, max_id);
  size_t pasted = 0;
  while (auto s = loader.next_sample()) {
    for (const auto& inst : s->instances) {
      if (!inst.pasted) continue;
      ++pasted;
      EXPECT_GT(inst.id, max_id);
      EXPECT_TRUE(ids.insert(inst.id).second) << "duplicate id " << inst.id;
    }
  }
  EXPECT_GT(pasted, 0u);
}

}  // namespace
}  // namespace pasteflow::pipeline
