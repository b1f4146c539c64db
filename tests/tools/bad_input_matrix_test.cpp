// The bad-input matrix (issue 10): one row per kind of bad input, each run
// through the built program with the command that consumes it, checking what
// a user sees: the exit status (an error: 1 .. 127, never a crash; under
// `skip`: 0 with the record counted by reason), the file and the place
// (byte offset, JSON path, record id, config key) in the output, and the
// stable reason code (printed at --log-level debug as "reason code: X" for
// errors, in the "skipped N ...(s): X" report under skip). Every table also
// has a control row, the same command on a good input, which must succeed:
// an error row cannot pass because the command line itself is wrong.
//
// Inputs are generated here, tiny: COCO JSON as text, images with OpenCV from
// a real COCO JPEG of tests/data/images (resized to 32 x 24) or byte by byte
// (tests/common/images.hpp), one CMYK JPEG from tests/data/images, and the
// weights of the tiny Mask R-CNN of configs/train/sample_tiny.yaml built once
// (random init) for the checkpoint rows. The rows of a table run in parallel:
// each command is mostly the program's start-up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "common/command.hpp"
#include "common/file.hpp"
#include "common/images.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/train/config.hpp"

namespace {

namespace fs = std::filesystem;
using pasteflow::testing::read_file;

const std::string kBin = PASTEFLOW_BIN;
const std::string kSource = PASTEFLOW_SOURCE_DIR;
const std::string kData = PASTEFLOW_TEST_DATA;

enum class Expect {
  kError,  ///< exit 1 .. 127
  kSkip,   ///< exit 0, the record counted under `reason` (any reason when empty)
  kOk,     ///< exit 0, nothing skipped (a control, or an input that must be handled)
};

/// One row: `make` writes the input into the row's directory; `args` is the
/// command line after the program name, with {d} standing for that
/// directory and {src} for the source tree (the command runs there). The
/// output names that directory, so `parts` must not be words of the row's name.
struct Row {
  std::string name;
  std::function<void(const fs::path&)> make;
  std::string args;
  Expect expect = Expect::kError;
  std::string reason;                ///< "" when the issue's reason code does not exist yet
  std::vector<std::string> parts;    ///< must appear in the output ({d} replaced)
  std::vector<std::string> absent;   ///< must not appear
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

/// `s` with the first `from` replaced by `to` (which must be there).
std::string with(const std::string& s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return s;
  return s.substr(0, at) + to + s.substr(at + from.size());
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

void write(const fs::path& path, const std::vector<uint8_t>& bytes) {
  write(path, std::string(bytes.begin(), bytes.end()));
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xFF);
  return out;
}

class Matrix {
 public:
  explicit Matrix(const std::string& table)
      : root_(fs::temp_directory_path() / ("pasteflow_matrix_" + table + "_" + std::to_string(getpid()))) {
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~Matrix() { fs::remove_all(root_); }
  const fs::path& root() const { return root_; }

  /// Makes every row's input, runs the commands (a few at a time), checks.
  void run(const std::vector<Row>& rows) const {
    std::vector<pasteflow::testing::CommandResult> results(rows.size());
    for (const Row& row : rows) {
      const fs::path dir = root_ / row.name;
      ASSERT_TRUE(fs::create_directory(dir)) << "row names must be unique: " << row.name;
      if (row.make) row.make(dir);
    }
    std::atomic<size_t> next{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 6; ++w) {
      workers.emplace_back([&] {
        for (size_t i = next++; i < rows.size(); i = next++) {
          const std::string args = expand(rows[i].args, root_ / rows[i].name);
          results[i] = pasteflow::testing::run_command("cd " + kSource + " && " + kBin + " --log-level debug " + args);
        }
      });
    }
    for (std::thread& t : workers) t.join();
    for (size_t i = 0; i < rows.size(); ++i) check(rows[i], results[i]);
  }

 private:
  static std::string expand(const std::string& s, const fs::path& dir) {
    return replace_all(replace_all(s, "{d}", dir.string()), "{src}", kSource);
  }

  static void check(const Row& row, const pasteflow::testing::CommandResult& r) {
    // Every message starts with the row, so a failure names its row first.
    const std::string tag = "[row " + row.name + "] pasteflow " + row.args + "\n";
    const std::string& out = r.output;
    switch (row.expect) {
      case Expect::kError:
        EXPECT_GE(r.status, 1) << tag << "an error must exit non-zero (-1: killed by a signal)\n" << out;
        EXPECT_LE(r.status, 127) << tag << out;
        if (!row.reason.empty()) {
          EXPECT_NE(out.find("reason code: " + row.reason + "\n"), std::string::npos)
              << tag << "expected reason " << row.reason << "\n" << out;
        }
        break;
      case Expect::kSkip: {
        EXPECT_EQ(r.status, 0) << tag << "under skip the run finishes\n" << out;
        const std::regex counted("skipped [1-9][0-9]* [a-z ]+\\(s\\): " +
                                 (row.reason.empty() ? std::string("[a-z_]+") : row.reason) + " \\(first: ");
        EXPECT_TRUE(std::regex_search(out, counted)) << tag << "expected the record counted under '" << row.reason
                                                     << "'\n" << out;
        break;
      }
      case Expect::kOk:
        EXPECT_EQ(r.status, 0) << tag << out;
        EXPECT_FALSE(std::regex_search(out, std::regex("skipped [1-9]"))) << tag << out;
        break;
    }
    for (const std::string& p : row.parts) {
      EXPECT_EQ(row.name.find(p), std::string::npos) << tag << "'" << p << "' is found in the row's directory";
      EXPECT_NE(out.find(p), std::string::npos) << tag << "missing '" << p << "' in:\n" << out;
    }
    for (const std::string& p : row.absent) {
      EXPECT_EQ(out.find(p), std::string::npos) << tag << "unexpected '" << p << "' in:\n" << out;
    }
  }

  fs::path root_;
};

/// The strict row and its `skip` twin: the same input fails with `reason`
/// naming `parts`, and under skip the run finishes with it counted.
void both(std::vector<Row>& rows, const Row& strict, const std::string& skip_flag) {
  rows.push_back(strict);
  Row skip = strict;
  skip.name += "_skip";
  skip.args += " " + skip_flag;
  skip.expect = Expect::kSkip;
  skip.parts.clear();
  rows.push_back(skip);
}

// ------------------------------------------------------------------ annotation JSON

const std::string kCoco =
    R"({"images":[{"id":1,"file_name":"a.jpg","width":32,"height":24}],)"
    R"("annotations":[{"id":1,"image_id":1,"category_id":1,"segmentation":[[2,2,10,2,10,10,2,10]],)"
    R"("area":64,"bbox":[2,2,8,8],"iscrowd":0}],"categories":[{"id":1,"name":"x"}]})";
const std::string kPolygon = "[[2,2,10,2,10,10,2,10]]";
const std::string kAnnotation = R"({"id":1,"image_id":1,)";

/// A row whose input is `json` written to {d}/<name>.json.
Row json_row(const std::string& name, const std::string& json, const std::string& command, const std::string& reason,
             std::vector<std::string> parts) {
  Row row;
  row.name = name;
  row.make = [name, json](const fs::path& d) { write(d / (name + ".json"), json); };
  row.args = command + " {d}/" + name + ".json" + (command == "rle" ? " -o {d}/out.json" : "");
  row.reason = reason;
  parts.insert(parts.begin(), name + ".json");
  row.parts = std::move(parts);
  return row;
}

TEST(BadInputMatrix, AnnotationJson) {
  std::vector<Row> rows;
  const std::string skip = "--on-error skip";
  Row control = json_row("control", kCoco, "stats", "", {});
  control.expect = Expect::kOk;
  control.parts.clear();
  rows.push_back(control);
  Row control_rle = json_row("control_rle", kCoco, "rle", "", {});
  control_rle.expect = Expect::kOk;
  control_rle.parts.clear();
  rows.push_back(control_rle);

  // Whole-file errors: no record to skip, so an error under both policies.
  for (const std::string& cmd : {std::string("stats"), std::string("stats --on-error skip")}) {
    const std::string tag = cmd == "stats" ? "" : "_skip";
    rows.push_back(json_row("truncated" + tag, kCoco.substr(0, 100), cmd, "malformed_json", {"truncated" + tag + ".json:byte "}));
    rows.push_back(json_row("empty" + tag, "", cmd, "malformed_json", {":byte 0"}));
    rows.push_back(json_row("not_json" + tag, "images: []\n", cmd, "malformed_json", {":byte 0"}));
  }
  rows.push_back(json_row("nested_200k_deep", R"({"images":)" + std::string(200000, '['), "stats", "",
                          {"nested_200k_deep.json:byte "}));
  rows.push_back(json_row("nested_200k_deep_array", std::string(200000, '['), "stats", "", {":byte 0"}));

  // Records: strict names the place, skip counts the record by reason.
  both(rows, json_row("wrong_type", with(kCoco, R"("width":32)", R"("width":"32")"), "stats", "wrong_type",
                      {":byte ", "images[0].width", "(image id 1)"}), skip);
  const std::string ann = kCoco.substr(kCoco.find(R"({"id":1,"image_id")"),
                                       kCoco.find("]", kCoco.find("\"iscrowd\"")) - kCoco.find(R"({"id":1,"image_id")"));
  both(rows, json_row("duplicate_ids", with(kCoco, ann, ann + "," + ann), "stats", "duplicate_id",
                      {":byte ", "annotations[1]", "annotation id 1"}), skip);
  both(rows, json_row("dangling_image_id", with(kCoco, R"("image_id":1)", R"("image_id":99)"), "stats",
                      "unknown_image", {":byte ", "annotations[0]", "image_id 99"}), skip);
  both(rows, json_row("dangling_category_id", with(kCoco, R"("category_id":1)", R"("category_id":5)"), "stats",
                      "unknown_category", {":byte ", "annotations[0]", "annotation id 1"}), skip);
  both(rows, json_row("odd_polygon", with(kCoco, kPolygon, "[[2,2,10,2,10,10,2]]"), "stats", "odd_polygon",
                      {":byte ", "annotations[0].segmentation[0]", "annotation id 1"}), skip);
  both(rows, json_row("four_number_polygon", with(kCoco, kPolygon, "[[2,2,10,2]]"), "stats", "short_polygon",
                      {":byte ", "annotations[0].segmentation[0]", "annotation id 1"}), skip);
  both(rows, json_row("nan_polygon", with(kCoco, kPolygon, "[[2,2,NaN,2,10,10,2,10]]"), "stats", "wrong_type",
                      {":byte ", "annotations[0].segmentation[0][2]", "annotation id 1"}), skip);
  // Rasterised by rle (stats reads the area field): the coordinate is named,
  // not printed with its 309 digits.
  Row huge = json_row("polygon_1e308", with(kCoco, kPolygon, "[[2,2,1e308,2,10,10,2,10]]"), "rle", "polygon_range",
                      {"annotations[0].segmentation[0]", "annotation id 1"});
  huge.absent = {"100000000000000001097906362944"};  // 1e308's first digits as "%f" prints them
  both(rows, huge, skip);
  both(rows, json_row("empty_segmentation", with(kCoco, kPolygon, "[]"), "rle", "empty_segmentation",
                      {"annotations[0].segmentation", "annotation id 1"}), skip);
  both(rows, json_row("rle_bad_sum", with(kCoco, kPolygon, R"({"size":[24,32],"counts":[10,20]})"), "stats",
                      "rle_sum", {":byte ", "annotations[0].segmentation.counts", "annotation id 1"}), skip);
  both(rows, json_row("rle_bad_characters", with(kCoco, kPolygon, R"({"size":[24,32],"counts":"\u00ff!!"})"),
                      "stats", "bad_value", {":byte ", "annotations[0].segmentation.counts", "annotation id 1"}),
       skip);
  both(rows, json_row("rle_size_not_the_image_size", with(kCoco, kPolygon, R"({"size":[10,10],"counts":[100]})"),
                      "rle", "rle_size_mismatch", {"annotations[0].segmentation", "annotation id 1"}), skip);
  both(rows, json_row("negative_width", with(kCoco, R"("width":32)", R"("width":-32)"), "stats", "bad_image_size",
                      {":byte ", "images[0].width", "(image id 1)"}), skip);
  // An image of width 0 made rle write masks of size [24, 0] and exit 0.
  both(rows, json_row("zero_width", with(kCoco, R"("width":32)", R"("width":0)"), "rle", "bad_image_size",
                      {"images[0]", "image id 1"}), skip);
  both(rows, json_row("size_100k_squared", with(with(kCoco, R"("width":32)", R"("width":100000)"), R"("height":24)",
                                                R"("height":100000)"),
                      "rle", "pixel_limit", {"images[0]", "image id 1"}), skip);
  // Ids near 2^63 are valid ids: read and counted without overflow.
  Row big_ids = json_row("ids_near_2_63", with(with(kCoco, R"({"id":1,"file_name")", R"({"id":9223372036854775806,"file_name")"),
                                               R"("image_id":1)", R"("image_id":9223372036854775806)"),
                         "stats --json", "", {});
  big_ids.expect = Expect::kOk;
  big_ids.parts = {"\"objects\": 1"};
  rows.push_back(big_ids);

  Matrix("annotations").run(rows);
}

// ------------------------------------------------------------------ images

/// A 32 x 24 crop of a real COCO image (tests/data/images), BGR.
cv::Mat small_image() {
  const cv::Mat full = cv::imread(kData + "/images/000000070133.jpg", cv::IMREAD_COLOR);
  cv::Mat out;
  cv::resize(full, out, cv::Size(32, 24), 0, 0, cv::INTER_AREA);
  return out;
}

std::vector<uint8_t> encode(const std::string& ext, const cv::Mat& image) {
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(ext, image, bytes)) << ext;
  return bytes;
}

std::vector<uint8_t> first_half(std::vector<uint8_t> bytes) {
  bytes.resize(bytes.size() / 2);
  return bytes;
}

/// A row running `augment` over one image, id 7, named `file` in a COCO file
/// that gives it size w x h; `bytes` is the file (none: missing).
Row image_row(const std::string& name, const std::string& file, std::function<std::vector<uint8_t>()> bytes,
              const std::string& reason, std::vector<std::string> parts, int w = 32, int h = 24) {
  Row row;
  row.name = name;
  const std::string json = with(with(with(with(kCoco, R"("id":1,"file_name":"a.jpg")", R"("id":7,"file_name":")" + file + "\""),
                                           R"("width":32)", "\"width\":" + std::to_string(w)),
                                      R"("height":24)", "\"height\":" + std::to_string(h)),
                                 R"("image_id":1)", R"("image_id":7)");
  row.make = [json, file, bytes](const fs::path& d) {
    write(d / "a.json", json);
    if (bytes) write(d / file, bytes());
  };
  row.args = "augment -c {src}/configs/paper/baseline.yaml -a {d}/a.json -i {d} -o {d}/out --threads 1 --json";
  row.reason = reason;
  parts.insert(parts.begin(), {file, "image id 7"});
  row.parts = std::move(parts);
  return row;
}

TEST(BadInputMatrix, Images) {
  const cv::Mat bgr = small_image();
  ASSERT_EQ(bgr.cols, 32);
  std::vector<Row> rows;
  const std::string skip = "loader.on_error=skip";
  auto ok = [&](Row row) {
    row.expect = Expect::kOk;
    row.parts = {"\"images\": 1", "\"skipped_samples\": 0"};
    rows.push_back(row);
  };
  ok(image_row("control", "a.jpg", [&] { return encode(".jpg", bgr); }, "", {}));

  both(rows, image_row("missing", "missing.jpg", nullptr, "missing_image", {"not found"}), skip);
  both(rows, image_row("zero_bytes", "zero.jpg", [] { return std::vector<uint8_t>(); }, "corrupt_image",
                       {"zero.jpg:byte 0", "empty file"}), skip);
  both(rows, image_row("truncated_jpeg", "cut.jpg", [&] { return first_half(encode(".jpg", bgr)); }, "corrupt_image",
                       {"cut.jpg:byte ", "JPEG is truncated"}), skip);
  both(rows, image_row("truncated_png", "cut.png", [&] { return first_half(encode(".png", bgr)); }, "corrupt_image",
                       {"cut.png:byte ", "PNG is truncated"}), skip);
  // OpenCV's TIFFs keep their directory after the strips: cut inside a strip.
  Row tiff = image_row("truncated_tiff", "cut.tif",
                       [] {
                         std::vector<uint8_t> b = pasteflow::testing::grey_tiff(32, 24);
                         b.resize(b.size() - 100);
                         return b;
                       },
                       "corrupt_image", {"cut.tif:byte ", "TIFF is truncated"});
  tiff.absent = {"TIFFReadRGBAStrip", "imdecode_"};  // libtiff / OpenCV printing to stderr
  both(rows, tiff, skip);
  both(rows, image_row("truncated_tiff_directory", "cut_dir.tif", [&] { return first_half(encode(".tiff", bgr)); },
                       "corrupt_image", {"cut_dir.tif:byte "}),
       skip);
  both(rows, image_row("random_bytes", "noise.jpg", [] {
         const std::string r = random_bytes(4096, 3);
         return std::vector<uint8_t>(r.begin(), r.end());
       }, "unsupported_image", {"noise.jpg:byte 0"}), skip);
  both(rows, image_row("one_pixel_for_32x24", "one.jpg", [&] { return encode(".jpg", bgr(cv::Rect(0, 0, 1, 1)).clone()); },
                       "size_mismatch", {"1 x 1", "32 x 24"}), skip);
  both(rows, image_row("tiff_header_100k_squared", "bomb.tif",
                       [] { return pasteflow::testing::grey_tiff(100000, 100000, /*pixels=*/false); }, "pixel_limit",
                       {"100000 x 100000", "decode.max_pixels"}), skip);
  both(rows, image_row("png_header_100k_squared", "bomb.png", [] { return pasteflow::testing::png_claiming(100000, 100000); },
                       "pixel_limit", {"100000 x 100000"}), skip);

  // Handled: decoded by their signature and converted to 8-bit RGB.
  ok(image_row("png_named_jpg", "png.jpg", [&] { return encode(".png", bgr); }, "", {}));
  ok(image_row("jpeg_named_png", "jpeg.png", [&] { return encode(".jpg", bgr); }, "", {}));
  cv::Mat deep;
  bgr.convertTo(deep, CV_16U, 257.0);
  ok(image_row("sixteen_bit", "deep.png", [&] { return encode(".png", deep); }, "", {}));
  cv::Mat grey;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  ok(image_row("grey", "grey.jpg", [&] { return encode(".jpg", grey); }, "", {}));
  cv::Mat bgra;
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  ok(image_row("rgba", "rgba.png", [&] { return encode(".png", bgra); }, "", {}));
  ok(image_row("cmyk_jpeg", "cmyk.jpg", [] {
       const std::string b = read_file(kData + "/images/cmyk_red_blue.jpg");
       return std::vector<uint8_t>(b.begin(), b.end());
     }, "", {}, 16, 8));

  // Ids near 2^63: the augmented copies' new ids must not overflow into
  // negative ids (they did, exit 0); refused, naming the id.
  Row ids = image_row("ids_near_2_63", "a.jpg", [&] { return encode(".jpg", bgr); }, "id_overflow", {});
  ids.make = [bytes = encode(".jpg", bgr)](const fs::path& d) {
    write(d / "a.json", with(with(with(kCoco, R"({"id":1,"file_name")", R"({"id":9223372036854775807,"file_name")"),
                                  R"("image_id":1)", R"("image_id":9223372036854775807)"),
                             R"({"id":1,"image_id")", R"({"id":9223372036854775807,"image_id")"));
    write(d / "a.jpg", bytes);
  };
  ids.args = "augment -c {src}/configs/paper/original_aug.yaml -a {d}/a.json -i {d} -o {d}/out --threads 1 --json";
  ids.parts = {"9223372036854775807"};
  ids.absent = {"-9223372036854775808", "\"id\": -"};
  rows.push_back(ids);

  Matrix("images").run(rows);
}

// ------------------------------------------------------------------ configs

/// A row running `config --print {d}/c.yaml overrides...` on `yaml`;
/// `files` are more files of the row ({name, text}).
Row config_row(const std::string& name, const std::string& yaml, const std::string& overrides,
               const std::string& reason, std::vector<std::string> parts,
               std::vector<std::pair<std::string, std::string>> files = {}) {
  Row row;
  row.name = name;
  row.make = [yaml, files](const fs::path& d) {
    write(d / "c.yaml", yaml);
    for (const auto& [file, text] : files) {
      if (text == "<dir>") {
        fs::create_directory(d / file);
      } else {
        write(d / file, text);
      }
    }
  };
  row.args = "config --print {d}/c.yaml " + overrides;
  row.reason = reason;
  row.parts = std::move(parts);
  return row;
}

TEST(BadInputMatrix, Configs) {
  std::vector<Row> rows;
  Row control = config_row("control", "", "", "", {"inflight: 4"});
  control.make = [](const fs::path& d) {
    write(d / "c.yaml", "_base_: " + kSource + "/configs/paper/baseline.yaml\nloader:\n  inflight: 4\n");
  };
  control.expect = Expect::kOk;
  rows.push_back(control);

  rows.push_back(config_row("unknown_key", "loader:\n  inflite: 4\n", "", "unknown_key",
                            {"c.yaml:2:3", "key 'loader.inflite'", "did you mean 'loader.inflight'"}));
  rows.push_back(config_row("wrong_type", "loader:\n  inflight: many\n", "", "type_mismatch",
                            {"c.yaml:2:13", "key 'loader.inflight'", "expected int"}));
  rows.push_back(config_row("out_of_range", "loader:\n  inflight: 0\n", "", "out_of_range",
                            {"c.yaml:2:13", "key 'loader.inflight'", "out of range"}));
  rows.push_back(config_row("nan", "augment:\n  transform:\n    scale: .nan\n", "", "not_finite",
                            {"c.yaml:3:12", "key 'augment.transform.scale'"}));
  rows.push_back(config_row("infinity_in_unbounded_list", "batch:\n  mean: [.inf, 0.5, 0.5]\n", "", "not_finite",
                            {"c.yaml:2:10", "key 'batch.mean[0]'"}));
  rows.push_back(config_row("base_cycle", "_base_: b.yaml\n", "", "base_cycle",
                            {"b.yaml:1:9", "inheritance cycle", "c.yaml -> "}, {{"b.yaml", "_base_: c.yaml\n"}}));
  rows.push_back(config_row("missing_base", "_base_: nothere.yaml\n", "", "cannot_open",
                            {"c.yaml:1:9", "nothere.yaml", "key '_base_'"}));
  rows.push_back(config_row("base_is_a_directory", "_base_: sub\n", "", "cannot_open",
                            {"c.yaml:1:9", "(a directory)"}, {{"sub", "<dir>"}}));
  rows.push_back(config_row("yaml_syntax", "loader:\n  inflight: [1\n  prefetch: 2\n", "", "yaml_syntax",
                            {"c.yaml:", "YAML syntax error"}));
  rows.push_back(config_row("yaml_nested_200k_deep", "batch:\n  mean: " + std::string(200000, '[') + "\n", "",
                            "yaml_syntax", {"c.yaml:", "nested more than"}));
  rows.push_back(config_row("duplicate_key", "loader:\n  inflight: 4\n  inflight: 5\n", "", "duplicate_key",
                            {"c.yaml:3:3", "key 'loader.inflight'", "first at"}));
  rows.push_back(config_row("duplicate_key_flow", "loader: {inflight: 4, inflight: 5}\n", "", "duplicate_key",
                            {"c.yaml:1:23", "key 'loader.inflight'"}));
  rows.push_back(config_row("override_without_key", "", "=x", "bad_override", {"override '=x'", "key.path=value"}));
  rows.push_back(config_row("override_empty_part", "", "loader..inflight=3", "bad_override",
                            {"override 'loader..inflight=3'"}));
  rows.push_back(config_row("override_unknown_key", "", "a.b=", "unknown_key", {"override 'a.b='", "key 'a'"}));
  rows.push_back(config_row("override_wrong_type", "", "loader.inflight=abc", "type_mismatch",
                            {"override 'loader.inflight=abc'", "key 'loader.inflight'"}));
  rows.push_back(config_row("override_bad_yaml", "", "'loader.inflight=[1'", "bad_override",
                            {"key 'loader.inflight'", "not valid YAML"}));
  rows.push_back(config_row("override_nan", "", "augment.transform.rotation=nan", "not_finite",
                            {"key 'augment.transform.rotation'"}));
  // A training config: the same loader through `train --print-config`.
  Row train = config_row("train_config_nan", "", "", "not_finite", {"c.yaml:3:12", "key 'solver.base_lr'"});
  train.make = [](const fs::path& d) {
    write(d / "c.yaml", "_base_: " + kSource + "/configs/train/sample_tiny.yaml\nsolver:\n  base_lr: .nan\n");
  };
  train.args = "train -c {d}/c.yaml --print-config";
  rows.push_back(train);

  Matrix("configs").run(rows);
}

// ------------------------------------------------------------------ results files for eval

Row results_row(const std::string& name, const std::string& results, const std::string& reason,
                std::vector<std::string> parts) {
  Row row;
  row.name = name;
  row.make = [results](const fs::path& d) {
    write(d / "gt.json", kCoco);
    write(d / "results.json", results);
  };
  row.args = "eval --gt {d}/gt.json --results {d}/results.json --type bbox";
  row.reason = reason;
  parts.insert(parts.begin(), "results.json");
  row.parts = std::move(parts);
  return row;
}

TEST(BadInputMatrix, EvalResults) {
  std::vector<Row> rows;
  const std::string skip = "--on-error skip";
  const std::string good = R"([{"image_id":1,"category_id":1,"bbox":[2,2,8,8],"score":0.9}])";
  Row control = results_row("control", good, "", {});
  control.expect = Expect::kOk;
  control.parts = {"1.000"};
  rows.push_back(control);

  both(rows, results_row("unknown_image_id", with(good, R"("image_id":1)", R"("image_id":99)"), "unknown_image",
                         {"[0].image_id", "image_id 99"}), skip);
  both(rows, results_row("unknown_category_id", with(good, R"("category_id":1)", R"("category_id":5)"),
                         "unknown_category", {"[0].category_id", "category_id 5"}), skip);
  both(rows, results_row("nan_literal", with(good, "[2,2,8,8]", "[NaN,2,8,8]"), "bad_value", {":byte ", "[0]"}), skip);
  both(rows, results_row("missing_score", with(good, R"(,"score":0.9)", ""), "missing_field", {"[0].score"}),
       skip);
  both(rows, results_row("three_number_bbox", with(good, "[2,2,8,8]", "[2,2,8]"), "bad_value", {"[0].bbox"}), skip);
  both(rows, results_row("negative_bbox_size", with(good, "[2,2,8,8]", "[2,2,-8,8]"), "bad_value", {"[0].bbox"}), skip);
  // Whole-file errors.
  rows.push_back(results_row("truncated", good.substr(0, 30), "malformed_json", {"results.json:byte "}));
  rows.push_back(results_row("not_an_array", R"({"image_id":1})", "not_an_array", {}));

  Matrix("results").run(rows);
}

// ------------------------------------------------------------------ checkpoints

TEST(BadInputMatrix, Checkpoints) {
  Matrix m("checkpoints");
  // The tiny model of configs/train/sample_tiny.yaml (random init) for one
  // category, as `predict --annotations` builds it for a one-category file.
  const fs::path weights = m.root() / "weights.pt";
  {
    pasteflow::train::TrainConfig cfg =
        pasteflow::train::load_train_config(kSource + "/configs/train/sample_tiny.yaml");
    cfg.model.num_classes = 2;
    cfg.model.weights.clear();
    torch::manual_seed(0);
    pasteflow::model::MaskRCNN net(cfg.model);
    pasteflow::model::save_weights(*net, weights.string());
  }
  const std::string whole = read_file(weights);
  ASSERT_GT(whole.size(), 1000000u);
  const std::vector<uint8_t> jpeg = encode(".jpg", small_image());

  /// `predict` of {d}/a.jpg with the weights `file`, made by `make_weights`.
  auto predict_row = [&](const std::string& name, const std::string& file,
                         std::function<void(const fs::path&)> make_weights, const std::string& reason,
                         std::vector<std::string> parts) {
    Row row;
    row.name = name;
    row.make = [=](const fs::path& d) {
      write(d / "a.json", kCoco);
      write(d / "a.jpg", jpeg);
      make_weights(d / file);
    };
    row.args = "predict -c {src}/configs/train/sample_tiny.yaml -w {d}/" + file +
               " --annotations {d}/a.json --images {d} -o {d}/out --no-overlays --threads 1";
    row.reason = reason;
    parts.insert(parts.begin(), file);
    row.parts = std::move(parts);
    return row;
  };
  std::vector<Row> rows;
  Row control = predict_row("control", "weights.pt", [&](const fs::path& p) { fs::copy_file(weights, p); }, "", {});
  control.expect = Expect::kOk;
  rows.push_back(control);

  // Truncated or not a checkpoint at all: say so, not "convert your torchvision state dict".
  Row truncated = predict_row("cut_in_half", "cut.pt",
                              [&](const fs::path& p) { write(p, whole.substr(0, whole.size() / 2)); }, "",
                              {"truncated"});
  truncated.absent = {"torchvision_to_pasteflow"};
  rows.push_back(truncated);
  Row random = predict_row("random_bytes", "noise.pt", [](const fs::path& p) { write(p, random_bytes(65536, 5)); },
                           "", {"not a"});
  random.absent = {"torchvision_to_pasteflow"};
  rows.push_back(random);
  rows.push_back(predict_row("empty_file", "empty.pt", [](const fs::path& p) { write(p, std::string()); }, "", {}));
  // Another model's weights: a classifier's state dict.
  rows.push_back(predict_row("another_model", "classifier.pt",
                             [](const fs::path& p) {
                               pasteflow::model::write_checkpoint(
                                   {{"features.0.weight", torch::zeros({8, 3, 3, 3})},
                                    {"classifier.weight", torch::zeros({10, 8})}},
                                   p.string());
                             },
                             "", {"key '"}));
  // Weights of the right model for another class count: three categories named.
  Row classes = predict_row("another_class_count", "weights.pt", [&](const fs::path& p) { fs::copy_file(weights, p); },
                            "category_mismatch", {"roi_heads.box_predictor.cls_score.weight", "three.json"});
  const std::string three = with(kCoco, R"([{"id":1,"name":"x"}])",
                                 R"([{"id":1,"name":"x"},{"id":2,"name":"y"},{"id":3,"name":"z"}])");
  const auto make_classes = classes.make;
  classes.make = [make_classes, three](const fs::path& d) {
    make_classes(d);
    write(d / "three.json", three);
  };
  classes.args += " --categories {d}/three.json";
  rows.push_back(classes);
  // train --checkpoint with a truncated checkpoint: named, and said to be truncated.
  Row resume = predict_row("resume_from_a_cut_checkpoint", "cut.pt",
                           [&](const fs::path& p) { write(p, whole.substr(0, whole.size() / 3)); }, "",
                           {"truncated"});
  resume.args = "train -c {src}/configs/train/sample_tiny.yaml --checkpoint {d}/cut.pt output_dir={d}/run "
                "data.train_annotations={d}/a.json data.train_images={d} data.val_annotations={d}/a.json "
                "data.val_images={d} --threads 1";
  resume.absent = {"torchvision_to_pasteflow"};
  rows.push_back(resume);

  m.run(rows);
}

}  // namespace
