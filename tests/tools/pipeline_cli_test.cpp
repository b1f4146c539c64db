// The pipeline subcommands end to end (augment, preview, config): the built
// program is run on the bundled sample (data/sample) and its outputs are
// reloaded and checked with the library (io::load_coco, the mask codec).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/command.hpp"
#include "pasteflow/config/config.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "common/file.hpp"

namespace {

using pasteflow::testing::read_file;

namespace fs = std::filesystem;
using pasteflow::io::CocoDataset;
const std::string kBin = PASTEFLOW_BIN;
const std::string kSample = PASTEFLOW_SAMPLE_DATA;
const std::string kSource = PASTEFLOW_SOURCE_DIR;
const std::string kConfigs = kSource + "/configs/paper/";

struct CliRun {
  int status;
  std::string out;
};

CliRun run(const std::string& args) {
  const pasteflow::testing::CommandResult r = pasteflow::testing::run_command(kBin + " " + args, /*keep_stderr=*/false);
  return {r.status, r.output};
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("pasteflow_pcli_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

std::string augment_args(const std::string& config, const std::string& out, const std::string& more = "",
                         const std::string& annotations = kSample + "/annotations.json") {
  return "augment -c " + kConfigs + config + " -a " + annotations + " -i " + kSample + "/images -o " + out + " " +
         more;
}

CocoDataset load(const std::string& path) {
  pasteflow::io::LoadOptions opts;
  opts.keep_extra_fields = true;
  return pasteflow::io::load_coco(path, opts);
}

bool has_member(const CocoDataset& ds, pasteflow::io::StrRef extra, const std::string& member) {
  return std::string(ds.str(extra)).find(member) != std::string::npos;
}

/// The integer value of "key": in raw extras, or -1.
int64_t extra_int(const CocoDataset& ds, pasteflow::io::StrRef extra, const std::string& key) {
  const std::string text(ds.str(extra));
  const std::string k = "\"" + key + "\":";
  const size_t at = text.find(k);
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + k.size()));
}

/// The integer after "key": in the command's JSON summary, or -1.
int64_t json_int(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\": ";
  const size_t at = json.find(k);
  return at == std::string::npos ? -1 : std::stoll(json.substr(at + k.size()));
}

size_t files_in(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

// ------------------------------------------------------------------ augment

TEST(CliAugment, WritesAValidCocoDatasetWithExactPastedAnnotations) {
  TempDir dir("aug");
  const std::string out = dir.str() + "/out";
  const CliRun r = run(augment_args("original_aug.yaml", out, "--threads 2 --format png --json"));
  ASSERT_EQ(r.status, 0) << r.out;

  const CocoDataset in = load(kSample + "/annotations.json");
  const CocoDataset ds = load(out + "/annotations.json");
  int64_t max_in_ann = 0, max_in_image = 0;
  for (const auto& a : in.annotations) max_in_ann = std::max(max_in_ann, a.id);
  for (const auto& im : in.images) max_in_image = std::max(max_in_image, im.id);

  // Ids unique (load_coco refuses duplicates, checked again here).
  std::set<int64_t> ann_ids, image_ids;
  for (const auto& a : ds.annotations) EXPECT_TRUE(ann_ids.insert(a.id).second) << a.id;
  for (const auto& im : ds.images) EXPECT_TRUE(image_ids.insert(im.id).second) << im.id;

  // original_aug: every input image once as itself, plus one augmented copy
  // of each image with a small object (12 of the 16 in the sample).
  size_t originals = 0, copies = 0;
  for (const auto& im : ds.images) {
    const int64_t src = extra_int(ds, im.extra, "source_image_id");
    if (src < 0) {
      ++originals;
      const int64_t k = in.image_index(im.id);
      ASSERT_GE(k, 0);
      EXPECT_EQ(ds.file_name(im), in.file_name(in.images[static_cast<size_t>(k)]));
    } else {
      ++copies;
      EXPECT_GT(im.id, max_in_image);
      EXPECT_GE(in.image_index(src), 0);
      EXPECT_NE(std::string(ds.file_name(im)).find("_pf"), std::string::npos);
    }
    // The file exists and decodes to the annotated size.
    const cv::Mat px = cv::imread(out + "/images/" + std::string(ds.file_name(im)),
                                  cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
    ASSERT_FALSE(px.empty()) << ds.file_name(im);
    EXPECT_EQ(px.cols, im.width);
    EXPECT_EQ(px.rows, im.height);
  }
  EXPECT_EQ(originals, in.images.size());
  EXPECT_EQ(copies, 12u);

  // Pasted annotations: flagged, compressed RLE whose decoded mask gives
  // exactly the area and bbox fields; new ids above the input's.
  size_t pasted = 0;
  for (const auto& a : ds.annotations) {
    if (!has_member(ds, a.extra, "\"pasted\":true")) continue;
    ++pasted;
    EXPECT_GT(a.id, max_in_ann);
    ASSERT_EQ(a.seg_kind, pasteflow::io::SegmentationKind::kRleString);
    const pasteflow::mask::Rle m = pasteflow::mask::from_string(ds.rle_string(a), a.rle_height, a.rle_width);
    const auto& im = ds.images[a.image_index];
    EXPECT_EQ(m.h, static_cast<uint32_t>(im.height));
    EXPECT_EQ(m.w, static_cast<uint32_t>(im.width));
    EXPECT_GT(pasteflow::mask::area(m), 0u);
    EXPECT_EQ(a.area, static_cast<double>(pasteflow::mask::area(m)));
    EXPECT_EQ(a.bbox, pasteflow::mask::bbox(m));
    EXPECT_TRUE(a.has_iscrowd);
    EXPECT_EQ(a.iscrowd, 0);
    // Its source is an annotation of the image it was copied from, same category.
    const int64_t src = extra_int(ds, a.extra, "source_id");
    ASSERT_GE(src, 0);
    bool found = false;
    const int64_t src_image = extra_int(ds, im.extra, "source_image_id");
    for (const auto& b : in.annotations) {
      if (b.id == src) {
        found = true;
        EXPECT_EQ(b.image_id, src_image);
        EXPECT_EQ(b.category_id, a.category_id);
      }
    }
    EXPECT_TRUE(found) << "source_id " << src;
    EXPECT_NE(extra_int(ds, im.extra, "source_image_id"), -1) << "pasted object on an original image";
  }
  EXPECT_GT(pasted, 0u);

  // Original images keep their annotation records unchanged (extras too).
  for (const auto& a : in.annotations) {
    bool found = false;
    for (const auto& b : ds.annotations) {
      if (b.id != a.id) continue;
      found = true;
      EXPECT_EQ(b.image_id, a.image_id);
      EXPECT_EQ(b.area, a.area);
      EXPECT_EQ(b.bbox, a.bbox);
      EXPECT_EQ(b.seg_kind, a.seg_kind);
      EXPECT_EQ(ds.str(b.extra), in.str(a.extra));
    }
    EXPECT_TRUE(found) << a.id;
  }

  // Lossless output: an augmented image equals its source everywhere except
  // under the pasted masks (the composite writes only mask pixels).
  const auto& aug = *std::find_if(ds.images.begin(), ds.images.end(),
                                  [&](const auto& im) { return extra_int(ds, im.extra, "source_image_id") >= 0; });
  const auto& src = in.images[static_cast<size_t>(in.image_index(extra_int(ds, aug.extra, "source_image_id")))];
  const cv::Mat a_px = cv::imread(out + "/images/" + std::string(ds.file_name(aug)), cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  const cv::Mat s_px = cv::imread(kSample + "/images/" + std::string(in.file_name(src)), cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  cv::Mat pasted_union = cv::Mat::zeros(aug.height, aug.width, CV_8U);
  size_t on_image = 0;
  for (const uint32_t k : ds.annotations_of(static_cast<size_t>(ds.image_index(aug.id)))) {
    const auto& a = ds.annotations[k];
    if (!has_member(ds, a.extra, "\"pasted\":true")) continue;
    ++on_image;
    cv::Mat m(aug.height, aug.width, CV_8U);
    pasteflow::mask::decode_into(pasteflow::mask::from_string(ds.rle_string(a), a.rle_height, a.rle_width), m.data, m.step[0]);
    pasted_union |= m;
  }
  ASSERT_GT(on_image, 0u);
  cv::Mat diff;
  cv::absdiff(a_px, s_px, diff);
  cv::Mat changed;
  cv::cvtColor(diff, changed, cv::COLOR_BGR2GRAY);
  changed = changed > 0;
  EXPECT_EQ(cv::countNonZero(changed & (pasted_union == 0)), 0);
  EXPECT_GT(cv::countNonZero(changed), 0);
}

TEST(CliAugment, OutputDoesNotDependOnThreads) {
  TempDir dir("det");
  ASSERT_EQ(run(augment_args("one_object_2x.yaml", dir.str() + "/t1", "--threads 1 --seed 5 --format png")).status, 0);
  ASSERT_EQ(run(augment_args("one_object_2x.yaml", dir.str() + "/t2", "--threads 2 --seed 5 --format png")).status, 0);
  EXPECT_EQ(read_file(dir.path / "t1/annotations.json"), read_file(dir.path / "t2/annotations.json"));
  for (const auto& e : fs::directory_iterator(dir.path / "t1/images")) {
    EXPECT_EQ(read_file(e.path()), read_file(dir.path / "t2/images" / e.path().filename())) << e.path();
  }
  // A different seed pastes differently.
  ASSERT_EQ(run(augment_args("one_object_2x.yaml", dir.str() + "/t3", "--threads 2 --seed 6 --format png")).status, 0);
  EXPECT_NE(read_file(dir.path / "t1/annotations.json"), read_file(dir.path / "t3/annotations.json"));
}

TEST(CliAugment, OversamplingCopiesAndRepeatsAreNewImagesWithCopiedBytes) {
  TempDir dir("over");
  const std::string out = dir.str() + "/out";
  ASSERT_EQ(run(augment_args("oversample_2x.yaml", out, "--copies 2 --threads 2")).status, 0);
  const CocoDataset in = load(kSample + "/annotations.json");
  const CocoDataset ds = load(out + "/annotations.json");
  // 12 images with small objects x 2 + 4 without, the whole list twice.
  EXPECT_EQ(ds.images.size(), 2u * (12u * 2u + 4u));
  std::set<int64_t> ids;
  for (const auto& a : ds.annotations) EXPECT_TRUE(ids.insert(a.id).second);
  for (const auto& a : ds.annotations) EXPECT_FALSE(has_member(ds, a.extra, "\"pasted\"")) << "no augmentation";
  // Unchanged copies are the original file's bytes; their annotations are
  // the source records with new ids and a source_id.
  for (const auto& im : ds.images) {
    const int64_t src = extra_int(ds, im.extra, "source_image_id");
    if (src < 0) continue;
    const auto& s = in.images[static_cast<size_t>(in.image_index(src))];
    EXPECT_EQ(read_file(out + "/images/" + std::string(ds.file_name(im))),
              read_file(kSample + "/images/" + std::string(in.file_name(s))));
    const auto mine = ds.annotations_of(static_cast<size_t>(ds.image_index(im.id)));
    const auto theirs = in.annotations_of(static_cast<size_t>(in.image_index(src)));
    ASSERT_EQ(mine.size(), theirs.size());
    for (size_t k = 0; k < mine.size(); ++k) {
      const auto& a = ds.annotations[mine[k]];
      const auto& b = in.annotations[theirs[k]];
      EXPECT_EQ(extra_int(ds, a.extra, "source_id"), b.id);
      EXPECT_NE(a.id, b.id);
      EXPECT_EQ(a.bbox, b.bbox);
      EXPECT_EQ(a.area, b.area);
    }
  }
}

TEST(CliAugment, OverlappingPastesTrimOccludedObjectsConsistently) {
  TempDir dir("overlap");
  const std::string out = dir.str() + "/out";
  const CliRun r = run(augment_args("overlapping.yaml", out, "--threads 2 --json augment.copies=4"));
  ASSERT_EQ(r.status, 0);
  const CocoDataset ds = load(out + "/annotations.json");
  // Every RLE annotation (pasted or trimmed) is self-consistent.
  size_t rle = 0;
  for (const auto& a : ds.annotations) {
    if (a.seg_kind != pasteflow::io::SegmentationKind::kRleString) continue;
    ++rle;
    const pasteflow::mask::Rle m = pasteflow::mask::from_string(ds.rle_string(a), a.rle_height, a.rle_width);
    EXPECT_EQ(a.area, static_cast<double>(pasteflow::mask::area(m)));
    EXPECT_EQ(a.bbox, pasteflow::mask::bbox(m));
  }
  EXPECT_GT(rle, 0u);
  // Objects were actually trimmed (their remaining mask written as RLE): 4
  // overlapping pastes per small object in 12 images always cover some.
  EXPECT_GT(json_int(r.out, "trimmed"), 0) << r.out;
  EXPECT_GT(json_int(r.out, "pasted"), 0) << r.out;
}

TEST(CliAugment, FailedRunLeavesNothingHalfWritten) {
  TempDir dir("fail");
  // A copy of the sample where the file of an image without small objects
  // (so with exactly one copy under original_aug) is missing.
  CocoDataset bad = load(kSample + "/annotations.json");
  size_t victim = bad.images.size();
  for (size_t i = 0; i < bad.images.size() && victim == bad.images.size(); ++i) {
    bool small = false;
    for (const uint32_t k : bad.annotations_of(i)) small = small || bad.annotations[k].area < 32 * 32;
    if (!small) victim = i;
  }
  ASSERT_LT(victim, bad.images.size());
  bad.images[victim].file_name = bad.add_string("does_not_exist.jpg");
  const std::string bad_json = dir.str() + "/bad.json";
  pasteflow::io::write_coco(bad, bad_json);

  const std::string out = dir.str() + "/strict";
  const CliRun r = run(augment_args("original_aug.yaml", out, "--threads 2", bad_json));
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(out + "/annotations.json"));
  EXPECT_EQ(files_in(out), 0u) << "images of a failed run are removed, no temporary files stay";

  // Under loader.on_error=skip the bad image is skipped and counted.
  const std::string skip = dir.str() + "/skip";
  const CliRun s = run(augment_args("original_aug.yaml", skip, "--threads 2 --json loader.on_error=skip", bad_json));
  ASSERT_EQ(s.status, 0);
  EXPECT_EQ(json_int(s.out, "skipped_samples"), 1) << s.out;
  EXPECT_NE(s.out.find("missing_image"), std::string::npos) << s.out;
  const CocoDataset ds = load(skip + "/annotations.json");
  EXPECT_LT(ds.image_index(bad.images[victim].id), 0);
  EXPECT_EQ(ds.images.size(), 16u + 12u - 1u);
  for (const auto& im : ds.images) EXPECT_TRUE(fs::exists(skip + "/images/" + std::string(ds.file_name(im))));
}

TEST(CliAugment, RefusesToReplaceAnExistingOutputUnlessAsked) {
  TempDir dir("exists");
  // An annotations.json pasteflow did not write is never replaced.
  const std::string theirs = dir.str() + "/theirs";
  fs::create_directories(theirs);
  { std::ofstream(theirs + "/annotations.json") << "keep me"; }
  EXPECT_NE(run(augment_args("baseline.yaml", theirs)).status, 0);
  EXPECT_NE(run(augment_args("baseline.yaml", theirs, "--overwrite")).status, 0);
  EXPECT_EQ(read_file(theirs + "/annotations.json"), "keep me");
  EXPECT_EQ(files_in(theirs), 1u);
  // A previous run's output: replaced with --overwrite only.
  const std::string out = dir.str() + "/out";
  ASSERT_EQ(run(augment_args("baseline.yaml", out)).status, 0);
  EXPECT_NE(run(augment_args("baseline.yaml", out)).status, 0);
  EXPECT_EQ(run(augment_args("baseline.yaml", out, "--overwrite")).status, 0);
  EXPECT_EQ(load(out + "/annotations.json").images.size(), 16u);
}

TEST(CliAugment, BadConfigFailsBeforeWritingAnything) {
  TempDir dir("badcfg");
  const std::string out = dir.str() + "/out";
  EXPECT_NE(run(augment_args("baseline.yaml", out, "augment.placement.bordr=3")).status, 0);
  EXPECT_EQ(files_in(out), 0u);
}

TEST(CliAugment, TrainingConfigGivesItsPipelineSection) {
  // The same pipeline settings as a pipeline config and as the `pipeline`
  // section of a training config augment identically; overrides are
  // relative to the section; a wrong key names its full path.
  TempDir dir("traincfg");
  const std::string section = "seed: 3\nsampler:\n  aug_mode: original_aug\naugment:\n  strategy: several\n"
                              "  num_objects: 2\n  copies: 2\n";
  std::string indented;
  std::istringstream lines(section);
  for (std::string line; std::getline(lines, line);) indented += "  " + line + "\n";
  {
    std::ofstream(dir.path / "pipe.yaml") << section;
    std::ofstream(dir.path / "train.yaml") << "data:\n  train_annotations: " << kSample << "/annotations.json\n"
                                           << "  train_images: " << kSample << "/images\npipeline:\n"
                                           << indented << "solver:\n  max_iter: 10\n";
  }
  auto augment = [&](const std::string& config, const std::string& out, const std::string& more) {
    return run("augment -c " + dir.str() + "/" + config + " -a " + kSample + "/annotations.json -i " + kSample +
               "/images -o " + dir.str() + "/" + out + " --format png " + more);
  };
  ASSERT_EQ(augment("pipe.yaml", "a", "augment.copies=3").status, 0);
  ASSERT_EQ(augment("train.yaml", "b", "augment.copies=3").status, 0);
  EXPECT_EQ(read_file(dir.path / "a/annotations.json"), read_file(dir.path / "b/annotations.json"));
  ASSERT_EQ(augment("train.yaml", "c", "").status, 0);
  EXPECT_NE(read_file(dir.path / "a/annotations.json"), read_file(dir.path / "c/annotations.json"));  // copies 2, not 3

  const auto bad = pasteflow::testing::run_command(kBin + " augment -c " + dir.str() + "/train.yaml -a " + kSample +
                                                  "/annotations.json -i " + kSample + "/images -o " + dir.str() +
                                                  "/d augment.copiez=3");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("pipeline.augment.copiez"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir.path / "d"));
}

// ------------------------------------------------------------------ augment: users' files

/// The two real images of tests/data/paste, as a dataset to edit.
const std::string kPaste = std::string(PASTEFLOW_TEST_DATA) + "/paste";

CocoDataset paste_dataset() { return load(kPaste + "/annotations.json"); }

std::string paste_file(size_t i) {
  const CocoDataset ds = paste_dataset();
  return kPaste + "/images/" + std::string(ds.file_name(ds.images[i]));
}

/// Writes `ds` and returns the augment arguments reading it from `images`.
std::string edited_args(const TempDir& dir, const CocoDataset& ds, const std::string& images, const std::string& out,
                        const std::string& config = "baseline.yaml", const std::string& more = "") {
  const std::string json = dir.str() + "/in.json";
  pasteflow::io::write_coco(ds, json);
  return "augment -c " + kConfigs + config + " -a " + json + " -i " + images + " -o " + out + " " + more;
}

/// Every path below `dir` (relative), except those below `except`.
std::set<std::string> paths_below(const fs::path& dir, const fs::path& except = {}) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!except.empty() && e.path().string().rfind(except.string(), 0) == 0) continue;
    out.insert(e.path().lexically_relative(dir).generic_string());
  }
  return out;
}

/// Every image annotations.json names exists and OUT/images holds nothing else.
void expect_consistent(const std::string& out) {
  const CocoDataset ds = load(out + "/annotations.json");
  std::set<std::string> named;
  for (const auto& im : ds.images) named.insert(std::string(ds.file_name(im)));
  std::set<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(out + "/images")) {
    if (e.is_regular_file()) files.insert(e.path().lexically_relative(out + "/images").generic_string());
  }
  EXPECT_EQ(files, named);
}

TEST(AugmentRegression, AbsoluteFileNameDoesNotOverwriteSource) {
  TempDir dir("absolute");
  const fs::path src = dir.path / "src";
  fs::create_directories(src);
  fs::copy_file(paste_file(0), src / "photo.jpg");
  const std::string bytes = read_file(src / "photo.jpg");
  CocoDataset ds = paste_dataset();
  ds.images[0].file_name = ds.add_string((src / "photo.jpg").string());
  const std::string second(ds.file_name(ds.images[1]));
  ds.images[1].file_name = ds.add_string("missing.jpg");
  const std::string out = dir.str() + "/out";
  // The run fails on the missing image; the source folder stays as it was.
  EXPECT_NE(run(edited_args(dir, ds, kPaste + "/images", out)).status, 0);
  EXPECT_EQ(paths_below(src), std::set<std::string>{"photo.jpg"});
  EXPECT_EQ(read_file(src / "photo.jpg"), bytes);
  EXPECT_FALSE(fs::exists(out));

  // With the second image there, the copy lands inside OUT/images under the
  // name the output's file_name says.
  ds.images[1].file_name = ds.add_string(second);
  ASSERT_EQ(run(edited_args(dir, ds, kPaste + "/images", out)).status, 0);
  EXPECT_EQ(read_file(src / "photo.jpg"), bytes);
  const CocoDataset got = load(out + "/annotations.json");
  const std::string name(got.file_name(got.images[static_cast<size_t>(got.image_index(ds.images[0].id))]));
  EXPECT_EQ(name, (src / "photo.jpg").relative_path().generic_string());
  EXPECT_EQ(read_file(out + "/images/" + name), bytes);
  expect_consistent(out);
}

TEST(AugmentRegression, DotDotFileNameStaysInsideOutImages) {
  TempDir dir("dotdot");
  const fs::path root = dir.path / "src/a/b";
  fs::create_directories(root);
  fs::copy_file(paste_file(0), dir.path / "src/x.jpg");
  fs::copy_file(paste_file(1), root / "y.jpg");
  CocoDataset ds = paste_dataset();
  ds.images[0].file_name = ds.add_string("../../x.jpg");
  ds.images[1].file_name = ds.add_string("y.jpg");
  const std::string out = dir.str() + "/work/out";
  fs::create_directories(dir.path / "work");
  const std::string args = edited_args(dir, ds, root.string(), out);
  const std::set<std::string> before = paths_below(dir.path);
  ASSERT_EQ(run(args).status, 0);
  // Nothing appeared outside OUT (OUT/images/../../x.jpg is work/x.jpg).
  EXPECT_EQ(paths_below(dir.path, out), before);
  const CocoDataset got = load(out + "/annotations.json");
  EXPECT_EQ(got.file_name(got.images[static_cast<size_t>(got.image_index(ds.images[0].id))]), "x.jpg");
  EXPECT_EQ(read_file(out + "/images/x.jpg"), read_file(dir.path / "src/x.jpg"));
  expect_consistent(out);
}

TEST(AugmentRegression, FileNamesThatCollideAfterSanitisingStayDistinct) {
  TempDir dir("collide");
  const fs::path root = dir.path / "src/r";
  fs::create_directories(root);
  fs::copy_file(paste_file(0), dir.path / "src/a.jpg");  // ../a.jpg
  fs::copy_file(paste_file(1), root / "a.jpg");           // a.jpg
  CocoDataset ds = paste_dataset();
  ds.images[0].file_name = ds.add_string("../a.jpg");
  ds.images[1].file_name = ds.add_string("a.jpg");
  const std::string out = dir.str() + "/out";
  ASSERT_EQ(run(edited_args(dir, ds, root.string(), out)).status, 0);
  const CocoDataset got = load(out + "/annotations.json");
  auto name_of = [&](int64_t id) { return std::string(got.file_name(got.images[static_cast<size_t>(got.image_index(id))])); };
  // The clean name keeps its file; the changed one gets the first free suffix.
  EXPECT_EQ(name_of(ds.images[1].id), "a.jpg");
  EXPECT_EQ(name_of(ds.images[0].id), "a_1.jpg");
  EXPECT_EQ(read_file(out + "/images/a.jpg"), read_file(root / "a.jpg"));
  EXPECT_EQ(read_file(out + "/images/a_1.jpg"), read_file(dir.path / "src/a.jpg"));
  expect_consistent(out);
}

TEST(AugmentRegression, IdsNearInt64MaxAreRefusedNotNegative) {
  TempDir dir("ids");
  const int64_t max = std::numeric_limits<int64_t>::max();
  for (const bool image : {true, false}) {
    CocoDataset ds = paste_dataset();
    if (image) {  // the image with small objects (it gets an augmented copy)
      for (auto& a : ds.annotations) a.image_id = a.image_id == ds.images[1].id ? max : a.image_id;
      ds.images[1].id = max;
    } else {
      ds.annotations[0].id = max;
    }
    const std::string out = dir.str() + "/out";
    const auto r = pasteflow::testing::run_command(kBin + " " +
                                                   edited_args(dir, ds, kPaste + "/images", out, "original_aug.yaml"));
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(dir.str() + "/in.json"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(std::string(image ? "image" : "annotation") + " id 9223372036854775807"),
              std::string::npos) << r.output;
    EXPECT_NE(r.output.find("ids must stay <= 9223372036854775807"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out));
  }
}

/// Starts augment on the two paste images, many copies (a minute or more of
/// work), waits until it has written an image into its staging directory,
/// sends it `signal` and returns its wait status (its stderr: long.log).
int signal_running_augment(const TempDir& dir, const std::string& out, int signal) {
  const pid_t pid = pasteflow::testing::spawn_command(
      "exec " + kBin + " augment -c " + kConfigs + "original_aug.yaml -a " + kPaste + "/annotations.json -i " + kPaste +
      "/images -o " + out + " --copies 1000 --threads 1 >/dev/null 2>" + dir.str() + "/long.log");
  auto started = [&] {
    if (!fs::exists(out)) return false;
    for (const auto& e : fs::directory_iterator(out)) {
      const bool staging = e.path().filename().string().rfind(".pasteflow-staging-", 0) == 0;
      if (staging && files_in(e.path() / "images") > 0) return true;
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (pid > 0 && !started() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (pid <= 0) return -1;
  kill(pid, signal);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(AugmentRegression, SigintOrSigtermStopsCleansUpAndExits128PlusSignal) {
  TempDir dir("sigint");
  std::map<std::string, std::string> sources;
  for (const auto& e : fs::directory_iterator(kPaste + "/images")) sources[e.path().string()] = read_file(e.path());
  for (const int signal : {SIGINT, SIGTERM}) {
    const std::string out = dir.str() + "/out";
    const int status = signal_running_augment(dir, out, signal);
    const std::string log = read_file(dir.str() + "/long.log");
    ASSERT_TRUE(WIFEXITED(status)) << log;
    EXPECT_EQ(WEXITSTATUS(status), 128 + signal) << log;
    EXPECT_NE(log.find("interrupted"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out)) << "OUT was created by the run: no annotations.json, no staging directory, nothing";
  }
  for (const auto& [path, bytes] : sources) EXPECT_EQ(read_file(path), bytes) << path;
}

TEST(AugmentRegression, RerunAfterAKilledRunLeavesNoOrphans) {
  TempDir dir("killed");
  const std::string out = dir.str() + "/out";
  const int status = signal_running_augment(dir, out, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto staging_dirs = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(out)) n += e.path().filename().string().rfind(".pasteflow-staging-", 0) == 0;
    return n;
  };
  ASSERT_EQ(staging_dirs(), 1u) << "SIGKILL leaves the staging directory behind";
  { std::ofstream(out + "/notes.txt") << "mine"; }

  // The rerun removes the killed run's staging directory, says so, and
  // publishes a consistent output.
  const auto r = pasteflow::testing::run_command(kBin + " augment -c " + kConfigs + "original_aug.yaml -a " + kPaste +
                                                 "/annotations.json -i " + kPaste + "/images -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("left by an interrupted pasteflow run"), std::string::npos) << r.output;
  EXPECT_EQ(staging_dirs(), 0u);
  EXPECT_EQ(read_file(out + "/notes.txt"), "mine");
  expect_consistent(out);

  // Killed while publishing: images/ in place, annotations.json not yet,
  // the manifest still "publishing". Refused without --overwrite, replaced with it.
  fs::remove(out + "/annotations.json");
  std::string manifest = read_file(out + "/.pasteflow-manifest.json");
  manifest.replace(manifest.find("\"complete\""), 10, "\"publishing\"");
  { std::ofstream(out + "/.pasteflow-manifest.json") << manifest; }
  const std::string again = "augment -c " + kConfigs + "original_aug.yaml -a " + kPaste + "/annotations.json -i " +
                            kPaste + "/images -o " + out;
  const auto refused = pasteflow::testing::run_command(kBin + " " + again);
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("half-published"), std::string::npos) << refused.output;
  ASSERT_EQ(run(again + " --overwrite").status, 0);
  expect_consistent(out);
  EXPECT_EQ(read_file(out + "/notes.txt"), "mine");
}

TEST(AugmentRegression, OverwriteReplacesOnlyWhatPasteflowPublished) {
  TempDir dir("overwrite");
  const std::string out = dir.str() + "/out";
  const std::string args = "augment -c " + kConfigs + "original_aug.yaml -a " + kPaste + "/annotations.json -i " +
                           kPaste + "/images -o " + out;
  ASSERT_EQ(run(args).status, 0);
  { std::ofstream(out + "/notes.txt") << "mine"; }
  EXPECT_NE(run(args).status, 0) << "a rerun without --overwrite is refused";
  ASSERT_EQ(run(args + " --overwrite --seed 9").status, 0);
  EXPECT_EQ(read_file(out + "/notes.txt"), "mine");
  expect_consistent(out);
  // A file of the user's inside OUT/images: the output is no longer only
  // pasteflow's, so it is neither replaced nor mixed into.
  { std::ofstream(out + "/images/mine.jpg") << "precious"; }
  const std::string ann = read_file(out + "/annotations.json");
  const auto r = pasteflow::testing::run_command(kBin + " " + args + " --overwrite");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("mine.jpg"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(out + "/images/mine.jpg"), "precious");
  EXPECT_EQ(read_file(out + "/annotations.json"), ann);
}

// ------------------------------------------------------------------ preview

TEST(CliPreview, WritesAPngGridOfTheExpectedSize) {
  TempDir dir("preview");
  const std::string sheet = dir.str() + "/sheet.png";
  const CliRun r = run("preview -c " + kConfigs + "original_aug.yaml -a " + kSample + "/annotations.json -i " + kSample +
                       "/images -o " + sheet + " -n 5 --cell 120 --threads 2");
  ASSERT_EQ(r.status, 0);
  const cv::Mat png = cv::imread(sheet, cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(png.empty());
  EXPECT_EQ(png.cols, 3 * 120);  // ceil(sqrt(5)) = 3 columns
  EXPECT_EQ(png.rows, 2 * 120);  // ceil(5 / 3) = 2 rows
  EXPECT_EQ(png.channels(), 3);
  // Pasted outlines are magenta (BGR 255, 0, 255), originals green.
  cv::Mat magenta, green;
  cv::inRange(png, cv::Scalar(250, 0, 250), cv::Scalar(255, 5, 255), magenta);
  cv::inRange(png, cv::Scalar(0, 250, 0), cv::Scalar(5, 255, 5), green);
  EXPECT_GT(cv::countNonZero(magenta), 0);
  EXPECT_GT(cv::countNonZero(green), 0);
  for (const auto& e : fs::directory_iterator(dir.path)) EXPECT_EQ(e.path().filename(), "sheet.png");
}

// Objects keep their own pixels (issue 12): the outline is drawn outside
// each object, so the default sheet and the --fill sheet differ inside the
// objects only; both have the magenta and green outlines.
TEST(CliPreview, FillTintsTheObjectsTheDefaultKeepsTheirPixels) {
  TempDir dir("preview_fill");
  const std::string args = "preview -c " + kConfigs + "original_aug.yaml -a " + kSample + "/annotations.json -i " +
                           kSample + "/images -n 2 --cell 640 --threads 2 -o ";
  ASSERT_EQ(run(args + dir.str() + "/outline.png").status, 0);
  ASSERT_EQ(run(args + dir.str() + "/fill.png --fill").status, 0);
  const cv::Mat outline = cv::imread(dir.str() + "/outline.png");
  const cv::Mat fill = cv::imread(dir.str() + "/fill.png");
  ASSERT_FALSE(outline.empty());
  ASSERT_EQ(outline.size(), fill.size());
  cv::Mat diff, grey;
  cv::absdiff(outline, fill, diff);
  cv::cvtColor(diff, grey, cv::COLOR_BGR2GRAY);
  // The tint covers objects: many pixels; the outlines themselves are the same in both.
  EXPECT_GT(cv::countNonZero(grey), static_cast<int>(outline.total() / 50));
  for (const cv::Mat* m : {&outline, &fill}) {
    cv::Mat magenta, green;
    cv::inRange(*m, cv::Scalar(250, 0, 250), cv::Scalar(255, 5, 255), magenta);
    cv::inRange(*m, cv::Scalar(0, 250, 0), cv::Scalar(5, 255, 5), green);
    EXPECT_GT(cv::countNonZero(magenta), 20);
    EXPECT_GT(cv::countNonZero(green), 20);
  }
  const CliRun help = run("preview --help");
  EXPECT_NE(help.out.find("--fill"), std::string::npos) << help.out;
}

// ------------------------------------------------------------------ config

TEST(CliConfig, SchemaMatchesTheCommittedDocs) {
  const CliRun r = run("config --schema");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, read_file(kSource + "/docs/config.md")) << "regenerate: pasteflow config --schema > docs/config.md";
}

TEST(CliConfig, PrintResolvesBasesAndOverrides) {
  const CliRun r = run("config --print " + kConfigs + "one_object_3x.yaml augment.copies=5 seed=11");
  ASSERT_EQ(r.status, 0);
  using pasteflow::pipeline::PipelineConfig;
  const PipelineConfig printed = pasteflow::config::parse_config_string<PipelineConfig>(r.out, "<stdout>");
  const PipelineConfig want =
      pasteflow::pipeline::load_pipeline_config(kConfigs + "one_object_3x.yaml", {"augment.copies=5", "seed=11"});
  EXPECT_EQ(pasteflow::config::config_diff(printed, want), std::vector<std::string>{});
  EXPECT_EQ(printed.augment.copies, 5);
  EXPECT_EQ(printed.augment.strategy, "one");
  EXPECT_EQ(printed.sampler.aug_mode, "original_aug");
  EXPECT_NE(run("config --print " + kConfigs + "one_object_3x.yaml augment.nope=1").status, 0);
}

}  // namespace
