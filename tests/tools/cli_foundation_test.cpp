// The foundation subcommands end to end: the built program is run on the
// copied test data and its outputs are checked against the oracles.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "common/command.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

namespace fs = std::filesystem;
const std::string kData = PASTEFLOW_TEST_DATA;
const std::string kBin = PASTEFLOW_BIN;

pasteflow::testing::CommandResult run(const std::string& args) {
  return pasteflow::testing::run_command(kBin + " " + args, /*keep_stderr=*/false);
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("pasteflow_cli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Oracle: pycocotools 8c9bcc3 via shared/golden/coco_mini_val2017_masks.json.
TEST(CliRle, RewritesEverySegmentationAsPycocotoolsCompressedRle) {
  const fs::path dir = temp_dir("rle");
  const std::string out = (dir / "rle.json").string();
  const auto r = run("rle " + kData + "/coco_mini/instances_val2017.json -o " + out + " --threads 2");
  ASSERT_EQ(r.status, 0);

  simdjson::dom::parser golden_parser;
  simdjson::dom::element golden = golden_parser.load(kData + "/golden/coco_mini_val2017_masks.json");
  std::map<int64_t, std::string> expected;
  for (auto m : golden["masks"].get_array()) {
    expected[int64_t(m["id"])] = std::string(std::string_view(m["counts"]));
  }

  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(out);
  size_t checked = 0;
  for (auto a : doc["annotations"].get_array()) {
    auto seg = a["segmentation"];
    ASSERT_TRUE(seg.is_object());
    ASSERT_EQ(expected.at(int64_t(a["id"])), std::string(std::string_view(seg["counts"])));
    ++checked;
  }
  EXPECT_EQ(checked, expected.size());
  // Everything else is untouched: image extras survive, the file reloads.
  EXPECT_EQ(std::string(std::string_view(doc["images"].at(0)["coco_url"])).rfind("http://images.cocodataset.org/", 0), 0u);
  const auto before = pasteflow::io::load_coco(kData + "/coco_mini/instances_val2017.json");
  const auto after = pasteflow::io::load_coco(out);
  ASSERT_EQ(before.annotations.size(), after.annotations.size());
  for (size_t i = 0; i < before.annotations.size(); ++i) {
    EXPECT_EQ(before.annotations[i].area, after.annotations[i].area);
    EXPECT_EQ(before.annotations[i].bbox, after.annotations[i].bbox);
    EXPECT_EQ(after.annotations[i].seg_kind, pasteflow::io::SegmentationKind::kRleString);
  }
  fs::remove_all(dir);
}

TEST(CliRle, MissingInputFailsAndWritesNothing) {
  const fs::path dir = temp_dir("rle_bad");
  const std::string bad = (dir / "bad.json").string();
  std::ofstream(bad) << R"({"images":[{"id":1,"width":10,"height":10,"file_name":"a.jpg"}],)"
                     << R"("annotations":[{"id":1,"image_id":1,"category_id":1,"segmentation":[[1,2,3]]}],)"
                     << R"("categories":[{"id":1,"name":"x"}]})";
  const auto r = run("rle " + bad + " -o " + (dir / "out.json").string());
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(dir / "out.json"));
  EXPECT_FALSE(fs::exists(dir / "out.json.tmp"));
  fs::remove_all(dir);
}

// Oracle: torchvision 0.14.1 anchors via shared/golden/coco_mini_train2017_anchors.json.
TEST(CliStats, JsonTableMatchesTheOracleWithTheIssuesKeyNames) {
  const auto r = run("stats " + kData + "/coco_mini/instances_train2017.json --json");
  ASSERT_EQ(r.status, 0);
  simdjson::dom::parser p1, p2;
  simdjson::dom::element got = p1.parse(r.output);
  simdjson::dom::element want = p2.load(kData + "/golden/coco_mini_train2017_anchors.json");
  for (const char* cls : {"small", "medium", "large"}) {
    for (const char* key : {"object_count", "images", "total_object_area", "matched_anchors",
                            "average_matching_anchors", "average_max_iou"}) {
      const double g = double(got["table"][cls][key]);
      const double w = double(want["table"][cls][key]);
      EXPECT_NEAR(g, w, 1e-5) << cls << "." << key;
    }
  }
}

TEST(CliStats, PlotWritesAPng) {
  const fs::path dir = temp_dir("plot");
  const std::string png = (dir / "sizes.png").string();
  const auto r = run("stats " + kData + "/coco_mini/instances_val2017.json --plot " + png);
  ASSERT_EQ(r.status, 0);
  ASSERT_TRUE(fs::exists(png));
  std::ifstream f(png, std::ios::binary);
  char magic[8];
  f.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_NE(r.output.find("| small |"), std::string::npos);
  fs::remove_all(dir);
}

TEST(CliStats, BadPolicyIsAUsageError) {
  const auto r = run("stats " + kData + "/coco_mini/instances_val2017.json --on-error ignore");
  EXPECT_NE(r.status, 0);
}

// Oracle: pycocotools COCOeval semantics. One image holding 150 objects and
// 150 exact detections: with COCO's maxDets 100 only the 100 best-scored are
// kept, so recall stops at 100/150 and AP50 = 67/101 (recall thresholds
// 0..0.66 reached at precision 1); --max-dets 1,100,1000 keeps all 150 (AP50
// 1) while stats[0] stays at summarize()'s literal maxDets 100.
TEST(CliEvalMaxDets, AHugeImageWithMoreThan100ObjectsIsScoredWithAHigherLimit) {
  const fs::path dir = temp_dir("eval_maxdets");
  std::string gt = R"({"images":[{"id":1,"width":2000,"height":2000,"file_name":"huge.tif"}],)"
                   R"("categories":[{"id":1,"name":"nucleus"}],"annotations":[)";
  std::string res = "[";
  for (int i = 0; i < 150; ++i) {
    const int x = 10 + (i % 15) * 120, y = 10 + (i / 15) * 120;
    const std::string box = "[" + std::to_string(x) + "," + std::to_string(y) + ",20,20]";
    gt += std::string(i ? "," : "") + R"({"id":)" + std::to_string(i + 1) +
          R"(,"image_id":1,"category_id":1,"iscrowd":0,"area":400,"bbox":)" + box + "}";
    res += std::string(i ? "," : "") + R"({"image_id":1,"category_id":1,"score":)" +
           std::to_string(0.99 - i * 0.001) + R"(,"bbox":)" + box + "}";
  }
  gt += "]}";
  res += "]";
  const fs::path gt_path = dir / "gt.json", res_path = dir / "results.json";
  std::ofstream(gt_path) << gt;
  std::ofstream(res_path) << res;
  const std::string base = "eval --gt " + gt_path.string() + " --results " + res_path.string() + " --json";

  simdjson::dom::parser parser;
  const auto standard = run(base);
  ASSERT_EQ(standard.status, 0) << standard.output;
  simdjson::dom::element doc = parser.parse(standard.output);
  EXPECT_NEAR(double(doc["stats"].at(1)), 67.0 / 101.0, 1e-12);  // AP50 at maxDets 100
  EXPECT_NEAR(double(doc["stats"].at(8)), 100.0 / 150.0, 1e-12);  // AR100

  const auto raised = run(base + " --max-dets 1,100,1000");
  ASSERT_EQ(raised.status, 0) << raised.output;
  doc = parser.parse(raised.output);
  EXPECT_NEAR(double(doc["stats"].at(1)), 1.0, 1e-12);            // AP50 at maxDets 1000
  EXPECT_NEAR(double(doc["stats"].at(8)), 1.0, 1e-12);            // AR at the third limit
  EXPECT_NEAR(double(doc["stats"].at(0)), 67.0 / 101.0, 1e-12);  // summarize()'s literal 100
  EXPECT_EQ(int64_t(doc["max_dets"].at(2)), 1000);

  const auto text = run("eval --gt " + gt_path.string() + " --results " + res_path.string() +
                        " --max-dets 1,100,1000");
  ASSERT_EQ(text.status, 0);
  EXPECT_NE(text.output.find("maxDets=1000"), std::string::npos) << text.output;
  EXPECT_NE(run(base + " --max-dets 1,100").status, 0);  // three values
  EXPECT_NE(run(base + " --max-dets 0,10,100").status, 0);
  fs::remove_all(dir);
}

}  // namespace
