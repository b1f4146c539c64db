// pasteflow import masks end to end on real DSB 2018 folders
// (tests/data/dsb2018): the --json summary, the output against the mask
// files, identical bytes at any thread count, --split files, refusing to
// replace an existing output or an input, fail / skip on a corrupt mask;
// `stats` of the imported bundled sample with the DSB model's anchors.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "common/command.hpp"
#include "common/file.hpp"
#include "pasteflow/io/coco.hpp"

namespace fs = std::filesystem;
using namespace pasteflow;
using pasteflow::testing::read_file;
using pasteflow::testing::run_command;

namespace {

const std::string kClean = std::string(PASTEFLOW_TEST_DATA) + "/dsb2018/clean";

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("pasteflow_import_cli_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string bin() { return PASTEFLOW_BIN; }

size_t mask_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    n += e.path().parent_path().filename() == "masks" && e.path().extension() == ".png";
  }
  return n;
}

}  // namespace

TEST(ImportCli, WritesCocoWithOneAnnotationPerMaskFileAndTheSameBytesAtAnyThreadCount) {
  TempDir t("basic");
  const std::string out1 = (t.path / "one.json").string(), out2 = (t.path / "two.json").string();
  const auto r1 = run_command(bin() + " import masks " + kClean + " -o " + out1 + " --threads 1 --json", false);
  ASSERT_EQ(r1.status, 0) << r1.output;
  const auto r2 = run_command(bin() + " import masks " + kClean + " -o " + out2 + " --threads 2", false);
  ASSERT_EQ(r2.status, 0) << r2.output;
  EXPECT_EQ(read_file(out1), read_file(out2));
  const size_t n = mask_files(kClean);
  EXPECT_NE(r1.output.find("\"annotations\": " + std::to_string(n)), std::string::npos) << r1.output;
  EXPECT_NE(r1.output.find("\"layout\": \"instance-pngs\""), std::string::npos) << r1.output;
  EXPECT_NE(r1.output.find("\"skipped\": 0"), std::string::npos) << r1.output;
  io::LoadOptions lo;
  lo.image_root = kClean;
  const io::CocoDataset ds = io::load_coco(out1, lo);
  EXPECT_EQ(ds.images.size(), 3u);
  EXPECT_EQ(ds.annotations.size(), n);
  for (const auto& im : ds.images) EXPECT_TRUE(fs::exists(ds.image_path(im))) << ds.image_path(im);
  // Only the named file was created (the temporary is gone).
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(t.path)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"one.json", "two.json"}));
  // `stats` reads it.
  const auto s = run_command(bin() + " stats " + out1, false);
  EXPECT_EQ(s.status, 0) << s.output;
  EXPECT_NE(s.output.find(std::to_string(n) + " annotations"), std::string::npos) << s.output;
}

TEST(ImportCli, RefusesAnExistingOutputAndNeverReplacesAnInput) {
  TempDir t("refuse");
  const std::string out = (t.path / "a.json").string();
  std::ofstream(out) << "mine";
  const auto r = run_command(bin() + " import masks " + kClean + " -o " + out);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(out), "mine");
  // An input named as the output: refused even with --overwrite.
  fs::copy(kClean, t.path / "data", fs::copy_options::recursive);
  std::string mask;
  for (const auto& e : fs::recursive_directory_iterator(t.path / "data")) {
    if (e.path().extension() == ".png" && e.path().parent_path().filename() == "masks") mask = e.path().string();
  }
  const std::string before = read_file(mask);
  const auto r2 = run_command(bin() + " --log-level debug import masks " + (t.path / "data").string() + " -o " + mask +
                              " --overwrite");
  EXPECT_EQ(r2.status, 1) << r2.output;
  EXPECT_NE(r2.output.find("output_is_input"), std::string::npos) << r2.output;
  EXPECT_EQ(read_file(mask), before);
  // --overwrite replaces a previous output.
  const auto r3 = run_command(bin() + " import masks " + kClean + " -o " + out + " --overwrite");
  EXPECT_EQ(r3.status, 0) << r3.output;
  EXPECT_NE(read_file(out), "mine");
}

TEST(ImportCli, SplitWritesTrainAndValFilesPartitioningTheImages) {
  TempDir t("split");
  const std::string out = (t.path / "dsb.json").string();
  const auto r = run_command(
      bin() + " import masks " + kClean + " -o " + out + " --split val=0.34 --seed 5 --stratify-by modality --json",
      false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(out));
  const io::CocoDataset train = io::load_coco((t.path / "dsb_train.json").string());
  const io::CocoDataset val = io::load_coco((t.path / "dsb_val.json").string());
  // Strata: 2 fluorescence (round(0.68) = 1 to val), 1 colour (round(0.34) = 0).
  EXPECT_EQ(train.images.size(), 2u);
  EXPECT_EQ(val.images.size(), 1u);
  std::set<std::string> names;
  for (const auto* ds : {&train, &val}) {
    for (const auto& im : ds->images) names.insert(std::string(ds->file_name(im)));
  }
  EXPECT_EQ(names.size(), 3u);
  EXPECT_EQ(train.annotations.size() + val.annotations.size(), mask_files(kClean));
  EXPECT_NE(r.output.find("\"val_images\": 1"), std::string::npos) << r.output;
  // The same seed again: the same files.
  TempDir t2("split2");
  const auto r2 = run_command(bin() + " import masks " + kClean + " -o " + (t2.path / "dsb.json").string() +
                                  " --split val=0.34 --seed 5 --stratify-by modality --threads 1",
                              false);
  ASSERT_EQ(r2.status, 0);
  EXPECT_EQ(read_file(t.path / "dsb_val.json"), read_file(t2.path / "dsb_val.json"));
  const auto bad = run_command(bin() + " import masks " + kClean + " -o " + out + " --split 0.2");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("val=FRACTION"), std::string::npos) << bad.output;
}

TEST(ImportCli, CorruptMaskFailsNamingTheFileOrIsSkippedAndCounted) {
  TempDir t("corrupt");
  fs::copy(kClean, t.path / "data", fs::copy_options::recursive);
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(t.path / "data")) {
    if (e.path().extension() == ".png" && e.path().parent_path().filename() == "masks") victim = e.path().string();
  }
  const std::string bytes = read_file(victim);
  std::ofstream(victim, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  const std::string out = (t.path / "out.json").string();
  const auto fail = run_command(bin() + " import masks " + (t.path / "data").string() + " -o " + out);
  EXPECT_EQ(fail.status, 1) << fail.output;
  EXPECT_NE(fail.output.find(fs::path(victim).filename().string()), std::string::npos) << fail.output;
  EXPECT_FALSE(fs::exists(out));
  const auto skip = run_command(
      bin() + " import masks " + (t.path / "data").string() + " -o " + out + " --on-error skip --json", false);
  ASSERT_EQ(skip.status, 0) << skip.output;
  EXPECT_NE(skip.output.find("\"corrupt_image\": 1"), std::string::npos) << skip.output;
  EXPECT_NE(skip.output.find("\"images\": 2"), std::string::npos) << skip.output;
  EXPECT_EQ(io::load_coco(out).images.size(), 2u);
}

TEST(ImportCli, ValueMapIsForLabelImagesAndCheckedBeforeWriting) {
  TempDir t("valuemap");
  const std::string out = (t.path / "o.json").string();
  const auto r = run_command(bin() + " import masks " + kClean + " -o " + out + " --value-map 1-9=a");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("label images only"), std::string::npos) << r.output;
  const auto r2 = run_command(bin() + " import masks " + kClean + " -o " + out +
                              " --layout label-images --value-map 9-1=a");
  EXPECT_EQ(r2.status, 1) << r2.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(ImportCli, BundledDsbSampleImportsWithEveryMaskAndStatsReadsIt) {
  TempDir t("sample");
  const std::string sample = std::string(PASTEFLOW_SOURCE_DIR) + "/data/dsb_sample";
  const std::string out = (t.path / "dsb.json").string();
  const auto r = run_command(bin() + " import masks " + sample + " -o " + out + " --json", false);
  ASSERT_EQ(r.status, 0) << r.output;
  size_t folders = 0;
  for (const auto& e : fs::directory_iterator(sample)) folders += fs::is_directory(e.path() / "images");
  io::LoadOptions lo;
  lo.keep_extra_fields = true;
  const io::CocoDataset ds = io::load_coco(out, lo);
  EXPECT_EQ(ds.images.size(), folders);
  EXPECT_EQ(ds.annotations.size(), mask_files(sample));
  std::set<std::string> modalities;
  for (const auto& im : ds.images) {
    const std::string extra(ds.str(im.extra));
    const size_t at = extra.find("\"modality\":");
    ASSERT_NE(at, std::string::npos) << extra;
    modalities.insert(extra.substr(at));
  }
  // The sample mixes modalities as DSB does.
  EXPECT_GE(modalities.size(), 2u);
  EXPECT_NE(r.output.find("\"skipped\": 0"), std::string::npos) << r.output;
  const auto s = run_command(bin() + " stats " + out, false);
  EXPECT_EQ(s.status, 0) << s.output;

  // Table 2 for the model that is trained on it (configs/dsb/baseline.yaml:
  // shorter side 256, at most 384, anchors from 8 px) rather than
  // torchvision's 800 / 1333 and 32-512.
  const std::string model = " --min-size 256 --max-size 384 --anchor-sizes 8,16,32,64,128";
  const auto md = run_command(bin() + " stats " + out + model, false);
  ASSERT_EQ(md.status, 0) << md.output;
  EXPECT_NE(md.output.find("; anchors 8,16,32,64,128 after resizing to min_size 256 / max_size 384"),
            std::string::npos)
      << md.output;
  EXPECT_EQ(s.output.find("; anchors"), std::string::npos) << s.output;  // the default says nothing more
  simdjson::dom::parser parser;
  auto small_row = [&](const std::string& args, double* matching, double* iou) {
    const auto j = run_command(bin() + " stats " + out + args + " --json", false);
    ASSERT_EQ(j.status, 0) << j.output;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(j.output).get(doc), simdjson::SUCCESS) << j.output;
    *matching = double(doc["table"]["small"]["average_matching_anchors"]);
    *iou = double(doc["table"]["small"]["average_max_iou"]);
    if (args.empty()) {
      EXPECT_EQ(double(doc["definition"]["resize_min_size"]), 800.0);
      EXPECT_EQ(double(doc["definition"]["anchor_sizes"].at(0).at(0)), 32.0);
      return;
    }
    EXPECT_EQ(double(doc["definition"]["resize_min_size"]), 256.0);
    EXPECT_EQ(double(doc["definition"]["resize_max_size"]), 384.0);
    simdjson::dom::array levels = doc["definition"]["anchor_sizes"];
    std::vector<double> sizes;
    for (simdjson::dom::element level : levels) sizes.push_back(double(level.at(0)));
    EXPECT_EQ(sizes, (std::vector<double>{8, 16, 32, 64, 128}));
  };
  double m_default = 0, iou_default = 0, m_model = 0, iou_model = 0;
  small_row("", &m_default, &iou_default);
  small_row(model, &m_model, &iou_model);
  EXPECT_GT(m_model, 0.0);
  EXPECT_GT(iou_model, 0.0);
  EXPECT_LE(iou_model, 1.0);
  EXPECT_NE(m_model, m_default);  // the columns follow the model

  // Five levels (P2..P6), positive sizes: anything else is refused by name.
  for (const std::string bad : {" --anchor-sizes 8,16,32", " --anchor-sizes 8,16,32,64,-1", " --min-size 0"}) {
    const auto r2 = run_command(bin() + " stats " + out + bad, true);
    EXPECT_NE(r2.status, 0) << bad;
    EXPECT_NE(r2.output.find(bad.substr(1, bad.find(' ', 1) - 1)), std::string::npos) << bad << ": " << r2.output;
  }
}
