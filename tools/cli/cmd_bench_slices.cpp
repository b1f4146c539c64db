// pasteflow bench slices: the SAHI grid of windows of a huge TIFF read four
// ways, each in a child process of its own so that its peak RSS (wait4's
// ru_maxrss) is that variant's alone (a benchmark, never a test):
//
//  (i)   pasteflow, the whole pipeline to batches (the figures):
//        a one-image COCO dataset (the TIFF, its level-0 size, no
//        annotations, or the image's annotations from --annotations), every
//        window a view (slice.above 1, slice.keep_empty 1, sampler shuffle
//        off: grid order), pipeline::Loader with loader.threads = --threads
//        and raster.tile_cache_mb = --cache-mb, one epoch of next_batch():
//        window read (Decoder::decode_window through the loader's one
//        TiffPool), instances, float conversion, normalisation, the model
//        transform at scale 1 (batch.min_size = max_size = --size), collate;
//  (i')  pasteflow's reader alone ("reader_" keys): every window of
//        slice::grid read with raster::TiffFile::read_window through a
//        TiffPool (one shared tile cache), --threads workers (oneTBB);
//  (ii)  libvips (`vips` on PATH, Debian libvips-tools): "max" (default) or
//        "avg" decode every pixel of level 0 once in one vips process (its
//        demand-driven tiled pipeline, VIPS_CONCURRENCY = --threads) and
//        reduce them to one number: the fastest way the vips command has to
//        decode the same pixels (max was the fastest of max, avg and copy to
//        a .v file on cog_world.tif); "crop" runs `vips crop` per window into
//        a .v file in a temporary directory (every window exactly, one
//        process each, so process start-up is in its time). Wall time and
//        peak RSS (via /usr/bin/time -f %M when present, else wait4);
//  (iii) whole-image decode then crops (what SAHI does): read_level(0), then
//        a cv::Mat copy of every window; skipped (null + a note) when the
//        decoded level would exceed --max-whole-mb.
//
// Forked children share the parent's pages (the pasteflow program with
// its libraries; `parent_rss_mb` is the parent's VmRSS at fork); those a
// child touches count in its peak RSS: the figures are those of a
// pasteflow process doing the work.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pipeline_args.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/io/select.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/slice.hpp"

extern char** environ;

namespace pasteflow::cli {

namespace {

namespace fs = std::filesystem;

struct SlicesArgs {
  std::string image;
  int64_t size = 1024;
  double overlap = 0.0;
  int threads = 2;
  int level = 0;
  int64_t cache_mb = 256;  // raster.tile_cache_mb's default
  double max_whole_mb = 4096.0;
  std::string vips_method = "max";
  std::string annotations;  // optional COCO file with the image's annotations
  int batch_size = 2;
  int prefetch = 4;  // loader.prefetch's default
  int inflight = 8;  // loader.inflight's default
  int torch_threads = 1;
  bool no_vips = false;
  bool json = false;
};

/// What a child reports through its pipe (plain data).
struct ChildResult {
  int ok = 0;
  double seconds = 0;
  double megapixels = 0;
  uint64_t slices = 0;
  double hit_rate = 0;
  uint64_t tiles_decoded = 0;
  uint64_t checksum = 0;
  uint64_t batches = 0;
  uint64_t windows_read = 0;
  uint64_t batch_tensors_allocated = 0;
  uint64_t batch_tensors_reused = 0;
  double baseline_rss_mb = 0;  ///< the child's VmRSS before its work
  double setup_seconds = 0;    ///< building the dataset, views and loader (not timed)
  double end_rss_mb = 0;       ///< the child's VmRSS after its work (before tearing down)
  double cache_peak_mb = 0;    ///< most bytes the tile cache held
  // The pipeline's StageTimes (node body seconds summed over threads).
  static constexpr int kMaxStages = 8;
  int stages = 0;
  char stage_name[kMaxStages][24] = {};
  double stage_seconds[kMaxStages] = {};
  double consumer_wait_s = 0;
  uint64_t view_annotations = 0;  ///< annotations cut to the views
  uint64_t instances = 0;         ///< instances in the batches' targets
  char error[512] = {0};
};

struct Measured {
  ChildResult r;
  double peak_rss_mb = 0;
  bool ran = false;
  std::string note;
};

/// VmRSS of this process (MiB), 0 when unknown.
double current_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return 0.0;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// The one-image dataset the pipeline variant samples: `image` (absolute
/// path as its file name) of width x height, no annotations; with
/// `annotations`, the categories of that file and the annotations of its
/// image record whose file name is `image`'s (the same base name), which
/// must have the TIFF's level-0 size.
io::CocoDataset bench_dataset(const std::string& image, int64_t width, int64_t height,
                              const std::string& annotations) {
  if (width > std::numeric_limits<int32_t>::max() || height > std::numeric_limits<int32_t>::max()) {
    throw InputError("bad_image_size", "the image is too large for a COCO image record",
                     Location{image, "", -1, "", ""});
  }
  io::CocoDataset out;
  const std::string path = fs::absolute(image).lexically_normal().string();
  io::ImageRecord im;
  im.id = 1;
  im.width = static_cast<int32_t>(width);
  im.height = static_cast<int32_t>(height);
  im.file_name = out.add_string(path);
  if (annotations.empty()) {
    out.images.push_back(im);
    out.rebuild_index();
    return out;
  }
  io::LoadOptions lo;
  lo.max_pixels = 0;  // a huge image is read by windows only
  const io::CocoDataset src = io::load_coco(annotations, lo);
  const std::string base = fs::path(image).filename().string();
  int64_t found = -1;
  for (size_t i = 0; i < src.images.size() && found < 0; ++i) {
    if (fs::path(std::string(src.file_name(src.images[i]))).filename().string() == base) found = int64_t(i);
  }
  if (found < 0) {
    throw InputError("unknown_image", "no image record has the file name " + base, Location{annotations, "images", -1, "", ""});
  }
  const io::ImageRecord& sim = src.images[size_t(found)];
  if (sim.width != width || sim.height != height) {
    throw InputError("image_size_mismatch",
                     "image id " + std::to_string(sim.id) + " is " + std::to_string(sim.width) + " x " +
                         std::to_string(sim.height) + " but " + image + " is " + std::to_string(width) + " x " +
                         std::to_string(height),
                     Location{annotations, "", -1, "image id " + std::to_string(sim.id), ""});
  }
  im.id = sim.id;
  out.images.push_back(im);
  io::copy_categories(src, out, /*keep_extra=*/false);
  for (const uint32_t ai : src.annotations_of(size_t(found))) {
    const io::AnnotationRecord& a = src.annotations[ai];
    io::AnnotationRecord n = a;
    n.extra = {};
    switch (a.seg_kind) {
      case io::SegmentationKind::kPolygons:
        for (size_t k = 0; k < src.num_parts(a); ++k) {
          const uint64_t part = out.add_part(src.polygon(a, k));
          if (k == 0) n.seg_begin = part;
        }
        break;
      case io::SegmentationKind::kRleCounts:
        n.seg_begin = out.add_counts(src.counts(a));
        break;
      case io::SegmentationKind::kRleString: {
        const io::StrRef r = out.add_string(src.rle_string(a));
        n.seg_begin = r.begin;
        n.seg_count = r.size;
        break;
      }
      case io::SegmentationKind::kNone:
        break;
    }
    out.annotations.push_back(n);
  }
  out.rebuild_index();
  return out;
}

/// The pipeline variant's config: every window a view, in grid order, each
/// batched at its own size (scale 1).
pipeline::PipelineConfig bench_config(const SlicesArgs& a) {
  pipeline::PipelineConfig c;
  c.seed = 0;
  c.slice.above = 1;  // every image sliced
  c.slice.size = a.size;
  c.slice.overlap = a.overlap;
  c.slice.keep_empty = 1.0;  // every window
  c.sampler.shuffle = false;  // grid order: neighbouring views share tiles in the cache
  c.raster.tile_cache_mb = a.cache_mb;
  // torchvision's resize: scale = min(min_size / short side, max_size / long
  // side) = 1 for a window whose long side is --size.
  c.batch.min_size = static_cast<int>(a.size);
  c.batch.max_size = static_cast<int>(a.size);
  c.loader.threads = a.threads;
  c.loader.batch_size = a.batch_size;
  c.loader.prefetch = a.prefetch;
  c.loader.inflight = a.inflight;
  c.loader.max_epochs = 1;
  c.derive();
  pipeline::validate_pipeline_config(c, "bench slices");
  return c;
}

uint64_t checksum_of(const cv::Mat& m) {
  // Touch every row (so nothing can be skipped) cheaply: one byte per 64.
  uint64_t s = 0;
  for (int y = 0; y < m.rows; ++y) {
    const uint8_t* p = m.ptr<uint8_t>(y);
    const size_t n = m.cols * m.elemSize();
    for (size_t i = 0; i < n; i += 64) s += p[i];
  }
  return s;
}

/// Runs `work` in a forked child; its result comes back through a pipe and
/// its peak RSS from wait4.
template <class Work>
Measured run_in_child(Work work) {
  Measured m;
  int fds[2];
  if (::pipe(fds) != 0) throw Error("io_error", std::string("pipe: ") + std::strerror(errno));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("io_error", std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(fds[0]);
    ChildResult r;
    try {
      work(r);
      r.ok = 1;
    } catch (const std::exception& e) {
      std::snprintf(r.error, sizeof r.error, "%s", e.what());
    }
    const char* p = reinterpret_cast<const char*>(&r);
    size_t left = sizeof r;
    while (left > 0) {
      const ssize_t n = ::write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  char* p = reinterpret_cast<char*>(&m.r);
  size_t got = 0;
  while (got < sizeof m.r) {
    const ssize_t n = ::read(fds[0], p + got, sizeof m.r - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  m.peak_rss_mb = double(ru.ru_maxrss) / 1024.0;
  m.ran = true;
  if (got != sizeof m.r) {
    m.r.ok = 0;
    m.note = WIFSIGNALED(status) ? "the child was killed by signal " + std::to_string(WTERMSIG(status))
                                 : "the child ended without a result";
  } else if (!m.r.ok) {
    m.note = m.r.error;
  }
  return m;
}

/// Runs argv (argv[0] a path) with extra environment entries; returns the
/// wall time, fills peak RSS (KiB) from wait4. stdout/stderr go to /dev/null
/// (stderr kept in `err_file` when given).
int spawn_wait(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra, double& seconds,
               long& maxrss_kb, const std::string& err_file) {
  std::vector<char*> av;
  for (const std::string& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    bool replaced = false;
    for (const std::string& x : env_extra) {
      if (std::strncmp(*e, x.c_str(), x.find('=') + 1) == 0) replaced = true;
    }
    if (!replaced) env_store.emplace_back(*e);
  }
  for (const std::string& x : env_extra) env_store.push_back(x);
  std::vector<char*> ev;
  for (std::string& e : env_store) ev.push_back(e.data());
  ev.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.empty() ? "/dev/null" : err_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const double t0 = now_s();
  const int rc = ::posix_spawnp(&pid, av[0], &fa, nullptr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  seconds = now_s() - t0;
  maxrss_kb = ru.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = dirs.find(':', start);
    const std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

/// Runs one vips command (through /usr/bin/time -f %M when present, so the
/// RSS is vips's own). Returns false with a note on failure.
bool run_vips(const std::string& vips, const std::vector<std::string>& args, int threads, double& seconds,
              double& rss_mb, std::string& note, const fs::path& tmp) {
  const std::string time_bin = ::access("/usr/bin/time", X_OK) == 0 ? "/usr/bin/time" : "";
  const fs::path rss_file = tmp / "rss.txt", err_file = tmp / "stderr.txt";
  std::vector<std::string> argv;
  if (!time_bin.empty()) argv = {time_bin, "-f", "%M", "-o", rss_file.string()};
  argv.push_back(vips);
  argv.insert(argv.end(), args.begin(), args.end());
  long maxrss_kb = 0;
  const int rc = spawn_wait(argv, {"VIPS_CONCURRENCY=" + std::to_string(threads)}, seconds, maxrss_kb,
                            err_file.string());
  if (rc != 0) {
    std::ifstream in(err_file);
    std::string first;
    std::getline(in, first);
    note = "vips " + args.front() + " failed (status " + std::to_string(rc) + ")" + (first.empty() ? "" : ": " + first);
    return false;
  }
  if (!time_bin.empty()) {
    std::ifstream in(rss_file);
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    try {
      maxrss_kb = std::stol(last);
    } catch (const std::exception&) {
    }
  }
  rss_mb = std::max(rss_mb, double(maxrss_kb) / 1024.0);
  return true;
}

void run_bench_slices(const SlicesArgs& a) {
  if (a.size < 16) throw ConfigError("bad_value", "--size must be >= 16");
  if (!(a.overlap >= 0.0 && a.overlap < 0.95)) throw ConfigError("bad_value", "--overlap must be in [0, 0.95)");
  if (a.threads < 1) throw ConfigError("bad_value", "--threads must be >= 1");
  if (a.batch_size < 1) throw ConfigError("bad_value", "--batch-size must be >= 1");
  if (a.size > 100000) throw ConfigError("bad_value", "--size must be <= 100000 (batch.max_size's range)");
  const StopOnSignal stop_on_signal;
  tune_allocator_for_pipeline();  // the pipeline commands' one policy; inherited by the forked variants

  raster::RasterConfig rc;
  rc.tile_cache_mb = a.cache_mb;
  int64_t width = 0, height = 0, tile_w = 0, tile_h = 0;
  int channels = 0;
  {
    const auto probe = raster::TiffFile::open(a.image, rc, nullptr);
    if (a.level < 0 || a.level >= int(probe->levels().size())) {
      throw ConfigError("bad_value", "--level must be 0.." + std::to_string(probe->levels().size() - 1));
    }
    const raster::Directory& d = probe->level(a.level);
    width = d.width;
    height = d.height;
    tile_w = d.block_width;
    tile_h = d.block_height;
    channels = d.channels;
  }
  if (a.level != 0) {
    throw ConfigError("bad_value", "--level must be 0: the pipeline samples views of the full-size image");
  }
  (void)bench_config(a);  // the pipeline's config errors before any child starts
  const std::vector<raster::Window> windows = slice::grid(width, height, a.size, a.size, a.overlap);
  double window_mpx = 0;
  uint64_t window_pixels = 0;
  for (const raster::Window& w : windows) {
    window_mpx += double(w.width) * double(w.height) / 1e6;
    window_pixels += uint64_t(w.width) * uint64_t(w.height);
  }
  const double image_mpx = double(width) * double(height) / 1e6;
  const double parent_rss = current_rss_mb();
  spdlog::info("{}: level {} of {} x {} px, {} channel(s), blocks {} x {}; {} windows of {} px (overlap {}), "
               "{:.0f} Mpx; {} threads",
               a.image, a.level, width, height, channels, tile_w, tile_h, windows.size(), a.size, a.overlap,
               window_mpx, a.threads);

  // (i) pasteflow, the whole pipeline to batches.
  const Measured pipe = run_in_child([&](ChildResult& r) {
    r.baseline_rss_mb = current_rss_mb();
    const double s0 = now_s();
    if (a.torch_threads > 0) at::set_num_threads(a.torch_threads);
    const io::CocoDataset ds = bench_dataset(a.image, width, height, a.annotations);
    const pipeline::PipelineConfig cfg = bench_config(a);
    const std::shared_ptr<const slice::SlicedDataset> views = pipeline::make_views(ds, cfg);
    pipeline::Loader loader(ds, views, cfg, pipeline::Output::kBatches);
    double mpx = 0;
    for (const io::ImageRecord& im : loader.dataset().images) mpx += double(im.width) * double(im.height) / 1e6;
    r.view_annotations = loader.dataset().annotations.size();
    r.setup_seconds = now_s() - s0;
    const double t0 = now_s();
    uint64_t slices = 0, batches = 0, sum = 0;
    while (std::optional<stages::Batch> b = loader.next_batch()) {
      if (stop_flag()->load()) throw std::runtime_error("interrupted");
      slices += b->targets.size();
      ++batches;
      for (const stages::Target& t : b->targets) {
        sum += uint64_t(t.image_size[0]) * uint64_t(t.image_size[1]);
        r.instances += uint64_t(t.labels.defined() ? t.labels.size(0) : 0);
      }
    }
    r.seconds = now_s() - t0;
    r.slices = slices;
    r.batches = batches;
    r.megapixels = mpx;
    r.checksum = sum;  // batched pixels: every window at scale 1
    const raster::TileCache::Stats st = loader.tile_cache();
    r.hit_rate = st.hit_rate();
    r.cache_peak_mb = double(st.peak_bytes) / 1048576.0;
    const pipeline::StageTimes times = loader.times();
    r.windows_read = times.windows_read;
    r.batch_tensors_allocated = times.batch_tensors_allocated;
    r.batch_tensors_reused = times.batch_tensors_reused;
    for (const pipeline::StageTimes::Counter& c : times.stages) {
      if (r.stages == ChildResult::kMaxStages) break;
      std::snprintf(r.stage_name[r.stages], sizeof r.stage_name[0], "%s", c.name.c_str());
      r.stage_seconds[r.stages++] = c.seconds;
    }
    r.consumer_wait_s = times.consumer_wait_s;
    r.end_rss_mb = current_rss_mb();
  });
  throw_if_interrupted("bench slices interrupted");
  if (!pipe.r.ok) throw Error("bench_failed", "the pipeline run failed: " + pipe.note);
  spdlog::info("pasteflow pipeline to batches: {:.2f} s ({:.2f} s set-up), {:.1f} Mpx/s, {:.1f} slices/s, "
               "{} batches, peak RSS {:.0f} MB (child baseline {:.0f} MB), tile cache hit rate {:.3f}",
               pipe.r.seconds, pipe.r.setup_seconds, pipe.r.megapixels / pipe.r.seconds,
               double(pipe.r.slices) / pipe.r.seconds, pipe.r.batches, pipe.peak_rss_mb, pipe.r.baseline_rss_mb,
               pipe.r.hit_rate);
  if (pipe.r.slices != windows.size()) {
    spdlog::warn("the pipeline delivered {} slices, the grid has {} windows", pipe.r.slices, windows.size());
  }

  // (i') pasteflow's window reader alone.
  const Measured mine = run_in_child([&](ChildResult& r) {
    r.baseline_rss_mb = current_rss_mb();
    raster::TiffPool pool(rc);
    const std::shared_ptr<raster::TiffFile> file = pool.open(a.image);
    std::atomic<uint64_t> sum{0};
    std::atomic<bool> stopped{false};
    tbb::task_arena arena(a.threads);
    const double t0 = now_s();
    // The workers take the windows in grid order from one counter, so they
    // read neighbouring windows at the same time (as a loader drawing views
    // in order would) and share the tiles of overlaps through the cache;
    // parallel_for's range splitting would send them to distant rows.
    std::atomic<size_t> next{0};
    arena.execute([&] {
      tbb::parallel_for(0, a.threads, [&](int) {
        for (size_t i = next++; i < windows.size(); i = next++) {
          if (stop_flag()->load()) {
            stopped = true;
            return;
          }
          const cv::Mat m = file->read_window(a.level, windows[i]);
          sum += checksum_of(m);
        }
      });
    });
    r.seconds = now_s() - t0;
    if (stopped) throw std::runtime_error("interrupted");
    r.slices = windows.size();
    r.megapixels = window_mpx;
    r.checksum = sum;
    const raster::TileCache::Stats st = pool.cache()->stats();
    r.hit_rate = st.hit_rate();
    r.cache_peak_mb = double(st.peak_bytes) / 1048576.0;
    r.tiles_decoded = file->blocks_decoded();
    r.end_rss_mb = current_rss_mb();
  });
  throw_if_interrupted("bench slices interrupted");
  if (!mine.r.ok) throw Error("bench_failed", "the pasteflow window reads failed: " + mine.note);
  spdlog::info("pasteflow reader: {:.2f} s, {:.1f} Mpx/s, {:.1f} slices/s, peak RSS {:.0f} MB, tile cache hit rate {:.3f}",
               mine.r.seconds, mine.r.megapixels / mine.r.seconds, double(mine.r.slices) / mine.r.seconds,
               mine.peak_rss_mb, mine.r.hit_rate);

  // (ii) libvips.
  double vips_seconds = 0, vips_rss = 0, vips_mpx = 0;
  bool vips_ok = false;
  std::string vips_note;
  const std::string vips = find_on_path("vips");
  if (a.no_vips) {
    vips_note = "--no-vips";
  } else if (vips.empty()) {
    vips_note = "vips is not on PATH (Debian: apt-get install libvips-tools)";
  } else {
    // A fresh directory of this run's own (mkdtemp), so that the cleanup
    // below never removes anything another process made.
    std::string tmp_template = (fs::temp_directory_path() / "pasteflow-bench-slices-XXXXXX").string();
    if (::mkdtemp(tmp_template.data()) == nullptr) {
      Location where;
      where.file = tmp_template;
      throw Error("io_error", "cannot create a temporary directory for vips: " + std::string(std::strerror(errno)),
                  where);
    }
    const fs::path tmp = tmp_template;
    // vips addresses pyramid pages of a TIFF with [page=N].
    const std::string input = a.image + (a.level > 0 ? "[page=" + std::to_string(a.level) + "]" : "");
    if (a.vips_method != "crop") {
      vips_ok = run_vips(vips, {a.vips_method, input}, a.threads, vips_seconds, vips_rss, vips_note, tmp);
      vips_mpx = image_mpx;
    } else {
      vips_ok = true;
      for (size_t i = 0; i < windows.size() && vips_ok; ++i) {
        if (stop_flag()->load()) break;
        const raster::Window& w = windows[i];
        const fs::path out = tmp / "window.v";
        double s = 0;
        vips_ok = run_vips(vips,
                           {"crop", input, out.string(), std::to_string(w.x), std::to_string(w.y),
                            std::to_string(w.width), std::to_string(w.height)},
                           a.threads, s, vips_rss, vips_note, tmp);
        vips_seconds += s;
        std::error_code ec;
        fs::remove(out, ec);
      }
      vips_mpx = window_mpx;
    }
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw_if_interrupted("bench slices interrupted");
    if (vips_ok) {
      spdlog::info("vips {}: {:.2f} s, {:.1f} Mpx/s, peak RSS {:.0f} MB", a.vips_method, vips_seconds,
                   vips_mpx / vips_seconds, vips_rss);
    } else {
      spdlog::warn("{}", vips_note);
    }
  }

  // (iii) whole decode, then crops.
  const double whole_mb = double(width) * double(height) * channels / 1048576.0;
  Measured whole;
  std::string whole_note;
  if (whole_mb > a.max_whole_mb) {
    whole_note = "the decoded level (" + std::to_string(int64_t(whole_mb)) + " MB) is above --max-whole-mb " +
                 std::to_string(int64_t(a.max_whole_mb)) + ": not decoded whole";
  } else {
    whole = run_in_child([&](ChildResult& r) {
      raster::RasterConfig wc = rc;
      wc.max_window_pixels = 0;
      wc.tile_cache_mb = 0;
      const std::shared_ptr<raster::TiffFile> file = raster::TiffFile::open(a.image, wc, nullptr);
      const double t0 = now_s();
      const cv::Mat full = file->read_level(a.level);
      uint64_t sum = 0;
      for (const raster::Window& w : windows) {
        if (stop_flag()->load()) throw std::runtime_error("interrupted");
        const cv::Mat crop =
            full(cv::Rect(int(w.x), int(w.y), int(w.width), int(w.height))).clone();  // SAHI: a slice copy
        sum += checksum_of(crop);
      }
      r.seconds = now_s() - t0;
      r.slices = windows.size();
      r.megapixels = window_mpx;
      r.checksum = sum;
    });
    throw_if_interrupted("bench slices interrupted");
    if (!whole.r.ok) {
      whole_note = "whole decode failed: " + whole.note;
    } else {
      spdlog::info("whole decode + crops: {:.2f} s, {:.1f} Mpx/s, peak RSS {:.0f} MB", whole.r.seconds,
                   whole.r.megapixels / whole.r.seconds, whole.peak_rss_mb);
      if (whole.r.checksum != mine.r.checksum) {
        spdlog::warn("checksums differ between the window reads and the whole decode ({} vs {})", mine.r.checksum,
                     whole.r.checksum);
      }
    }
  }

  const double mpx_s = pipe.r.megapixels / pipe.r.seconds;
  const double reader_mpx_s = mine.r.megapixels / mine.r.seconds;
  JsonWriter w(2);
  w.begin_object();
  w.field("image", a.image).field("level", a.level).field("width", width).field("height", height);
  w.field("channels", channels).field("block_width", tile_w).field("block_height", tile_h);
  w.field("slice_size", a.size).field("overlap", a.overlap).field("threads", a.threads);
  w.field("batch_size", a.batch_size).field("prefetch", a.prefetch).field("inflight", a.inflight);
  w.field("torch_threads", a.torch_threads);
  w.field("annotations", a.annotations);
  // The keys: the whole pipeline to batches.
  w.field("slices", pipe.r.slices).field("batches", pipe.r.batches).field("megapixels", pipe.r.megapixels);
  w.field("batched_pixels_match", pipe.r.slices == windows.size() && pipe.r.checksum == window_pixels);
  w.field("seconds", pipe.r.seconds).field("setup_seconds", pipe.r.setup_seconds);
  w.field("slices_per_s", double(pipe.r.slices) / pipe.r.seconds).field("megapixels_per_s", mpx_s);
  w.field("peak_rss_mb", pipe.peak_rss_mb).field("baseline_rss_mb", pipe.r.baseline_rss_mb);
  w.field("parent_rss_mb", parent_rss);
  w.field("tile_cache_mb", a.cache_mb).field("tile_cache_hit_rate", pipe.r.hit_rate);
  w.field("tile_cache_peak_mb", pipe.r.cache_peak_mb).field("end_rss_mb", pipe.r.end_rss_mb);
  w.field("windows_read", pipe.r.windows_read);
  w.field("batch_tensors_allocated", pipe.r.batch_tensors_allocated);
  w.field("batch_tensors_reused", pipe.r.batch_tensors_reused);
  w.field("view_annotations", pipe.r.view_annotations).field("instances", pipe.r.instances);
  w.key("stage_seconds").begin_object();
  for (int i = 0; i < pipe.r.stages; ++i) w.field(pipe.r.stage_name[i], pipe.r.stage_seconds[i]);
  w.end_object();
  w.field("consumer_wait_s", pipe.r.consumer_wait_s);
  // The window reader alone.
  w.field("reader_slices", mine.r.slices).field("reader_seconds", mine.r.seconds);
  w.field("reader_slices_per_s", double(mine.r.slices) / mine.r.seconds);
  w.field("reader_megapixels_per_s", reader_mpx_s);
  w.field("reader_peak_rss_mb", mine.peak_rss_mb).field("reader_baseline_rss_mb", mine.r.baseline_rss_mb);
  w.field("reader_tile_cache_hit_rate", mine.r.hit_rate).field("reader_tiles_decoded", mine.r.tiles_decoded);
  w.field("reader_tile_cache_peak_mb", mine.r.cache_peak_mb).field("reader_end_rss_mb", mine.r.end_rss_mb);
  w.field("vips_method", a.vips_method);
  if (vips_ok) {
    w.field("vips_megapixels", vips_mpx).field("vips_seconds", vips_seconds);
    w.field("vips_megapixels_per_s", vips_mpx / vips_seconds).field("vips_peak_rss_mb", vips_rss);
    w.field("ratio_vs_vips", mpx_s / (vips_mpx / vips_seconds));
    w.field("reader_ratio_vs_vips", reader_mpx_s / (vips_mpx / vips_seconds));
  } else {
    w.key("vips_megapixels_per_s").null();
    w.key("vips_peak_rss_mb").null();
    w.key("ratio_vs_vips").null();
    w.key("reader_ratio_vs_vips").null();
    w.field("vips_note", vips_note);
  }
  if (whole.ran && whole.r.ok) {
    const double whole_mpx_s = whole.r.megapixels / whole.r.seconds;
    w.field("whole_decode_seconds", whole.r.seconds);
    w.field("whole_decode_megapixels_per_s", whole_mpx_s).field("ratio_vs_whole_decode", mpx_s / whole_mpx_s);
    w.field("reader_ratio_vs_whole_decode", reader_mpx_s / whole_mpx_s);
    w.field("whole_decode_peak_rss_mb", whole.peak_rss_mb);
    w.field("checksums_match", whole.r.checksum == mine.r.checksum);
  } else {
    w.key("whole_decode_megapixels_per_s").null();
    w.key("ratio_vs_whole_decode").null();
    w.key("reader_ratio_vs_whole_decode").null();
    w.key("whole_decode_peak_rss_mb").null();
    w.field("whole_decode_note", whole_note);
  }
  w.end_object();
  print_stdout(w.str());  // the JSON is the result, --json or not (logs are on stderr)
}

}  // namespace

void add_bench_slices_command(CLI::App& bench) {
  auto a = std::make_shared<SlicesArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "slices",
      "Every SAHI grid window of a huge TIFF through pasteflow's whole pipeline to batches (every window a view, "
      "grid order, --threads loader threads, one shared tile cache, batches at the slice's size), by pasteflow's "
      "window reader alone, by libvips, and by a whole-image decode followed by crops, each in its own child "
      "process: prints JSON {megapixels, slices_per_s, megapixels_per_s, peak_rss_mb, tile_cache_hit_rate, "
      "vips_megapixels_per_s, ratio_vs_vips, ...} for the pipeline (ratio_vs_vips and ratio_vs_whole_decode are "
      "the pipeline's), the same prefixed reader_ for the reader alone (reader_megapixels_per_s, "
      "reader_peak_rss_mb, reader_tile_cache_hit_rate, reader_ratio_vs_vips), whole_decode_megapixels_per_s, "
      "whole_decode_peak_rss_mb; peak RSS is the child's, baseline_rss_mb its RSS before the run");
  cmd->add_option("--image", a->image, "TIFF file (tiled or striped, any size)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--size", a->size, "slice width and height, px")->capture_default_str();
  cmd->add_option("--overlap", a->overlap, "overlap ratio of neighbouring slices")->capture_default_str();
  cmd->add_option("--threads", a->threads, "loader threads (loader.threads), reader threads and VIPS_CONCURRENCY")->capture_default_str();
  cmd->add_option("--level", a->level, "pyramid level (only 0, the full size, is supported)")->capture_default_str();
  cmd->add_option("--annotations", a->annotations,
                  "COCO file with the image's annotations (its record with the TIFF's file name): the pipeline "
                  "cuts them to every view (default: no annotations)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch-size", a->batch_size, "images per batch (loader.batch_size)")->capture_default_str();
  cmd->add_option("--prefetch", a->prefetch, "batches ready or in preparation at most (loader.prefetch)")
      ->capture_default_str();
  cmd->add_option("--inflight", a->inflight, "samples inside the graph at most (loader.inflight)")
      ->capture_default_str();
  cmd->add_option("--torch-threads", a->torch_threads,
                  "at::set_num_threads in the pipeline's child (0 = LibTorch's default)")
      ->capture_default_str();
  cmd->add_option("--cache-mb", a->cache_mb, "MiB of the shared tile cache")->capture_default_str();
  cmd->add_option("--max-whole-mb", a->max_whole_mb,
                  "largest decoded level (MiB) the whole-decode variant attempts; above it: null and a note")
      ->capture_default_str();
  cmd->add_option("--vips-method", a->vips_method,
                  "max / avg: one `vips max` (`vips avg`) over the level (every pixel decoded once); crop: one `vips crop` "
                  "per window")
      ->check(CLI::IsMember({"max", "avg", "crop"}))
      ->capture_default_str();
  cmd->add_flag("--no-vips", a->no_vips, "skip the libvips variant");
  cmd->add_flag("--json", a->json, "print the JSON only (it is printed on stdout either way)");
  cmd->callback([a] { run_bench_slices(*a); });
}

}  // namespace pasteflow::cli
