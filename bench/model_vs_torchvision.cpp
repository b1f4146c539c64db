// model_vs_torchvision: our LibTorch Mask R-CNN against torchvision's on the
// same inputs, in one run. Not a test: prints figures only.
//
//   model_vs_torchvision [--iters N] [--threads T] [--side both|ours|torchvision]
//                        (ours: the Python side only makes the weights)
//                        [--ours fp32,fp32_cl,bf16,bf16_cl] [--torchvision fp32,bf16_cl]
//                        [--python /usr/bin/python3] [--script bench/model_vs_torchvision.py] [--dir DIR]
//
// Settings (each its own copy of the model and optimizer, all from the same
// weights): fp32 (NCHW), fp32_cl (model.channels_last), bf16 (solver.amp
// bf16: LibTorch's CPU autocast), bf16_cl (both); torchvision's fp32 and
// bf16_cl (torch.autocast("cpu", torch.bfloat16) + channels-last, with the
// fp32 rule for its roi_align / nms that torchvision 0.14 lacks on CPU; see
// the script).
//
// The model: ResNet-50-FPN Mask R-CNN with torchvision's defaults (num_classes
// 91, FrozenBatchNorm2d, 3 trainable layers), min_size 512, max_size 853,
// random weights made by the Python side (torch.manual_seed(0), frozen BN
// statistics calibrated on the batch, class-score weights scaled so that eval
// has confident detections and runs the mask branch and mask pasting, divided
// back on both sides before training; see the script) and loaded strictly by
// ours (model::load_weights). The batch: two
// synthetic RGB images (480x640 and 427x640, so the batch is padded) with 8
// elliptic objects each (boxes = the masks' extents, labels 1..90), generated
// here by a fixed formula and written as raw arrays to a temporary directory
// that the Python side (model_vs_torchvision.py, run with /usr/bin/python3)
// reads: both sides see identical pixels and targets.
//
// Each side, with T intra-op threads (torch.set_num_threads / at::set_num_threads):
// eval mode (no gradients) on the batch, a warm-up call and N timed ones;
// then training mode, a warm-up iteration and N timed iterations of forward +
// backward + SGD step (lr 0.0025 = torchvision's reference 0.02 at 16 images
// scaled to 2, momentum 0.9, weight decay 1e-4, gradients reset to None).
// The Python side stays alive and serves one call at a time, so the two
// models alternate call by call (torchvision, ours, torchvision, ...) and
// never compete for the cores; a change of machine load hits both. The
// samplers are random on both sides (as in training), so the sampled RoIs
// differ but their numbers do not.
//
// The last stdout line is JSON:
//   {"ours_s_per_iter": x, "torchvision_s_per_iter": y, "ratio": x / y,
//    "ours_eval_images_per_s": ..., "torchvision_eval_images_per_s": ...,
//    (the fp32 NCHW settings, as before settings existed)
//    "ours_<setting>_s_per_iter": ..., "ours_<setting>_eval_images_per_s": ...,
//    "torchvision_<setting>_s_per_iter": ..., "torchvision_<setting>_eval_images_per_s": ...,
//    "ours_best_s_per_iter": ..., "ours_best_setting": "...",
//    "torchvision_fp32_s_per_iter": ..., "torchvision_best_s_per_iter": ...,
//    "torchvision_best_setting": "...",
//    "best_vs_torchvision_fp32": ours best / torchvision fp32 (train step),
//    "best_vs_torchvision_best": ours best / torchvision best,
//    "ours_best_eval_images_per_s": ..., "ours_best_eval_setting": "...",
//    "best_eval_vs_torchvision_fp32": ours best eval images/s / torchvision fp32's}
// (per-iteration figures are means over the N timed iterations; a side or
// setting not run reports 0 and its ratios 0).
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/sgd.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/model/weights.hpp"

namespace fs = std::filesystem;
using pasteflow::model::MaskRCNN;
using pasteflow::model::ModelConfig;
using pasteflow::model::Target;

namespace {

constexpr double kClsScale = 30.0;  // eval only: random class scores are ~1/91, under the 0.05 threshold
constexpr double kLr = 0.0025;  // torchvision's reference lr 0.02 for 16 images, scaled to 2

struct Args {
  int iters = 3;
  int threads = 2;
  std::string side = "both";
  std::vector<std::string> ours{"fp32", "fp32_cl", "bf16", "bf16_cl"};
  std::vector<std::string> torchvision{"fp32", "bf16_cl"};
  std::string python = "/usr/bin/python3";
  std::string script = PASTEFLOW_BENCH_SCRIPT;
  std::string dir;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: model_vs_torchvision [--iters N] [--threads T] [--side both|ours|torchvision] "
               "[--ours fp32,fp32_cl,bf16,bf16_cl] [--torchvision fp32,bf16_cl] "
               "[--python PATH] [--script PATH] [--dir DIR]\n",
               msg);
  std::exit(2);
}

std::vector<std::string> split_list(const std::string& text, const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (std::find(allowed.begin(), allowed.end(), item) == allowed.end()) usage(("unknown setting " + item).c_str());
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + k).c_str());
      return argv[++i];
    };
    if (k == "--iters") {
      a.iters = std::atoi(value().c_str());
    } else if (k == "--threads") {
      a.threads = std::atoi(value().c_str());
    } else if (k == "--side") {
      a.side = value();
    } else if (k == "--ours") {
      a.ours = split_list(value(), {"fp32", "fp32_cl", "bf16", "bf16_cl"});
    } else if (k == "--torchvision") {
      a.torchvision = split_list(value(), {"fp32", "bf16_cl"});
    } else if (k == "--python") {
      a.python = value();
    } else if (k == "--script") {
      a.script = value();
    } else if (k == "--dir") {
      a.dir = value();
    } else {
      usage(("unknown argument " + k).c_str());
    }
  }
  if (a.iters < 1 || a.threads < 1) usage("--iters and --threads must be >= 1");
  if (a.side != "both" && a.side != "ours" && a.side != "torchvision") usage("bad --side");
  return a;
}

/// A deterministic 32-bit hash (the same formula makes the same inputs on every run).
uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
double unit(uint32_t seed) { return static_cast<double>(mix(seed)) / 4294967296.0; }

struct BenchImage {
  int64_t h = 0, w = 0;
  at::Tensor pixels;  ///< uint8 [H, W, 3]
  Target target;      ///< boxes, labels, masks in the image's frame
};

/// Smooth colour gradients, per-pixel noise and 8 filled ellipses (the objects).
BenchImage make_image(int index, int64_t h, int64_t w) {
  BenchImage im;
  im.h = h;
  im.w = w;
  im.pixels = at::empty({h, w, 3}, at::kByte);
  uint8_t* p = im.pixels.data_ptr<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        const double g =
            0.5 + 0.4 * std::sin(0.013 * (c + 1) * static_cast<double>(x) + 0.021 * static_cast<double>(y) + index);
        const double n = unit(static_cast<uint32_t>(((index * h + y) * w + x) * 3 + c)) - 0.5;
        p[(y * w + x) * 3 + c] = static_cast<uint8_t>(std::lround(std::clamp(255.0 * g + 40.0 * n, 0.0, 255.0)));
      }
    }
  }
  constexpr int kObjects = 8;
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  at::Tensor masks = at::zeros({kObjects, h, w}, at::kByte);
  for (int k = 0; k < kObjects; ++k) {
    const uint32_t s = static_cast<uint32_t>(1000 * (index + 1) + 10 * k);
    const double rx = 8.0 + 90.0 * unit(s + 1), ry = 8.0 + 90.0 * unit(s + 2);
    const double cx = rx + (static_cast<double>(w) - 2 * rx) * unit(s + 3);
    const double cy = ry + (static_cast<double>(h) - 2 * ry) * unit(s + 4);
    const uint8_t colour[3] = {static_cast<uint8_t>(mix(s + 5)), static_cast<uint8_t>(mix(s + 6)),
                               static_cast<uint8_t>(mix(s + 7))};
    uint8_t* m = masks[k].data_ptr<uint8_t>();
    int64_t x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const double dx = (static_cast<double>(x) + 0.5 - cx) / rx, dy = (static_cast<double>(y) + 0.5 - cy) / ry;
        if (dx * dx + dy * dy > 1.0) continue;
        m[y * w + x] = 1;
        for (int c = 0; c < 3; ++c) p[(y * w + x) * 3 + c] = colour[c];
        x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
      }
    }
    boxes.insert(boxes.end(), {static_cast<float>(x0), static_cast<float>(y0), static_cast<float>(x1 + 1),
                               static_cast<float>(y1 + 1)});
    labels.push_back(1 + static_cast<int64_t>(mix(s + 8) % 90));
  }
  im.target.boxes = at::from_blob(boxes.data(), {kObjects, 4}, at::kFloat).clone();
  im.target.labels = at::from_blob(labels.data(), {kObjects}, at::kLong).clone();
  im.target.masks = masks;
  return im;
}

void write_raw(const fs::path& path, const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

std::string list(const std::vector<double>& v) {
  std::ostringstream o;
  o.precision(3);
  o << std::fixed;
  for (size_t i = 0; i < v.size(); ++i) o << (i ? " " : "") << v[i];
  return o.str();
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct SideTimes {
  std::vector<double> train_s, eval_s;
};

/// The number after `"key": ` in a JSON line of the Python side (NaN when absent).
double json_number(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return std::nan("");
  return std::strtod(json.c_str() + at + key.size() + 4, nullptr);
}

/// The Python side as a child process answering one command per line.
class PythonSide {
 public:
  explicit PythonSide(const std::vector<std::string>& argv) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) fail("pipe");
    pid_ = fork();
    if (pid_ < 0) fail("fork");
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      std::vector<char*> args;
      for (const std::string& s : argv) args.push_back(const_cast<char*>(s.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
  }
  ~PythonSide() {
    if (to_ != nullptr) {
      std::fputs("quit\n", to_);
      std::fclose(to_);
    }
    if (from_ != nullptr) std::fclose(from_);
    int status = 0;
    if (pid_ > 0) waitpid(pid_, &status, 0);
  }
  PythonSide(const PythonSide&) = delete;
  PythonSide& operator=(const PythonSide&) = delete;

  /// The next line of its stdout; exits the bench when the child ended.
  std::string line() {
    std::string s;
    int c = 0;
    while ((c = std::fgetc(from_)) != EOF && c != '\n') s.push_back(static_cast<char>(c));
    if (c == EOF && s.empty()) fail("the torchvision side ended early (see its stderr above)");
    return s;
  }
  std::string request(const std::string& command) {
    std::fputs((command + "\n").c_str(), to_);
    std::fflush(to_);
    return line();
  }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    std::fprintf(stderr, "model_vs_torchvision: %s\n", what.c_str());
    std::exit(1);
  }
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

/// Our side: the same batch, the same optimizer settings.
class OursSide {
 public:
  OursSide(const ModelConfig& cfg, const std::string& weights, const std::vector<BenchImage>& batch, double cls_scale,
           const std::string& setting)
      : net_(cfg), cls_scale_(cls_scale) {
    pasteflow::model::load_weights(*net_, weights);
    // What solver.amp and model.channels_last set in the trainer.
    net_->set_channels_last(setting.find("_cl") != std::string::npos);
    net_->set_amp(setting.rfind("bf16", 0) == 0 ? pasteflow::model::Amp::kBf16 : pasteflow::model::Amp::kOff);
    for (const BenchImage& im : batch) {
      images_.push_back(im.pixels.permute({2, 0, 1}).contiguous().to(at::kFloat) / 255);
      targets_.push_back(im.target);
    }
    for (const auto& p : net_->parameters()) {
      if (p.requires_grad()) params_.push_back(p);
    }
    opt_ = std::make_unique<torch::optim::SGD>(params_, torch::optim::SGDOptions(kLr).momentum(0.9).weight_decay(1e-4));
  }
  /// Seconds of one eval-mode forward; `detections` per image.
  double eval(std::vector<int64_t>& detections) {
    net_->eval();
    torch::NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = net_->forward(images_);
    const double dt = since(t0);
    detections.clear();
    for (const auto& d : out.detections) detections.push_back(d.boxes.size(0));
    return dt;
  }
  /// Seconds of one forward + backward + SGD step; `losses` of the forward
  /// and the seconds of the three parts (forward_s, backward_s, step_s).
  double train(std::map<std::string, double>& losses) {
    if (!trained_) {  // as the Python side: training starts from the unscaled class scores
      torch::NoGradGuard no_grad;
      net_->roi_heads->named_parameters()["box_predictor.cls_score.weight"].div_(cls_scale_);
      trained_ = true;
    }
    net_->train();
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = net_->forward(images_, targets_);
    at::Tensor loss;
    for (const auto& [name, v] : out.losses) loss = loss.defined() ? loss + v : v;
    const double forward_s = since(t0);
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
    loss.backward();
    const double backward_s = since(t0) - forward_s;
    opt_->step();
    const double dt = since(t0);
    losses.clear();
    losses["forward_s"] = forward_s;
    losses["backward_s"] = backward_s;
    losses["step_s"] = dt - forward_s - backward_s;
    for (const auto& [name, v] : out.losses) losses[name] = v.item<double>();
    return dt;
  }

 private:
  MaskRCNN net_;
  double cls_scale_;
  bool trained_ = false;
  std::vector<at::Tensor> images_;
  std::vector<Target> targets_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<torch::optim::SGD> opt_;
};

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  at::set_num_threads(a.threads);

  fs::path dir = a.dir;
  bool remove_dir = false;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "model_vs_torchvision_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    remove_dir = true;
  }
  fs::create_directories(dir);

  ModelConfig cfg;  // torchvision's maskrcnn_resnet50_fpn defaults
  cfg.transform.min_size = {512};
  cfg.transform.max_size = 853;
  const fs::path weights = dir / "weights.pt";

  std::vector<BenchImage> batch{make_image(0, 480, 640), make_image(1, 427, 640)};
  std::ostringstream manifest;
  manifest << "{\"weights\": \"" << weights.string() << "\", \"cls_scale\": " << kClsScale
           << ", \"kwargs\": {\"min_size\": " << cfg.transform.min_size[0]
           << ", \"max_size\": " << cfg.transform.max_size << "}, \"images\": [";
  for (size_t i = 0; i < batch.size(); ++i) {
    const BenchImage& im = batch[i];
    const std::string s = std::to_string(i);
    write_raw(dir / ("img" + s + ".u8"), im.pixels);
    write_raw(dir / ("boxes" + s + ".f32"), im.target.boxes);
    write_raw(dir / ("labels" + s + ".i64"), im.target.labels);
    write_raw(dir / ("masks" + s + ".u8"), im.target.masks);
    manifest << (i ? ", " : "") << "{\"height\": " << im.h << ", \"width\": " << im.w
             << ", \"n\": " << im.target.labels.size(0) << ", \"pixels\": \"img" << s << ".u8\", \"boxes\": \"boxes"
             << s << ".f32\", \"labels\": \"labels" << s << ".i64\", \"masks\": \"masks" << s << ".u8\"}";
  }
  manifest << "]}\n";
  std::ofstream(dir / "manifest.json") << manifest.str();

  // One entry per (side, setting), in the order calls alternate.
  struct Run {
    bool torchvision = false;
    std::string setting;
    std::unique_ptr<OursSide> ours;
    SideTimes times;
    std::string name() const { return std::string(torchvision ? "torchvision" : "ours") + "_" + setting; }
  };
  std::vector<Run> runs;
  {
    std::vector<std::string> py{a.python, a.script, dir.string(), "--threads", std::to_string(a.threads)};
    if (a.side == "ours") py.push_back("--prepare-only");
    PythonSide python(py);
    std::string line;
    while ((line = python.line()) != "ready") std::fprintf(stderr, "torchvision: %s\n", line.c_str());
    // fp32 pairs first, then the channels-last / bf16 ones.
    auto add_tv = [&](const std::string& setting) {
      if (a.side == "ours") return;
      if (std::find(a.torchvision.begin(), a.torchvision.end(), setting) == a.torchvision.end()) return;
      runs.push_back(Run{true, setting, nullptr, {}});
    };
    auto add_ours = [&](const std::string& setting) {
      if (a.side == "torchvision") return;
      if (std::find(a.ours.begin(), a.ours.end(), setting) == a.ours.end()) return;
      runs.push_back(Run{false, setting, std::make_unique<OursSide>(cfg, weights.string(), batch, kClsScale, setting), {}});
    };
    add_tv("fp32");
    add_ours("fp32");
    add_ours("fp32_cl");
    add_tv("bf16_cl");
    add_ours("bf16");
    add_ours("bf16_cl");

    // Eval first (every copy on the identical initial weights), then
    // training; the copies alternate call by call so that load changes hit all.
    for (const char* mode : {"eval", "train"}) {
      const bool train = std::strcmp(mode, "train") == 0;
      for (int it = 0; it <= a.iters; ++it) {
        const char* tag = it == 0 ? "warm-up" : "timed";
        for (Run& run : runs) {
          double dt = 0;
          std::ostringstream o;
          if (run.torchvision) {
            const std::string r = python.request(std::string(mode) + " " + run.setting);
            dt = json_number(r, train ? "train_s" : "eval_s");
            if (!std::isfinite(dt)) {
              std::fprintf(stderr, "bad reply from the torchvision side: %s\n", r.c_str());
              return 1;
            }
            o << " " << r;
          } else if (train) {
            std::map<std::string, double> losses;
            dt = run.ours->train(losses);
            for (const auto& [k, v] : losses) o << " " << k << " " << v;
          } else {
            std::vector<int64_t> dets;
            dt = run.ours->eval(dets);
            o << " detections";
            for (int64_t n : dets) o << " " << n;
          }
          if (it > 0) (train ? run.times.train_s : run.times.eval_s).push_back(dt);
          std::fprintf(stderr, "%-20s %s %s %.3f s:%s\n", run.name().c_str(), mode, tag, dt, o.str().c_str());
        }
      }
    }
  }
  for (const Run& run : runs) {
    std::printf("%-20s train s/iter %s; eval s/batch %s\n", run.name().c_str(), list(run.times.train_s).c_str(),
                list(run.times.eval_s).c_str());
  }
  if (remove_dir) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  const double images = static_cast<double>(batch.size());
  auto find = [&](bool torchvision, const std::string& setting) -> const Run* {
    for (const Run& r : runs) {
      if (r.torchvision == torchvision && r.setting == setting) return &r;
    }
    return nullptr;
  };
  auto train_s = [&](const Run* r) { return r ? mean(r->times.train_s) : 0.0; };
  auto eval_ips = [&](const Run* r) {
    const double e = r ? mean(r->times.eval_s) : 0.0;
    return e > 0 ? images / e : 0.0;
  };
  auto ratio = [](double x, double y) { return (x > 0 && y > 0) ? x / y : 0.0; };
  // Best = fastest train step / most eval images per second of each side.
  std::string ours_best, tv_best, ours_best_eval;
  for (const Run& r : runs) {
    std::string& best = r.torchvision ? tv_best : ours_best;
    if (best.empty() || train_s(&r) < train_s(find(r.torchvision, best))) best = r.setting;
    if (!r.torchvision && (ours_best_eval.empty() || eval_ips(&r) > eval_ips(find(false, ours_best_eval)))) {
      ours_best_eval = r.setting;
    }
  }
  const double x = train_s(find(false, "fp32")), y = train_s(find(true, "fp32"));
  const double ob = train_s(find(false, ours_best)), tb = train_s(find(true, tv_best));
  const double obe = eval_ips(find(false, ours_best_eval));
  std::ostringstream json;
  json.precision(4);
  json << std::fixed << "{\"ours_s_per_iter\": " << x << ", \"torchvision_s_per_iter\": " << y
       << ", \"ratio\": " << ratio(x, y) << ", \"ours_eval_images_per_s\": " << eval_ips(find(false, "fp32"))
       << ", \"torchvision_eval_images_per_s\": " << eval_ips(find(true, "fp32"));
  for (const Run& r : runs) {
    json << ", \"" << r.name() << "_s_per_iter\": " << train_s(&r) << ", \"" << r.name()
         << "_eval_images_per_s\": " << eval_ips(&r);
  }
  // torchvision_fp32_s_per_iter is among the per-setting keys when that setting ran.
  if (find(true, "fp32") == nullptr) json << ", \"torchvision_fp32_s_per_iter\": " << y;
  json << ", \"ours_best_s_per_iter\": " << ob << ", \"ours_best_setting\": \"" << ours_best << "\""
       << ", \"torchvision_best_s_per_iter\": " << tb
       << ", \"torchvision_best_setting\": \"" << tv_best << "\""
       << ", \"best_vs_torchvision_fp32\": " << ratio(ob, y) << ", \"best_vs_torchvision_best\": " << ratio(ob, tb)
       << ", \"ours_best_eval_images_per_s\": " << obe << ", \"ours_best_eval_setting\": \"" << ours_best_eval << "\""
       << ", \"best_eval_vs_torchvision_fp32\": " << ratio(obe, eval_ips(find(true, "fp32"))) << "}";
  std::printf("%s\n", json.str().c_str());
  return 0;
}
