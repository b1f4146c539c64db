// pasteflow slice end to end on the bundled sample (data/sample, 16 real
// COCO images): every slice PNG equals the source image's crop pixel for
// pixel, every cut annotation decodes to the crop of its source annotation's
// full mask and satisfies --min-area-ratio (and every object that satisfies
// it is there), the output loads with the project's loader, reruns are
// refused without --overwrite; a TIFF source is read by windows; a missing
// image fails (strict) or is skipped and counted.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <tiffio.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/command.hpp"
#include "common/file.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"

namespace fs = std::filesystem;
using namespace pasteflow;
using pasteflow::testing::run_command;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("pasteflow_slice_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string bin() { return PASTEFLOW_BIN; }
std::string sample() { return PASTEFLOW_SAMPLE_DATA; }

struct ViewInfo {
  int64_t source_image_id = 0;
  int64_t x = 0, y = 0, w = 0, h = 0;
};

/// source_image_id and window from an image record's extra members.
ViewInfo view_of(const io::CocoDataset& ds, const io::ImageRecord& im) {
  const std::string extra(ds.str(im.extra));
  ViewInfo v;
  const size_t s = extra.find("\"source_image_id\":");
  const size_t w = extra.find("\"window\":[");
  EXPECT_NE(s, std::string::npos) << extra;
  EXPECT_NE(w, std::string::npos) << extra;
  if (s == std::string::npos || w == std::string::npos) return v;
  long long id = 0, x = 0, y = 0, ww = 0, hh = 0;
  EXPECT_EQ(std::sscanf(extra.c_str() + s, "\"source_image_id\":%lld", &id), 1);
  EXPECT_EQ(std::sscanf(extra.c_str() + w, "\"window\":[%lld,%lld,%lld,%lld]", &x, &y, &ww, &hh), 4);
  v = ViewInfo{id, x, y, ww, hh};
  return v;
}

io::CocoDataset load(const std::string& path) {
  io::LoadOptions opt;
  opt.keep_extra_fields = true;
  return io::load_coco(path, opt);
}

cv::Mat read_source(const std::string& path, int channels) {
  return cv::imread(path, (channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR) | cv::IMREAD_IGNORE_ORIENTATION);
}

/// Checks OUT against the source dataset: pixels, masks, ratio. Returns the
/// number of slices checked.
size_t check_output(const io::CocoDataset& src, const std::string& images, const fs::path& out, double ratio) {
  const io::CocoDataset ds = load((out / "annotations.json").string());
  EXPECT_EQ(ds.categories.size(), src.categories.size());
  std::map<int64_t, cv::Mat> decoded;
  for (size_t v = 0; v < ds.images.size(); ++v) {
    const auto& im = ds.images[v];
    EXPECT_EQ(im.id, static_cast<int64_t>(v) + 1);
    const ViewInfo info = view_of(ds, im);
    const int64_t si = src.image_index(info.source_image_id);
    EXPECT_GE(si, 0);
    if (si < 0) continue;
    const auto& sim = src.images[static_cast<size_t>(si)];
    EXPECT_EQ(im.width, info.w);
    EXPECT_EQ(im.height, info.h);
    EXPECT_LE(info.x + info.w, sim.width);
    EXPECT_LE(info.y + info.h, sim.height);
    // Pixels: the slice PNG equals the crop of the source image.
    const fs::path png = out / "images" / std::string(ds.file_name(im));
    const cv::Mat slice_px = cv::imread(png.string(), cv::IMREAD_UNCHANGED);
    EXPECT_FALSE(slice_px.empty()) << png;
    if (slice_px.empty()) continue;
    EXPECT_EQ(slice_px.cols, info.w);
    EXPECT_EQ(slice_px.rows, info.h);
    cv::Mat& whole = decoded[sim.id];
    if (whole.empty()) whole = read_source(images + "/" + std::string(src.file_name(sim)), slice_px.channels());
    const cv::Mat crop = whole(cv::Rect(int(info.x), int(info.y), int(info.w), int(info.h)));
    EXPECT_EQ(cv::norm(crop, slice_px, cv::NORM_INF), 0.0) << png;
    // Annotations: the source annotations whose crop keeps >= ratio of
    // their area, in source order, each equal to its cut.
    std::vector<std::pair<int64_t, std::vector<uint8_t>>> want;
    for (uint32_t ai : src.annotations_of(static_cast<size_t>(si))) {
      const auto& a = src.annotations[ai];
      const mask::Rle full = mask::annotation_rle(src, a, uint32_t(sim.height), uint32_t(sim.width));
      const mask::Rle cut = mask::crop(full, int(info.x), int(info.y), uint32_t(info.w), uint32_t(info.h));
      const uint64_t n = mask::area(cut);
      if (n > 0 && double(n) >= ratio * double(mask::area(full))) want.emplace_back(a.category_id, mask::decode(cut));
    }
    const auto got = ds.annotations_of(v);
    EXPECT_EQ(got.size(), want.size()) << png;
    for (size_t k = 0; k < std::min(got.size(), want.size()); ++k) {
      const auto& a = ds.annotations[got[k]];
      EXPECT_EQ(a.category_id, want[k].first);
      EXPECT_EQ(a.seg_kind, io::SegmentationKind::kRleString);
      const mask::Rle m = mask::from_string(ds.rle_string(a), a.rle_height, a.rle_width);
      EXPECT_EQ(mask::decode(m), want[k].second) << png << " annotation " << a.id;
      EXPECT_EQ(a.area, double(mask::area(m)));
    }
  }
  return ds.images.size();
}

}  // namespace

TEST(SliceCli, SampleSlicesMatchSourcePixelsAndMasks) {
  TempDir dir("sample");
  const fs::path out = dir.path / "out";
  const std::string cmd = bin() + " slice -a " + sample() + "/annotations.json -i " + sample() + "/images -o " +
                          out.string() + " --size 256 --overlap 0.2 --min-area-ratio 0.3 --threads 2 --json";
  const auto r = run_command(cmd, /*keep_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"slices\":"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"objects_dropped\":"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"empty_dropped\":"), std::string::npos) << r.output;
  const io::CocoDataset src = load(sample() + "/annotations.json");
  const size_t n = check_output(src, sample() + "/images", out, 0.3);
  EXPECT_GT(n, 50u);
  EXPECT_NE(r.output.find("\"slices\": " + std::to_string(n)), std::string::npos) << r.output;
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(out / "images")) files += e.is_regular_file();
  EXPECT_EQ(files, n) << "one PNG per slice, nothing else";

  // A rerun without --overwrite is refused and leaves the output alone.
  const std::string before = pasteflow::testing::read_file(out / "annotations.json");
  const auto again = run_command(bin() + " slice -a " + sample() + "/annotations.json -i " + sample() + "/images -o " +
                                 out.string() + " --size 128");
  EXPECT_NE(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("--overwrite"), std::string::npos) << again.output;
  EXPECT_EQ(pasteflow::testing::read_file(out / "annotations.json"), before);
  // With --overwrite (other settings, --polygons): replaced.
  const auto over = run_command(bin() + " slice -a " + sample() + "/annotations.json -i " + sample() +
                                "/images -o " + out.string() + " --size 300 --overlap 0 --polygons --overwrite");
  ASSERT_EQ(over.status, 0) << over.output;
  const io::CocoDataset replaced = load((out / "annotations.json").string());
  size_t polygons = 0;
  for (const auto& a : replaced.annotations) polygons += a.seg_kind == io::SegmentationKind::kPolygons;
  EXPECT_GT(polygons, 50u);
  for (const auto& im : replaced.images) {
    EXPECT_TRUE(fs::exists(out / "images" / std::string(replaced.file_name(im))));
    EXPECT_LE(im.width, 300);
  }
}

TEST(SliceCli, TiffSourceReadByWindowsAndMissingImage) {
  // Two sample images re-encoded as (lossless) TIFF, one image missing.
  TempDir dir("tiff");
  const fs::path images = dir.path / "images";
  fs::create_directories(images);
  const io::CocoDataset src = load(sample() + "/annotations.json");
  std::string json = "{\"images\":[";
  std::string anns;
  int kept = 0;
  for (size_t i = 0; i < src.images.size() && kept < 3; ++i) {
    const auto& im = src.images[i];
    if (im.ann_count == 0) continue;
    const std::string name = "img" + std::to_string(kept) + ".tif";
    if (kept < 2) {
      const cv::Mat px = cv::imread(sample() + "/images/" + std::string(src.file_name(im)),
                                    cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
      ASSERT_TRUE(cv::imwrite((images / name).string(), px));
    }
    json += std::string(kept ? "," : "") + "{\"id\":" + std::to_string(im.id) + ",\"width\":" +
            std::to_string(im.width) + ",\"height\":" + std::to_string(im.height) + ",\"file_name\":\"" + name + "\"}";
    for (uint32_t ai : src.annotations_of(i)) {
      const auto& a = src.annotations[ai];
      if (a.seg_kind != io::SegmentationKind::kPolygons) continue;
      anns += std::string(anns.empty() ? "" : ",") + "{\"id\":" + std::to_string(a.id) + ",\"image_id\":" +
              std::to_string(im.id) + ",\"category_id\":" + std::to_string(a.category_id) + ",\"segmentation\":[";
      for (size_t k = 0; k < src.num_parts(a); ++k) {
        anns += k ? ",[" : "[";
        const auto xy = src.polygon(a, k);
        for (size_t j = 0; j < xy.size(); ++j) anns += (j ? "," : "") + std::to_string(xy[j]);
        anns += "]";
      }
      anns += "],\"iscrowd\":0}";
    }
    ++kept;
  }
  json += "],\"annotations\":[" + anns + "],\"categories\":[";
  for (size_t c = 0; c < src.categories.size(); ++c) {
    json += std::string(c ? "," : "") + "{\"id\":" + std::to_string(src.categories[c].id) + ",\"name\":\"c" +
            std::to_string(c) + "\"}";
  }
  json += "]}";
  const fs::path ann = dir.path / "tiff.json";
  std::ofstream(ann) << json;

  const fs::path out = dir.path / "out";
  const std::string base = bin() + " slice -a " + ann.string() + " -i " + images.string() + " -o " + out.string() +
                           " --size 200 --overlap 0.25 --min-area-ratio 0.5 --threads 2";
  // Strict: the missing image fails the run, naming it; nothing published.
  const auto strict = run_command(base);
  EXPECT_NE(strict.status, 0) << strict.output;
  EXPECT_NE(strict.output.find("img2.tif"), std::string::npos) << strict.output;
  EXPECT_FALSE(fs::exists(out / "annotations.json"));
  // Skip: its slices are left out and counted.
  const auto skip = run_command(base + " --on-error skip --json", /*keep_stderr=*/false);
  ASSERT_EQ(skip.status, 0) << skip.output;
  EXPECT_NE(skip.output.find("\"skipped\": 1"), std::string::npos) << skip.output;
  EXPECT_NE(skip.output.find("\"missing_image\": 1"), std::string::npos) << skip.output;
  const io::CocoDataset tsrc = load(ann.string());
  const size_t n = check_output(tsrc, images.string(), out, 0.5);
  EXPECT_GT(n, 4u);
  const io::CocoDataset outds = load((out / "annotations.json").string());
  for (const auto& im : outds.images) EXPECT_NE(view_of(outds, im).source_image_id, tsrc.images[2].id);

  // One thread gives the same files, byte for byte.
  const fs::path out1 = dir.path / "out1";
  const auto one = run_command(bin() + " slice -a " + ann.string() + " -i " + images.string() + " -o " + out1.string() +
                               " --size 200 --overlap 0.25 --min-area-ratio 0.5 --threads 1 --on-error skip");
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_EQ(pasteflow::testing::read_file(out1 / "annotations.json"),
            pasteflow::testing::read_file(out / "annotations.json"));
  for (const auto& im : outds.images) {
    const std::string name(outds.file_name(im));
    EXPECT_EQ(pasteflow::testing::read_file(out1 / "images" / name), pasteflow::testing::read_file(out / "images" / name))
        << name;
  }
}

// Regression: under --on-error skip, a tile that cannot be decoded in the
// middle of a tiled TIFF stopped the whole run (the error left the parallel
// loop) instead of leaving out the slices over it. Now: those slices are left
// out and counted, the image's other slices are written (the same bytes at
// any thread count), and strict still fails naming the file and the tile.
TEST(SliceCliRegression, SkipLeavesOutTheSlicesOverACorruptTileAndKeepsTheImagesOtherSlices) {
  TempDir dir("corrupt_tile");
  const fs::path images = dir.path / "images";
  fs::create_directories(images);
  // 384 x 384 real pixels (a crop of a sample photo) as a Deflate TIFF of
  // 3 x 3 tiles of 128 px.
  const io::CocoDataset src = load(sample() + "/annotations.json");
  const cv::Mat photo = cv::imread(sample() + "/images/" + std::string(src.file_name(src.images[0])),
                                   cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  ASSERT_GE(photo.cols, 384);
  ASSERT_GE(photo.rows, 384);
  cv::Mat bgr = photo(cv::Rect(0, 0, 384, 384)).clone();
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const fs::path tif = images / "tiled.tif";
  {
    TIFF* t = TIFFOpen(tif.c_str(), "w");
    ASSERT_NE(t, nullptr);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 384u);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 384u);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(t, TIFFTAG_TILEWIDTH, 128u);
    TIFFSetField(t, TIFFTAG_TILELENGTH, 128u);
    for (int ty = 0; ty < 3; ++ty) {
      for (int tx = 0; tx < 3; ++tx) {
        const cv::Mat tile = rgb(cv::Rect(tx * 128, ty * 128, 128, 128)).clone();
        ASSERT_GE(TIFFWriteTile(t, tile.data, static_cast<uint32_t>(tx * 128), static_cast<uint32_t>(ty * 128), 0, 0),
                  0);
      }
    }
    TIFFClose(t);
  }
  // The centre tile (index 4) overwritten with 0xFF: not a zlib stream.
  {
    TIFF* t = TIFFOpen(tif.c_str(), "r");
    ASSERT_NE(t, nullptr);
    uint64_t* offsets = nullptr;
    uint64_t* counts = nullptr;
    ASSERT_EQ(TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets), 1);
    ASSERT_EQ(TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts), 1);
    const uint64_t offset = offsets[4], count = counts[4];
    TIFFClose(t);
    std::fstream f(tif, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    const std::string junk(static_cast<size_t>(count), '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    ASSERT_TRUE(f.good());
  }
  const std::string source_bytes = pasteflow::testing::read_file(tif);
  const fs::path ann = dir.path / "tiled.json";
  std::ofstream(ann) << R"({"images":[{"id":7,"width":384,"height":384,"file_name":"tiled.tif"}],)"
                     << R"("annotations":[],"categories":[{"id":1,"name":"thing"}]})";
  const std::string base = bin() + " slice -a " + ann.string() + " -i " + images.string() +
                           " --size 128 --overlap 0 --keep-empty 1";

  const fs::path strict_out = dir.path / "strict";
  const auto strict = run_command(base + " -o " + strict_out.string() + " --threads 2");
  EXPECT_NE(strict.status, 0) << strict.output;
  EXPECT_NE(strict.output.find("tiled.tif"), std::string::npos) << strict.output;
  EXPECT_NE(strict.output.find("tile 4"), std::string::npos) << strict.output;
  EXPECT_FALSE(fs::exists(strict_out / "annotations.json"));

  std::map<int, fs::path> outs;
  for (const int threads : {2, 1}) {
    const fs::path out = dir.path / ("skip" + std::to_string(threads));
    const auto skip = run_command(base + " -o " + out.string() + " --threads " + std::to_string(threads) +
                                      " --on-error skip --json",
                                  /*keep_stderr=*/false);
    ASSERT_EQ(skip.status, 0) << skip.output;
    EXPECT_NE(skip.output.find("\"slices\": 8"), std::string::npos) << skip.output;
    EXPECT_NE(skip.output.find("\"corrupt_image\": 1"), std::string::npos) << skip.output;
    outs[threads] = out;
  }
  const io::CocoDataset got = load((outs[2] / "annotations.json").string());
  ASSERT_EQ(got.images.size(), 8u);
  for (const auto& im : got.images) {
    const ViewInfo v = view_of(got, im);
    EXPECT_EQ(v.source_image_id, 7);
    EXPECT_FALSE(v.x == 128 && v.y == 128) << "the slice over the corrupt tile";
    const std::string name(got.file_name(im));
    const cv::Mat slice = cv::imread((outs[2] / "images" / name).string(), cv::IMREAD_COLOR);
    ASSERT_EQ(slice.size(), cv::Size(128, 128)) << name;
    EXPECT_EQ(cv::norm(slice, bgr(cv::Rect(int(v.x), int(v.y), 128, 128)), cv::NORM_INF), 0.0) << name;
    EXPECT_EQ(pasteflow::testing::read_file(outs[2] / "images" / name),
              pasteflow::testing::read_file(outs[1] / "images" / name))
        << name;
  }
  EXPECT_EQ(pasteflow::testing::read_file(outs[2] / "annotations.json"),
            pasteflow::testing::read_file(outs[1] / "annotations.json"));
  // The source survives the failed strict run and both skipping ones unchanged, and nothing else
  // appeared beside it.
  EXPECT_EQ(pasteflow::testing::read_file(tif), source_bytes);
  size_t beside = 0;
  for (const auto& e : fs::directory_iterator(images)) beside += e.path() != tif;
  EXPECT_EQ(beside, 0u);
}

TEST(SliceCli, SigintOrSigtermStopsCleansUpAndExits128PlusSignal) {
  // 16-px slices with overlap 0.5, all kept: ~65000 PNG files, seconds of
  // work; the signal comes once the first slices are in the staging directory.
  TempDir dir("signal");
  for (const int signal : {SIGINT, SIGTERM}) {
    const fs::path out = dir.path / "out";
    const fs::path log = dir.path / "log.txt";
    const pid_t pid = pasteflow::testing::spawn_command(
        "exec " + bin() + " slice -a " + sample() + "/annotations.json -i " + sample() + "/images -o " +
        out.string() + " --size 16 --overlap 0.5 --keep-empty 1 --threads 2 >/dev/null 2>" + log.string());
    ASSERT_GT(pid, 0);
    auto started = [&] {
      if (!fs::exists(out)) return false;
      for (const auto& e : fs::directory_iterator(out)) {
        if (e.path().filename().string().rfind(".pasteflow-staging-", 0) == 0 && fs::exists(e.path() / "images") &&
            !fs::is_empty(e.path() / "images")) {
          return true;
        }
      }
      return false;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!started() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid, signal);
    int status = 0;
    waitpid(pid, &status, 0);
    const std::string text = pasteflow::testing::read_file(log);
    ASSERT_TRUE(WIFEXITED(status)) << text;
    EXPECT_EQ(WEXITSTATUS(status), 128 + signal) << text;
    EXPECT_NE(text.find("interrupted"), std::string::npos) << text;
    EXPECT_FALSE(fs::exists(out)) << "OUT was created by the run: no annotations.json, no staging directory, nothing";
  }
}

namespace {
std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
}  // namespace

TEST(SliceCliRegression, AbsoluteAndDotDotFileNamesStayInsideOutAndSourcesSurviveAFailedRun) {
  // The hardening issue's augment findings, for slice: file names that are
  // absolute or climb out with "..", where the output is the images'
  // own directory, plus a missing image that fails the run. The sources
  // must be byte-identical afterwards and every file written below OUT.
  TempDir dir("slice_paths");
  const fs::path images = dir.path / "images";
  fs::create_directories(images / "sub");
  cv::Mat a(300, 260, CV_8UC3, cv::Scalar(10, 200, 30));
  cv::Mat b(240, 320, CV_8UC3, cv::Scalar(200, 20, 90));
  ASSERT_TRUE(cv::imwrite((images / "a.png").string(), a));
  ASSERT_TRUE(cv::imwrite((images / "sub" / "b.png").string(), b));
  const std::string a_before = file_bytes(images / "a.png"), b_before = file_bytes(images / "sub" / "b.png");
  const fs::path ann = dir.path / "paths.json";
  std::ofstream(ann) << "{\"images\":[{\"id\":1,\"width\":260,\"height\":300,\"file_name\":\""
                     << (images / "a.png").string()
                     << "\"},{\"id\":2,\"width\":320,\"height\":240,\"file_name\":\"sub/../sub/b.png\"},"
                        "{\"id\":3,\"width\":64,\"height\":64,\"file_name\":\"missing.png\"}],"
                        "\"annotations\":[{\"id\":1,\"image_id\":1,\"category_id\":1,\"bbox\":[10,10,30,30],"
                        "\"area\":900,\"iscrowd\":0,\"segmentation\":[[10,10,40,10,40,40,10,40]]}],"
                        "\"categories\":[{\"id\":1,\"name\":\"x\"}]}";
  // OUT is the images directory itself: strict fails on missing.png.
  const std::string base = bin() + " slice -a " + ann.string() + " -i " + images.string() + " -o " +
                           images.string() + " --size 128 --overlap 0 --keep-empty 1";
  const auto strict = run_command(base);
  EXPECT_NE(strict.status, 0) << strict.output;
  EXPECT_EQ(file_bytes(images / "a.png"), a_before);
  EXPECT_EQ(file_bytes(images / "sub" / "b.png"), b_before);
  EXPECT_FALSE(fs::exists(images / "annotations.json"));
  // Skip: the run completes; every file it wrote is below OUT/images (here
  // images/images) or OUT's own annotations and manifest; sources intact.
  const auto skip = run_command(base + " --on-error skip", /*keep_stderr=*/false);
  ASSERT_EQ(skip.status, 0) << skip.output;
  EXPECT_EQ(file_bytes(images / "a.png"), a_before);
  EXPECT_EQ(file_bytes(images / "sub" / "b.png"), b_before);
  size_t slices = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir.path)) {
    if (!e.is_regular_file()) continue;
    const std::string p = e.path().string();
    const bool source = e.path() == images / "a.png" || e.path() == images / "sub" / "b.png" || e.path() == ann;
    const bool published = p.rfind((images / "images").string() + "/", 0) == 0 ||
                           e.path() == images / "annotations.json" || e.path() == images / ".pasteflow-manifest.json";
    EXPECT_TRUE(source || published) << "unexpected file " << p;
    if (p.rfind((images / "images").string() + "/", 0) == 0) ++slices;
  }
  EXPECT_EQ(slices, 3u * 3u + 2u * 3u);  // 260 x 300 -> 3 x 3 windows of 128, 320 x 240 -> 3 x 2
}
