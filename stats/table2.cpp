#include "pasteflow/stats/table2.hpp"

#include <cstdio>
#include <sstream>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"

namespace pasteflow::stats {

namespace {

double share(double part, double whole) { return whole > 0.0 ? part / whole : 0.0; }

constexpr std::array<SizeClass, kNumSizeClasses> kClasses = {SizeClass::kSmall, SizeClass::kMedium,
                                                              SizeClass::kLarge};

}  // namespace

Table2 compute_table2(const io::CocoDataset& dataset, const Table2Options& options) {
  options.size.validate();
  options.anchors.validate();
  const Matcher matcher(options.matcher);

  Table2 t;
  t.images.reserve(dataset.images.size());
  std::vector<BoxF> gt;
  AnchorMatch m;
  Matcher::Workspace workspace;
  for (size_t i = 0; i < dataset.images.size(); ++i) {
    const io::ImageRecord& im = dataset.images[i];
    ImageAnchorStats is;
    is.image_id = im.id;
    is.image_index = static_cast<uint32_t>(i);
    try {
      is.resize = detection_resize(im.height, im.width, options.resize);
    } catch (const InputError& e) {
      Location loc;
      loc.file = dataset.source_path;
      loc.record = "image id " + std::to_string(im.id);
      throw InputError(e.reason(), e.detail(), loc);
    }
    const AnchorGrid grid(options.anchors, is.resize.padded_height, is.resize.padded_width,
                          fpn_grid_sizes(is.resize.padded_height, is.resize.padded_width));
    is.num_anchors = grid.size();
    is.object_begin = static_cast<uint32_t>(t.objects.size());

    gt.clear();
    for (uint32_t a : dataset.annotations_of(i)) {
      const io::AnnotationRecord& ann = dataset.annotations[a];
      if (options.exclude_crowd && ann.iscrowd != 0) {
        ++t.crowd_excluded;
        continue;
      }
      if (!ann.has_bbox) {
        ++t.degenerate_excluded;
        continue;
      }
      const BoxF box = resize_box(coco_bbox_to_xyxy(ann.bbox[0], ann.bbox[1], ann.bbox[2], ann.bbox[3]), is.resize);
      if (!(box.x2 > box.x1) || !(box.y2 > box.y1)) {
        ++t.degenerate_excluded;
        continue;
      }
      ObjectAnchorStats os;
      os.ann_id = ann.id;
      os.annotation_index = a;
      try {
        os.area = object_area(dataset, ann, options.size.source);
      } catch (const InputError& e) {
        if (options.policy == ErrorPolicy::kStrict) throw;
        t.skipped.add(e);
        continue;
      }
      os.size = classify_area(os.area, options.size);
      os.box = box;
      gt.push_back(box);
      t.objects.push_back(os);
    }
    is.object_count = static_cast<uint32_t>(t.objects.size() - is.object_begin);

    std::array<bool, kNumSizeClasses> has_class{};
    if (!gt.empty()) {
      matcher.match(grid, gt, m, workspace);
      for (size_t g = 0; g < gt.size(); ++g) {
        ObjectAnchorStats& os = t.objects[is.object_begin + g];
        os.matched_anchors = m.matched_anchors[g];
        os.max_iou = m.max_iou[g];
        Table2Counts& c = t.counts[static_cast<size_t>(os.size)];
        ++c.objects;
        c.area += os.area;
        c.matched_anchors += os.matched_anchors;
        c.max_iou_sum += static_cast<double>(os.max_iou);
        has_class[static_cast<size_t>(os.size)] = true;
      }
    }
    for (size_t k = 0; k < kNumSizeClasses; ++k) {
      if (has_class[k]) ++t.counts[k].images;
    }
    t.images.push_back(is);
  }

  t.total_images = static_cast<int64_t>(dataset.images.size());
  for (const Table2Counts& c : t.counts) {
    t.total_objects += c.objects;
    t.total_area += c.area;
    t.total_matched_anchors += c.matched_anchors;
  }
  for (size_t k = 0; k < kNumSizeClasses; ++k) {
    const Table2Counts& c = t.counts[k];
    Table2Row& r = t.rows[k];
    r.object_count = share(static_cast<double>(c.objects), static_cast<double>(t.total_objects));
    r.images = share(static_cast<double>(c.images), static_cast<double>(t.total_images));
    r.total_object_area = share(c.area, t.total_area);
    r.matched_anchors = share(static_cast<double>(c.matched_anchors), static_cast<double>(t.total_matched_anchors));
    r.average_matching_anchors = share(static_cast<double>(c.matched_anchors), static_cast<double>(c.objects));
    r.average_max_iou = share(c.max_iou_sum, static_cast<double>(c.objects));
  }
  return t;
}

std::string table2_to_json(const Table2& table, const Table2Options& options, bool details, int indent) {
  JsonWriter w(indent);
  w.begin_object();
  w.key("definition").begin_object();
  w.field("resize_min_size", options.resize.min_size);
  w.field("resize_max_size", options.resize.max_size);
  w.field("size_divisible", options.resize.size_divisible);
  w.key("anchor_sizes").begin_array();
  for (const auto& level : options.anchors.sizes) {
    w.begin_array();
    for (double s : level) w.value(s);
    w.end_array();
  }
  w.end_array();
  w.field("resize_arithmetic",
          options.resize.arithmetic == ResizeArithmetic::kDouble ? "double" : "torchvision_float32");
  w.field("matcher_high_threshold", options.matcher.high_threshold);
  w.field("matcher_low_threshold", options.matcher.low_threshold);
  w.field("allow_low_quality_matches", options.matcher.allow_low_quality_matches);
  w.field("exclude_crowd", options.exclude_crowd);
  w.field("area_source", to_string(options.size.source));
  w.field("small_max_area", options.size.small_max_area);
  w.field("medium_max_area", options.size.medium_max_area);
  w.end_object();

  w.key("table").begin_object();
  for (SizeClass c : kClasses) {
    const Table2Row& r = table.row(c);
    w.key(to_string(c)).begin_object();
    w.field("object_count", r.object_count);
    w.field("images", r.images);
    w.field("total_object_area", r.total_object_area);
    w.field("matched_anchors", r.matched_anchors);
    w.field("average_matching_anchors", r.average_matching_anchors);
    w.field("average_max_iou", r.average_max_iou);
    w.end_object();
  }
  w.end_object();

  w.key("counts").begin_object();
  for (SizeClass c : kClasses) {
    const Table2Counts& k = table.count(c);
    w.key(to_string(c)).begin_object();
    w.field("objects", k.objects);
    w.field("images", k.images);
    w.field("area", k.area);
    w.field("matched_anchors", k.matched_anchors);
    w.field("max_iou_sum", k.max_iou_sum);
    w.end_object();
  }
  w.key("total").begin_object();
  w.field("objects", table.total_objects);
  w.field("images", table.total_images);
  w.field("area", table.total_area);
  w.field("matched_anchors", table.total_matched_anchors);
  w.end_object();
  w.end_object();

  w.key("excluded").begin_object();
  w.field("crowd", table.crowd_excluded);
  w.field("degenerate_box", table.degenerate_excluded);
  w.end_object();

  w.key("skipped").begin_object();
  for (const auto& [reason, n] : table.skipped.counts()) w.field(reason, n);
  w.end_object();

  if (details) {
    w.key("per_image").begin_array();
    for (const ImageAnchorStats& im : table.images) {
      w.begin_object();
      w.field("image_id", im.image_id);
      w.field("scale", im.resize.scale);
      w.key("resized").begin_array().value(im.resize.height).value(im.resize.width).end_array();
      w.field("num_anchors", static_cast<uint64_t>(im.num_anchors));
      w.key("objects").begin_array();
      for (uint32_t k = 0; k < im.object_count; ++k) {
        const ObjectAnchorStats& o = table.objects[im.object_begin + k];
        w.begin_object();
        w.field("ann_id", o.ann_id);
        w.field("size", to_string(o.size));
        w.field("matched_anchors", o.matched_anchors);
        w.field("max_iou", o.max_iou);
        w.end_object();
      }
      w.end_array();
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  return w.take();
}

std::string table2_to_markdown(const Table2& table) {
  std::ostringstream out;
  out << "| size | object count | images | total object area | matched anchors | average matching anchors | "
         "average max IoU |\n";
  out << "|---|---:|---:|---:|---:|---:|---:|\n";
  char buf[256];
  for (SizeClass c : kClasses) {
    const Table2Row& r = table.row(c);
    std::snprintf(buf, sizeof buf, "| %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.2f | %.2f |\n", to_string(c),
                  100.0 * r.object_count, 100.0 * r.images, 100.0 * r.total_object_area, 100.0 * r.matched_anchors,
                  r.average_matching_anchors, r.average_max_iou);
    out << buf;
  }
  return out.str();
}

}  // namespace pasteflow::stats
