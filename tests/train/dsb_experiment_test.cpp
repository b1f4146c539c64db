// The DSB experiment files (configs/dsb/, issue 12): every shipped file
// plans without errors and each row changes what its label says; the
// command's --dry-run on them; and oversample_by count on real nuclei
// (the bundled data/dsb_sample imported in the test). No ../shared data.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "common/command.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/io/select.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/stages/sampler.hpp"
#include "pasteflow/train/experiment.hpp"
#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

using testing_util::kSource;
using testing_util::kBin;
const std::string kDsbSample = kSource + "/data/dsb_sample";

std::vector<std::string> sample_overrides(const std::string& annotations) {
  return {"data.train_annotations=" + annotations, "data.val_annotations=" + annotations,
          "data.train_images=" + kDsbSample, "data.val_images=" + kDsbSample};
}

TEST(DsbExperimentFiles, EveryShippedExperimentPlansWithItsRows) {
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(kSource + "/configs/dsb")) {
    if (entry.path().stem().string().rfind("table", 0) == 0) files.insert(entry.path().string());
  }
  ASSERT_TRUE(files.count(kSource + "/configs/dsb/table_full.yaml"));
  ASSERT_TRUE(files.count(kSource + "/configs/dsb/table_low.yaml"));
  TempDir dir;
  for (const std::string& file : files) {
    ExperimentConfig e = load_experiment(file);
    e.output_dir = dir.str("out");
    const bool low = file.find("table_low") != std::string::npos;
    const ExperimentPlan plan = plan_experiment(e, sample_overrides(kDsbSample + "/absent.json"));
    EXPECT_TRUE(plan.seeded) << file;
    EXPECT_EQ(e.seeds, (std::vector<uint64_t>{1, 2, 3})) << file;
    ASSERT_EQ(plan.runs.size(), 18u) << file;  // 6 rows x 3 seeds
    std::set<std::string> rows;
    for (const PlannedRun& r : plan.runs) {
      rows.insert(r.spec.name);
      EXPECT_EQ(r.state, RunState::kNew) << r.id;
      EXPECT_EQ(r.config.pipeline.seed, *r.seed) << r.id;
      EXPECT_EQ(r.config.solver.max_iter, 200u) << r.id;
      EXPECT_EQ(r.config.data.train_fraction, low ? 0.15 : 1.0) << r.id;
      EXPECT_EQ(r.config.data.train_fraction_seed, low ? 1u : 0u) << r.id;
      for (const std::string& key : r.differs) {
        EXPECT_TRUE(key.rfind("pipeline.sampler.", 0) == 0 || key.rfind("pipeline.augment.", 0) == 0)
            << r.id << ": " << key;
      }
      const auto& s = r.config.pipeline.sampler;
      const auto& a = r.config.pipeline.augment;
      const std::string& n = r.spec.name;
      if (n == "baseline") {
        EXPECT_EQ(s.aug_mode, "none");
        EXPECT_EQ(s.oversample, 1.0);
      } else if (n == "oversample_2x") {
        EXPECT_EQ(s.oversample, 2.0);
        EXPECT_EQ(s.oversample_by, "presence");
        EXPECT_EQ(s.aug_mode, "none");
      } else if (n == "oversample_count_2x") {
        EXPECT_EQ(s.oversample, 2.0);
        EXPECT_EQ(s.oversample_by, "count");
        EXPECT_EQ(s.aug_mode, "none");
      } else if (n == "several_2x") {
        EXPECT_EQ(s.aug_mode, "original_aug");
        EXPECT_EQ(a.strategy, "several");
        EXPECT_EQ(a.copies, 2);
      } else if (n == "all_1x") {
        EXPECT_EQ(s.aug_mode, "original_aug");
        EXPECT_EQ(a.strategy, "all");
        EXPECT_EQ(a.copies, 1);
      } else if (n == "count3_several_2x") {
        EXPECT_EQ(s.oversample, 3.0);
        EXPECT_EQ(s.oversample_by, "count");
        EXPECT_EQ(s.aug_mode, "original_aug");
        EXPECT_EQ(a.strategy, "several");
      } else {
        ADD_FAILURE() << "unexpected row " << n << " in " << file;
      }
    }
    EXPECT_EQ(rows.size(), 6u) << file;
  }
}

TEST(DsbExperimentFiles, DryRunOnTheBundledSample) {
  using pasteflow::testing::run_command;
  TempDir dir;
  // The data the files expect, made from the bundled sample as the preparation command does.
  auto r = run_command(kBin + " import masks " + kDsbSample + " -o " + dir.str("dsb.json") +
                       " --split val=0.25 --seed 1 --stratify-by modality");
  ASSERT_EQ(r.status, 0) << r.output;
  std::string overrides;
  for (const std::string& o : sample_overrides(dir.str("dsb_train.json"))) overrides += " " + o;
  for (const char* file : {"table_full.yaml", "table_low.yaml"}) {
    r = run_command(kBin + " experiment " + kSource + "/configs/dsb/" + file + " -o " + dir.str(file) + overrides +
                        " data.val_annotations=" + dir.str("dsb_val.json") + " --dry-run --json",
                    false);
    ASSERT_EQ(r.status, 0) << file << ": " << r.output;
    EXPECT_NE(r.output.find("\"id\": \"count3_several_2x/seed_3\""), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("pipeline.sampler.oversample_by"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir.str(file) + "/baseline"));  // a dry run trains nothing
  }

  // oversample_by count on real nuclei (the low-data share of the imported
  // sample): the mean repeat factor equals presence's, and the image with
  // the most small nuclei is repeated the most.
  const TrainConfig t = load_train_config(kSource + "/configs/dsb/train.yaml",
                                          {"data.train_annotations=" + dir.str("dsb_train.json")});
  io::CocoDataset ds = io::load_coco(dir.str("dsb_train.json"));
  ASSERT_EQ(ds.images.size(), 30u);
  ds = io::keep_images(ds, io::fraction_indices(ds, 0.5, 1));
  ASSERT_EQ(ds.images.size(), 15u);
  const std::vector<stages::ImageInfo> infos = pipeline::image_infos(ds, t.pipeline.size);
  stages::SamplerConfig c;
  c.oversample = 2;
  c.oversample_by = "count";
  const stages::Sampler by_count(c, infos);
  c.oversample_by = "presence";
  const stages::Sampler by_presence(c, infos);
  double sum_count = 0, sum_presence = 0, top = 0;
  size_t most = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    sum_count += by_count.repeat_factor(i);
    sum_presence += by_presence.repeat_factor(i);
    if (infos[i].num_small > infos[most].num_small) most = i;
    top = std::max(top, by_count.repeat_factor(i));
  }
  EXPECT_NEAR(sum_count, sum_presence, 1e-9);
  EXPECT_EQ(by_count.repeat_factor(most), top);
  EXPECT_GT(top, 2.0);  // crowded images get more than presence's 2
}

}  // namespace
}  // namespace pasteflow::train
