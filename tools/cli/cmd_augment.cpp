// pasteflow augment: the paper's offline mode. Every image's copies (the
// sampler's materialised list, repeated --copies times) are run through the
// pipeline once and written out as a new COCO dataset.
//
// Output scheme (OUT/images/ and OUT/annotations.json):
//  - the first delivered copy of an image that is not augmented is the
//    "original": same image id, same file name, its annotation records
//    written back unchanged (extras included), and its file copied byte for
//    byte;
//  - every other copy (augmented, or an extra oversampling copy) is a new
//    image: id = (largest image id of the input) + 1, + 2, ... in output
//    order, file name <stem>_pf<k><ext> beside the original's (k = 1, 2, ...
//    per source image, skipping names already taken), the source image's
//    extras plus "source_image_id". A copy whose pixels did not change (not
//    augmented, or nothing could be pasted) is the original file's bytes
//    with the original extension; a changed one is encoded as --format
//    (jpg at --quality, or lossless png; 16-bit images always png).
//  - annotations of a new image: each original object still present is a
//    copy of its record with a new id (above every id in use, see below),
//    the new image_id and "source_id" = the original annotation id; an
//    object trimmed by an overlapping paste (allow_overlap) gets its
//    remaining mask as compressed RLE with area and bbox from that mask;
//    objects removed as occluded are left out. Pasted objects get the
//    pipeline's ids (largest input annotation id + 1 + seq * ids_per_sample
//    + paste index), a compressed RLE segmentation, area = mask area, bbox
//    = mask bbox, iscrowd 0, "pasted": true and "source_id".
// Copies of original records are numbered from (largest input annotation id)
// + 1 + tickets * ids_per_sample, above every pasted id, so all ids are unique.
//
// Files: each image is written to a temporary name and renamed; the
// annotations are written last with io::write_coco (atomic). When the run
// fails, the images it wrote are removed and no annotations.json is left.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <simdjson.h>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/stages/decode.hpp"
#include "pasteflow/stages/instances.hpp"
#include "pipeline_args.hpp"

namespace pasteflow::cli {

namespace fs = std::filesystem;

namespace {

struct AugmentArgs {
  PipelineArgs pipe;
  std::string out;
  int copies = 1;
  std::string format = "jpg";
  int quality = 95;
  bool overwrite = false;
};

/// Keys this command writes into records' extras; an input that already
/// has them (an augmented dataset augmented again) gets them replaced.
const std::set<std::string>& own_keys() {
  static const std::set<std::string> keys = {"pasted", "source_id", "source_image_id"};
  return keys;
}

/// A record's raw extras (`"k":v,...`) without own_keys(), then `more`.
io::StrRef extend_extra(io::CocoDataset& out, io::StrRef extra, const std::string& more) {
  std::string text(out.str(extra));
  bool has_own = false;
  for (const std::string& k : own_keys()) has_own = has_own || text.find("\"" + k + "\"") != std::string::npos;
  if (has_own) {
    simdjson::dom::parser parser;
    const simdjson::padded_string json("{" + text + "}");
    simdjson::dom::object obj;
    if (parser.parse(json).get(obj) != simdjson::SUCCESS) throw Error("bad_extra", "unparsable extra members: " + text);
    text.clear();
    for (auto field : obj) {
      if (own_keys().count(std::string(field.key)) > 0) continue;
      if (!text.empty()) text += ',';
      JsonWriter::escape(field.key, text);
      text += ':';
      text += simdjson::minify(field.value);
    }
  }
  if (!text.empty()) text += ',';
  text += more;
  return out.add_string(text);
}

class Exporter {
 public:
  Exporter(const AugmentArgs& args, const io::CocoDataset& ds, const pipeline::PipelineConfig& cfg,
           size_t num_tickets)
      : args_(args), ds_(ds), cfg_(cfg), out_(ds), builder_(ds, cfg.size, cfg.instances) {
    out_.images.clear();
    out_.annotations.clear();
    out_.image_annotations.clear();
    int64_t max_image = 0, max_ann = 0;
    for (const auto& im : ds.images) {
      max_image = std::max(max_image, im.id);
      taken_names_.insert(std::string(ds.file_name(im)));
    }
    for (const auto& a : ds.annotations) max_ann = std::max(max_ann, a.id);
    next_image_id_ = max_image + 1;
    const uint64_t pasted_span = static_cast<uint64_t>(num_tickets) * cfg.augment.composite.ids_per_sample;
    next_ann_id_ = max_ann + 1 + static_cast<int64_t>(pasted_span);
    original_done_.assign(ds.images.size(), false);
    copy_counter_.assign(ds.images.size(), 0);
    images_dir_ = fs::path(args.out) / "images";
  }

  /// Writes one delivered sample's image and records its annotations.
  void add(const stages::Sample& s) {
    const io::ImageRecord& src = ds_.images[s.image_index];
    const bool original = !s.augment && !original_done_[s.image_index];
    const bool unchanged = s.paste.placed == 0;
    if (original) {
      original_done_[s.image_index] = true;
      copy_bytes(s.path, images_dir_ / std::string(ds_.file_name(src)));
      io::ImageRecord im = src;
      out_.images.push_back(im);
      for (const uint32_t a : ds_.annotations_of(s.image_index)) out_.annotations.push_back(ds_.annotations[a]);
      ++originals_;
      return;
    }
    const int64_t image_id = next_image_id_++;
    const std::string name = new_name(s.image_index, unchanged, s.image);
    const fs::path path = images_dir_ / name;
    if (unchanged) {
      copy_bytes(s.path, path);
    } else {
      encode(s.image, path);
    }
    io::ImageRecord im = src;
    im.id = image_id;
    im.width = s.image.cols;
    im.height = s.image.rows;
    im.file_name = out_.add_string(name);
    im.extra = extend_extra(out_, src.extra, "\"source_image_id\":" + std::to_string(src.id));
    out_.images.push_back(im);
    if (s.augment) ++augmented_; else ++extra_;
    add_copy_annotations(s, image_id);
  }

  /// Removes every image this run wrote (failure cleanup).
  void remove_written() {
    for (const fs::path& p : written_) {
      std::error_code ec;
      fs::remove(p, ec);
    }
    written_.clear();
  }

  io::CocoDataset& dataset() { return out_; }
  uint64_t originals() const { return originals_; }
  uint64_t augmented() const { return augmented_; }
  uint64_t extra() const { return extra_; }
  uint64_t pasted() const { return pasted_; }
  uint64_t trimmed() const { return trimmed_; }
  const stages::PasteCounters& counters() const { return counters_; }
  void count(const stages::PasteCounters& c) {
    counters_.requested += c.requested;
    counters_.placed += c.placed;
    counters_.failed += c.failed;
    counters_.tries += c.tries;
    counters_.dropped_occluded += c.dropped_occluded;
  }

 private:
  std::string new_name(uint32_t image_index, bool unchanged, const cv::Mat& image) {
    const fs::path original(std::string(ds_.file_name(ds_.images[image_index])));
    std::string ext = original.extension().string();
    if (!unchanged) ext = (args_.format == "png" || image.depth() != CV_8U) ? ".png" : ".jpg";
    const fs::path dir = original.parent_path();
    while (true) {
      const uint32_t k = ++copy_counter_[image_index];
      const std::string stem = original.stem().string() + "_pf" + std::to_string(k) + ext;
      const std::string name = (dir / stem).generic_string();
      if (taken_names_.insert(name).second) return name;
    }
  }

  void prepare_dir(const fs::path& path) {
    const fs::path dir = path.parent_path();
    if (!dir.empty() && created_dirs_.insert(dir.string()).second) fs::create_directories(dir);
  }

  void copy_bytes(const std::string& from, const fs::path& to) {
    const std::vector<uint8_t> bytes = stages::read_file_bytes(from);
    prepare_dir(to);
    written_.push_back(to);
    write_file_atomic(to.string(), bytes.data(), bytes.size());
  }

  void encode(const cv::Mat& image, const fs::path& to) {
    cv::Mat bgr;
    if (image.channels() == 3) {
      cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
    } else {
      bgr = image;
    }
    std::vector<uint8_t> buf;
    const std::string ext = to.extension().string();
    std::vector<int> params;
    if (ext == ".jpg") params = {cv::IMWRITE_JPEG_QUALITY, args_.quality};
    if (!cv::imencode(ext, bgr, buf, params)) throw Error("io_error", "cannot encode " + to.string());
    prepare_dir(to);
    written_.push_back(to);
    write_file_atomic(to.string(), buf.data(), buf.size());
  }

  void set_rle(io::AnnotationRecord& rec, const mask::Rle& m) {
    const io::StrRef counts = out_.add_string(mask::to_string(m));
    rec.seg_kind = io::SegmentationKind::kRleString;
    rec.seg_begin = counts.begin;
    rec.seg_count = counts.size;
    rec.rle_height = m.h;
    rec.rle_width = m.w;
    rec.area = static_cast<double>(mask::area(m));
    rec.bbox = mask::bbox(m);
    rec.has_area = true;
    rec.has_bbox = true;
  }

  void add_copy_annotations(const stages::Sample& s, int64_t image_id) {
    const io::ImageRecord& src = ds_.images[s.image_index];
    std::unordered_map<int64_t, const stages::Instance*> present;
    for (const auto& inst : s.instances) {
      if (!inst.pasted) present[inst.id] = &inst;
    }
    // Objects may have lost pixels only to an overlapping paste.
    const bool may_trim = cfg_.augment.placement.allow_overlap && s.paste.placed > 0;
    for (const uint32_t a : ds_.annotations_of(s.image_index)) {
      const io::AnnotationRecord& ann = ds_.annotations[a];
      const auto it = present.find(ann.id);
      if (it == present.end()) {
        const bool never_instance = ann.iscrowd && !cfg_.instances.keep_crowd;
        if (!never_instance) continue;  // removed as occluded
      }
      io::AnnotationRecord rec = ann;
      rec.id = next_ann_id_++;
      rec.image_id = image_id;
      rec.extra = extend_extra(out_, ann.extra, "\"source_id\":" + std::to_string(ann.id));
      if (it != present.end() && may_trim && it->second->has_mask) {
        const stages::Instance before = builder_.build(ann, static_cast<uint32_t>(src.height),
                                                       static_cast<uint32_t>(src.width));
        if (before.mask != it->second->mask) {
          set_rle(rec, it->second->mask);
          ++trimmed_;
        }
      }
      out_.annotations.push_back(rec);
    }
    for (const auto& inst : s.instances) {
      if (!inst.pasted) continue;
      io::AnnotationRecord rec;
      rec.id = inst.id;
      rec.image_id = image_id;
      rec.category_id = inst.category_id;
      rec.has_iscrowd = true;
      rec.iscrowd = 0;
      if (inst.has_mask) {
        set_rle(rec, inst.mask);
      } else {  // boxes-only dataset: the pasted box
        rec.seg_kind = io::SegmentationKind::kNone;
        rec.bbox = inst.bbox;
        rec.area = inst.area;
        rec.has_bbox = true;
        rec.has_area = true;
      }
      rec.extra = out_.add_string("\"pasted\":true,\"source_id\":" + std::to_string(inst.source_id));
      out_.annotations.push_back(rec);
      ++pasted_;
    }
  }

  const AugmentArgs& args_;
  const io::CocoDataset& ds_;
  const pipeline::PipelineConfig& cfg_;
  io::CocoDataset out_;
  stages::InstanceBuilder builder_;
  fs::path images_dir_;
  std::set<std::string> taken_names_;
  std::set<std::string> created_dirs_;
  std::vector<bool> original_done_;
  std::vector<uint32_t> copy_counter_;
  std::vector<fs::path> written_;
  int64_t next_image_id_ = 1;
  int64_t next_ann_id_ = 1;
  uint64_t originals_ = 0, augmented_ = 0, extra_ = 0, pasted_ = 0, trimmed_ = 0;
  stages::PasteCounters counters_;
};

void run_augment(const AugmentArgs& a) {
  tune_allocator_for_pipeline();
  pipeline::PipelineConfig cfg = load_pipeline_args(a.pipe);
  cfg.loader.max_epochs = 1;
  const io::CocoDataset ds = load_dataset_args(a.pipe, cfg);

  const fs::path out_dir(a.out);
  const fs::path ann_path = out_dir / "annotations.json";
  if (fs::exists(ann_path)) {
    if (!a.overwrite) {
      throw Error("output_exists", ann_path.string() + " exists (use --overwrite to replace the output)");
    }
    // A failed run must not leave an annotations file that does not match the images.
    fs::remove(ann_path);
  }
  fs::create_directories(out_dir / "images");

  // The paper's offline copies: the sampler's materialised list (exactly
  // r(i) copies of image i for integral factors), repeated --copies times;
  // seq = position in the whole list, so every sample draws its own pastes.
  pipeline::PipelineConfig derived = cfg;
  derived.derive();
  const stages::Sampler sampler(derived.sampler, pipeline::image_infos(ds, derived.size));
  const std::vector<stages::SampleTicket> once = sampler.materialise_tickets(derived.seed);
  std::vector<stages::SampleTicket> tickets;
  tickets.reserve(once.size() * static_cast<size_t>(a.copies));
  for (int r = 0; r < a.copies; ++r) {
    for (stages::SampleTicket t : once) {
      t.seq = t.position = tickets.size();
      t.epoch = 0;
      tickets.push_back(t);
    }
  }
  spdlog::info("{} images -> {} samples ({} per repetition x {}), {} threads", ds.images.size(), tickets.size(),
               once.size(), a.copies, resolve_threads(cfg.loader.threads));

  Exporter exporter(a, ds, cfg, tickets.size());
  try {
    pipeline::Loader loader(ds, cfg, pipeline::Output::kSamples,
                            [&tickets](uint64_t epoch) {
                              return epoch == 0 ? tickets : std::vector<stages::SampleTicket>{};
                            });
    Progress progress("augment", tickets.size());
    uint64_t done = 0;
    while (auto s = loader.next_sample()) {
      exporter.add(*s);
      exporter.count(s->paste);
      progress.update(++done);
    }
    progress.finish();
    const SkipReport skipped = loader.skipped();
    io::CocoDataset& out = exporter.dataset();
    out.source_path.clear();
    out.rebuild_index();
    io::write_coco(out, ann_path.string());

    const stages::PasteCounters& c = exporter.counters();
    spdlog::info("wrote {} images ({} original, {} augmented, {} extra copies) and {} annotations ({} pasted) to {}",
                 out.images.size(), exporter.originals(), exporter.augmented(), exporter.extra(),
                 out.annotations.size(), exporter.pasted(), out_dir.string());
    spdlog::info("pastes: {} requested, {} placed, {} failed ({} placement tries); {} objects trimmed, {} dropped as occluded",
                 c.requested, c.placed, c.failed, c.tries, exporter.trimmed(), c.dropped_occluded);
    for (const auto& [reason, n] : skipped.counts()) {
      spdlog::warn("skipped {} sample(s): {} (first: {})", n, reason, skipped.first_messages().at(reason));
    }
    if (a.pipe.run.json) {
      JsonWriter w(2);
      w.begin_object();
      w.field("out", out_dir.string()).field("images", static_cast<uint64_t>(out.images.size()));
      w.field("original_images", exporter.originals()).field("augmented_images", exporter.augmented());
      w.field("extra_images", exporter.extra());
      w.field("annotations", static_cast<uint64_t>(out.annotations.size())).field("pasted", exporter.pasted());
      w.field("paste_requested", static_cast<uint64_t>(c.requested)).field("paste_placed", static_cast<uint64_t>(c.placed));
      w.field("paste_failed", static_cast<uint64_t>(c.failed)).field("trimmed", exporter.trimmed());
      w.field("dropped_occluded", static_cast<uint64_t>(c.dropped_occluded));
      w.field("skipped_samples", skipped.total());
      w.key("skipped").begin_object();
      for (const auto& [reason, n] : skipped.counts()) w.field(reason, n);
      w.end_object();
      w.end_object();
      print_stdout(w.str());
    }
  } catch (...) {
    exporter.remove_written();
    throw;
  }
}

}  // namespace

void add_augment_command(CLI::App& app) {
  auto args = std::make_shared<AugmentArgs>();
  CLI::App* cmd = app.add_subcommand(
      "augment",
      "Offline copy-paste augmentation (the paper's mode): runs every image's copies through the pipeline once and "
      "writes OUT/images/ and OUT/annotations.json (COCO; pasted objects as compressed RLE with pasted: true and "
      "source_id). Originals keep their id and file name; other copies get new ids and <stem>_pf<k> names");
  add_pipeline_options(cmd, args->pipe);
  cmd->add_option("--out,-o", args->out, "output directory (images/ and annotations.json)")->required();
  cmd->add_option("--copies", args->copies, "repeat the materialised list this many times (each with new pastes)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--format", args->format, "encoding of changed images: jpg or lossless png")
      ->check(CLI::IsMember({"jpg", "png"}))
      ->capture_default_str();
  cmd->add_option("--quality", args->quality, "JPEG quality")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing OUT/annotations.json");
  add_json_option(cmd, args->pipe.run);
  cmd->callback([args] { run_augment(*args); });
}

}  // namespace pasteflow::cli
