// COCOeval (pycocotools 8c9bcc3) for bbox and segm: loadRes, evaluate,
// accumulate, summarize. Comments name the Python lines each step mirrors.
#include "pasteflow/eval/coco_eval.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <numeric>
#include <string>

#include "pasteflow/mask/coco_mask.hpp"

namespace pasteflow::eval {

IouType parse_iou_type(const std::string& text) {
  if (text == "bbox") return IouType::kBbox;
  if (text == "segm") return IouType::kSegm;
  throw ConfigError("bad_value", "iou type must be 'bbox' or 'segm', got '" + text + "'");
}

const char* to_string(IouType type) noexcept { return type == IouType::kBbox ? "bbox" : "segm"; }

std::vector<double> linspace(double start, double stop, size_t num) {
  // numpy.linspace: y = arange(num) * step + start (y / div * delta when the
  // step underflows to 0), then y[-1] = stop.
  std::vector<double> y(num);
  if (num == 0) return y;
  const size_t div = num - 1;
  const double delta = stop - start;
  if (div == 0) {
    y[0] = start;
    return y;
  }
  const double step = delta / static_cast<double>(div);
  for (size_t i = 0; i < num; ++i) {
    const double fi = static_cast<double>(i);
    y[i] = step == 0 ? (fi / static_cast<double>(div)) * delta + start : fi * step + start;
  }
  y[num - 1] = stop;
  return y;
}

namespace {

constexpr double kEps = 2.220446049250313e-16;  // np.spacing(1)

// numpy's pairwise summation (pairwise_sum_DOUBLE, PW_BLOCKSIZE 128), which
// np.mean uses on a contiguous array.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/// np.add.reduce of a 1-D float64 array: the ufunc iterator hands the
/// inner loop blocks of its buffer size (8192 elements), each summed
/// pairwise, added one after the other to the accumulator (checked against
/// numpy 1.24 on random arrays of 8k-90k elements).
double numpy_sum(const double* a, size_t n) {
  constexpr size_t kBufSize = 8192;
  double acc = 0.;
  for (size_t b = 0; b < n; b += kBufSize) acc += pairwise_sum(a + b, std::min(kBufSize, n - b));
  return acc;
}

/// np.mean(s[s > -1]), or -1 when nothing is > -1.
double mean_valid(const std::vector<double>& values) {
  std::vector<double> kept;
  kept.reserve(values.size());
  for (double v : values) {
    if (v > -1) kept.push_back(v);
  }
  if (kept.empty()) return -1;
  return numpy_sum(kept.data(), kept.size()) / static_cast<double>(kept.size());
}

// ------------------------------------------------------------------ prepare

/// A detection after loadRes: its index (id = index + 1), area and box.
struct DetRef {
  uint32_t index = 0;
  uint32_t cat_pos = 0;  ///< position of its category in the evaluated cat_ids
};

struct GtRef {
  uint32_t ann = 0;  ///< annotation index in the ground truth
  uint32_t cat_pos = 0;
};

/// evaluateImg's output for one (image, category): the detections kept
/// (score order, at most maxDets[-1]) and, per area range and IoU
/// threshold, whether each one is matched (dtm != 0) and ignored.
struct EvalImg {
  uint32_t k = 0;
  std::vector<double> scores;     ///< D
  std::vector<uint8_t> flags;     ///< [D][A][T]: bit 0 matched, bit 1 ignored
  std::vector<uint64_t> npig;     ///< [A]: ground truth not ignored
};

constexpr uint8_t kMatched = 1;
constexpr uint8_t kIgnored = 2;

struct Plan {
  const io::CocoDataset* gt = nullptr;
  const std::vector<Detection>* dets = nullptr;
  EvalParams p;
  bool bbox_branch = true;  ///< loadRes: the first result has a bbox
  size_t T = 0, A = 0, K = 0;
  int max_det = 0;  ///< p.maxDets[-1]
  std::vector<uint32_t> gt_image;               ///< evaluated image -> GT image index (or UINT32_MAX)
  std::vector<std::vector<GtRef>> gts;          ///< per evaluated image, file order
  std::vector<std::vector<DetRef>> dts;         ///< per evaluated image, results order
  /// segm: the ground-truth masks (annToRLE) by annotation index, built
  /// once before the per-image step (empty for annotations not evaluated).
  std::vector<mask::Rle> gt_masks;
};

[[noreturn]] void rethrow_for_detection(const Error& e, size_t index, const char* field) {
  Location loc = e.where();
  loc.path = "results[" + std::to_string(index) + "]." + field;
  loc.record = "result " + std::to_string(index);
  throw InputError(e.reason(), e.detail(), loc);
}

Location detection_location(size_t index, const std::string& field) {
  Location loc;
  loc.path = "results[" + std::to_string(index) + "]" + (field.empty() ? "" : "." + field);
  loc.record = "result " + std::to_string(index);
  return loc;
}

Location gt_location(const io::CocoDataset& gt, uint32_t ann, std::string_view field) {
  return gt.annotation_location(gt.annotations[ann], field);
}

/// A bad record under `policy`: thrown (strict) or counted (skip).
void reject(const InputError& error, ErrorPolicy policy, SkipReport& skipped) {
  if (policy == ErrorPolicy::kStrict) throw error;
  skipped.add(error);
}

std::vector<int64_t> sorted_unique(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

void check_params(const EvalParams& p) {
  if (p.iou_thrs.empty()) throw ConfigError("bad_params", "iou_thrs is empty");
  if (p.rec_thrs.empty()) throw ConfigError("bad_params", "rec_thrs is empty");
  if (p.area_ranges.empty()) throw ConfigError("bad_params", "area_ranges is empty");
  if (p.max_dets.size() < 3) {
    throw ConfigError("bad_params", "max_dets needs at least 3 values (summarize reads maxDets[0..2]), got " +
                                        std::to_string(p.max_dets.size()));
  }
  for (int m : p.max_dets) {
    if (m < 0) throw ConfigError("bad_params", "max_dets must not be negative, got " + std::to_string(m));
  }
  for (double t : p.iou_thrs) {
    if (!std::isfinite(t)) throw ConfigError("bad_params", "iou_thrs must be finite");
  }
  for (double r : p.rec_thrs) {
    if (!std::isfinite(r)) throw ConfigError("bad_params", "rec_thrs must be finite");
  }
}

Plan make_plan(const io::CocoDataset& gt, const std::vector<Detection>& dets, const EvalParams& params,
               ErrorPolicy policy, SkipReport& skipped) {
  check_params(params);
  Plan plan;
  plan.gt = &gt;
  plan.dets = &dets;
  plan.p = params;
  EvalParams& p = plan.p;
  // evaluate(): p.imgIds = np.unique(p.imgIds); p.catIds = np.unique(...);
  // p.maxDets = sorted(p.maxDets). Defaults: all GT images / categories.
  if (p.img_ids.empty()) {
    for (const auto& im : gt.images) p.img_ids.push_back(im.id);
  }
  p.img_ids = sorted_unique(std::move(p.img_ids));
  if (p.cat_ids.empty()) {
    for (const auto& c : gt.categories) p.cat_ids.push_back(c.id);
  }
  p.cat_ids = sorted_unique(std::move(p.cat_ids));
  std::sort(p.max_dets.begin(), p.max_dets.end());
  plan.max_det = p.max_dets.back();
  plan.T = p.iou_thrs.size();
  plan.A = p.area_ranges.size();
  plan.K = p.use_cats ? p.cat_ids.size() : 1;

  // GT image index -> evaluated image; GT category index -> position.
  std::vector<uint32_t> eval_of_image(gt.images.size(), UINT32_MAX);
  plan.gt_image.assign(p.img_ids.size(), UINT32_MAX);
  for (size_t i = 0; i < p.img_ids.size(); ++i) {
    const int64_t gi = gt.image_index(p.img_ids[i]);
    if (gi >= 0 && eval_of_image[gi] == UINT32_MAX) {
      eval_of_image[gi] = static_cast<uint32_t>(i);
      plan.gt_image[i] = static_cast<uint32_t>(gi);
    }
  }
  std::vector<uint32_t> pos_of_cat(gt.categories.size(), UINT32_MAX);
  for (size_t k = 0; k < p.cat_ids.size(); ++k) {
    const int64_t ci = gt.category_index(p.cat_ids[k]);
    if (ci >= 0) pos_of_cat[ci] = static_cast<uint32_t>(k);
  }

  // Ground truth: getAnnIds(imgIds, catIds) keeps file order per image.
  plan.gts.resize(p.img_ids.size());
  for (size_t i = 0; i < p.img_ids.size(); ++i) {
    if (plan.gt_image[i] == UINT32_MAX) continue;
    for (uint32_t ann : gt.annotations_of(plan.gt_image[i])) {
      const io::AnnotationRecord& a = gt.annotations[ann];
      const uint32_t pos = pos_of_cat[a.category_index];
      if (pos == UINT32_MAX) continue;
      if (!a.has_area) {
        reject(InputError("missing_field", "ground truth has no 'area' (COCOeval reads it for the area ranges)",
                          gt_location(gt, ann, "")),
               policy, skipped);
        continue;
      }
      if (p.iou_type == IouType::kBbox && !a.has_bbox) {
        reject(InputError("missing_field", "ground truth has no 'bbox' (bbox evaluation)", gt_location(gt, ann, "")),
               policy, skipped);
        continue;
      }
      plan.gts[i].push_back(GtRef{ann, pos});
    }
  }

  // loadRes: the first result decides the branch; every image id must be a
  // GT image (the assert), and we require known categories too.
  plan.bbox_branch = !dets.empty() && dets[0].bbox.has_value();
  if (!dets.empty() && !dets[0].bbox && std::holds_alternative<std::monostate>(dets[0].segmentation)) {
    throw InputError("missing_field", "the first result has neither 'bbox' nor 'segmentation'",
                     detection_location(0, ""));
  }
  plan.dts.resize(p.img_ids.size());
  for (size_t d = 0; d < dets.size(); ++d) {
    const Detection& det = dets[d];
    const int64_t gi = gt.image_index(det.image_id);
    const int64_t ci = gt.category_index(det.category_id);
    if (gi < 0) {
      reject(InputError("unknown_image",
                        "image_id " + std::to_string(det.image_id) +
                            " is not in the ground truth (pycocotools: results do not correspond to current coco set)",
                        detection_location(d, "image_id")),
             policy, skipped);
      continue;
    }
    if (ci < 0) {
      reject(InputError("unknown_category",
                        "category_id " + std::to_string(det.category_id) + " is not a ground-truth category",
                        detection_location(d, "category_id")),
             policy, skipped);
      continue;
    }
    if (!std::isfinite(det.score)) {
      reject(InputError("bad_value", "score is not finite", detection_location(d, "score")), policy, skipped);
      continue;
    }
    if (plan.bbox_branch && !det.bbox) {
      reject(InputError("missing_field", "no 'bbox' (the first result has one, so loadRes reads every result's bbox)",
                        detection_location(d, "bbox")),
             policy, skipped);
      continue;
    }
    if (!plan.bbox_branch && std::holds_alternative<std::monostate>(det.segmentation)) {
      reject(InputError("missing_field",
                        "no 'segmentation' (the first result has no bbox, so loadRes reads every result's mask)",
                        detection_location(d, "segmentation")),
             policy, skipped);
      continue;
    }
    const uint32_t ei = eval_of_image[gi];
    const uint32_t pos = pos_of_cat[ci];
    if (ei == UINT32_MAX || pos == UINT32_MAX) continue;
    plan.dts[ei].push_back(DetRef{static_cast<uint32_t>(d), pos});
  }
  return plan;
}

// ------------------------------------------------------------ one image

/// The mask of a detection as COCO.annToRLE builds it from the loadRes'd
/// result.
mask::Rle detection_mask(const Detection& det, size_t index, uint32_t img_h, uint32_t img_w) {
  try {
    if (const auto* rle = std::get_if<mask::Rle>(&det.segmentation)) {
      return mask::from_counts(Span<const uint32_t>(rle->counts.data(), rle->counts.size()), rle->h, rle->w);
    }
    if (const auto* c = std::get_if<CompressedMask>(&det.segmentation)) {
      return mask::from_string(c->counts, c->h, c->w);
    }
    if (const auto* poly = std::get_if<PolygonMask>(&det.segmentation)) {
      if (poly->parts.empty()) throw InputError("empty_segmentation", "segmentation is an empty polygon list");
      std::vector<Span<const double>> parts;
      for (const auto& part : poly->parts) parts.emplace_back(part.data(), part.size());
      return mask::from_polygons(parts, img_h, img_w);
    }
    // loadRes (bbox branch): segmentation = [[x1, y1, x1, y2, x2, y1, x2, y2]].
    const auto& bb = *det.bbox;
    const double x1 = bb[0], x2 = bb[0] + bb[2], y1 = bb[1], y2 = bb[1] + bb[3];
    const double xy[8] = {x1, y1, x1, y2, x2, y1, x2, y2};
    return mask::from_polygon(xy, 8, img_h, img_w);
  } catch (const Error& e) {
    rethrow_for_detection(e, index, "segmentation");
  }
}

/// The ground-truth masks of every evaluated annotation, in parallel. A
/// segmentation that does not rasterise fails the evaluation (strict; the
/// first in file order) or leaves the annotation out and is counted (skip).
void build_gt_masks(Plan& plan, ErrorPolicy policy, SkipReport& skipped) {
  const io::CocoDataset& gt = *plan.gt;
  plan.gt_masks.assign(gt.annotations.size(), mask::Rle{});
  std::vector<std::pair<uint32_t, uint32_t>> work;  // (annotation, GT image)
  for (size_t i = 0; i < plan.gts.size(); ++i) {
    for (const GtRef& g : plan.gts[i]) work.emplace_back(g.ann, plan.gt_image[i]);
  }
  std::vector<std::unique_ptr<InputError>> errors(gt.annotations.size());
  tbb::parallel_for(tbb::blocked_range<size_t>(0, work.size(), 64), [&](const tbb::blocked_range<size_t>& range) {
    for (size_t j = range.begin(); j != range.end(); ++j) {
      const auto [ann, image] = work[j];
      const io::ImageRecord& im = gt.images[image];
      try {
        plan.gt_masks[ann] = mask::annotation_rle(gt, gt.annotations[ann], static_cast<uint32_t>(im.height),
                                                  static_cast<uint32_t>(im.width));
      } catch (const InputError& e) {
        errors[ann] = std::make_unique<InputError>(e);
      }
    }
  });
  bool any = false;
  for (const auto& e : errors) {
    if (!e) continue;
    reject(*e, policy, skipped);
    any = true;
  }
  if (!any) return;
  for (auto& refs : plan.gts) {
    refs.erase(std::remove_if(refs.begin(), refs.end(), [&](const GtRef& g) { return errors[g.ann] != nullptr; }),
               refs.end());
  }
}

/// evaluateImg for every (category, area range) of one image.
std::vector<EvalImg> evaluate_image(const Plan& plan, size_t i) {
  const io::CocoDataset& gt = *plan.gt;
  const std::vector<Detection>& dets = *plan.dets;
  const EvalParams& p = plan.p;
  const bool segm = p.iou_type == IouType::kSegm;
  std::vector<EvalImg> out;
  const std::vector<GtRef>& gts_all = plan.gts[i];
  const std::vector<DetRef>& dts_all = plan.dts[i];
  if (gts_all.empty() && dts_all.empty()) return out;
  uint32_t img_h = 0, img_w = 0;
  if (plan.gt_image[i] != UINT32_MAX) {
    const io::ImageRecord& im = gt.images[plan.gt_image[i]];
    img_h = static_cast<uint32_t>(std::max(im.height, 0));
    img_w = static_cast<uint32_t>(std::max(im.width, 0));
  }

  // Group by category: useCats keeps one group per category (file order
  // within); otherwise one group, ordered by category then file order
  // ([_ for cId in p.catIds for _ in self._gts[imgId, cId]]).
  std::vector<GtRef> gts = gts_all;
  std::vector<DetRef> dts = dts_all;
  std::stable_sort(gts.begin(), gts.end(), [](const GtRef& a, const GtRef& b) { return a.cat_pos < b.cat_pos; });
  std::stable_sort(dts.begin(), dts.end(), [](const DetRef& a, const DetRef& b) { return a.cat_pos < b.cat_pos; });

  const size_t T = plan.T, A = plan.A;
  size_t gb = 0, db = 0;
  std::vector<double> ious;
  std::vector<uint8_t> crowd, gt_ignore, gt_taken;
  std::vector<uint32_t> gt_order;
  std::vector<int64_t> gt_ids;
  std::vector<uint8_t> gt_ig_sorted, crowd_sorted;
  std::vector<double> dt_area;
  while (gb < gts.size() || db < dts.size()) {
    // The next group [gb, ge) x [db, de).
    uint32_t cat = UINT32_MAX;
    if (gb < gts.size()) cat = std::min(cat, gts[gb].cat_pos);
    if (db < dts.size()) cat = std::min(cat, dts[db].cat_pos);
    size_t ge = gb, de = db;
    if (p.use_cats) {
      while (ge < gts.size() && gts[ge].cat_pos == cat) ++ge;
      while (de < dts.size() && dts[de].cat_pos == cat) ++de;
    } else {
      ge = gts.size();
      de = dts.size();
    }
    const size_t G = ge - gb;

    // loadRes fields of every detection of the group: area (and the box of
    // a segm-branch result without one); masks when needed.
    const size_t n_all = de - db;
    std::vector<double> area_all(n_all);
    std::vector<std::array<double, 4>> box_all(n_all);
    std::vector<mask::Rle> rle_all;
    const bool need_masks = segm || !plan.bbox_branch;
    if (need_masks) rle_all.resize(n_all);
    for (size_t j = 0; j < n_all; ++j) {
      const uint32_t d = dts[db + j].index;
      const Detection& det = dets[d];
      if (need_masks) rle_all[j] = detection_mask(det, d, img_h, img_w);
      if (plan.bbox_branch) {
        const auto& bb = *det.bbox;
        area_all[j] = bb[2] * bb[3];
        box_all[j] = bb;
      } else {
        area_all[j] = static_cast<double>(mask::area(rle_all[j]));
        box_all[j] = det.bbox ? *det.bbox : mask::bbox(rle_all[j]);
      }
    }

    // Sort by score (stable, highest first) and keep maxDets[-1].
    std::vector<uint32_t> order(n_all);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return dets[dts[db + a].index].score > dets[dts[db + b].index].score;
    });
    const size_t D = std::min(n_all, static_cast<size_t>(plan.max_det));
    order.resize(D);

    // computeIoU: maskUtils.iou(d, g, iscrowd), rows = detections.
    crowd.assign(G, 0);
    for (size_t g = 0; g < G; ++g) crowd[g] = gt.annotations[gts[gb + g].ann].iscrowd ? 1 : 0;
    ious.clear();
    if (D > 0 && G > 0) {
      if (segm) {
        std::vector<mask::Rle> dr(D), gr(G);
        for (size_t j = 0; j < D; ++j) dr[j] = std::move(rle_all[order[j]]);
        for (size_t g = 0; g < G; ++g) gr[g] = plan.gt_masks[gts[gb + g].ann];
        ious = mask::iou_matrix(dr, gr, crowd);
      } else {
        std::vector<std::array<double, 4>> dbx(D), gbx(G);
        for (size_t j = 0; j < D; ++j) dbx[j] = box_all[order[j]];
        for (size_t g = 0; g < G; ++g) gbx[g] = gt.annotations[gts[gb + g].ann].bbox;
        ious = mask::box_iou_matrix(dbx, gbx, crowd);
      }
    }

    EvalImg e;
    e.k = p.use_cats ? cat : 0;
    e.scores.resize(D);
    dt_area.resize(D);
    for (size_t j = 0; j < D; ++j) {
      e.scores[j] = dets[dts[db + order[j]].index].score;
      dt_area[j] = area_all[order[j]];
    }
    e.flags.assign(A * T * D, 0);
    e.npig.assign(A, 0);
    gt_ignore.resize(G);
    gt_ig_sorted.resize(G);
    crowd_sorted.resize(G);
    gt_ids.resize(G);
    gt_order.resize(G);
    for (size_t a = 0; a < A; ++a) {
      const double lo = p.area_ranges[a].lo, hi = p.area_ranges[a].hi;
      // _ignore = iscrowd or area outside [lo, hi]; gt sorted ignore last.
      for (size_t g = 0; g < G; ++g) {
        const double ga = gt.annotations[gts[gb + g].ann].area;
        gt_ignore[g] = (crowd[g] || ga < lo || ga > hi) ? 1 : 0;
      }
      std::iota(gt_order.begin(), gt_order.end(), 0u);
      std::stable_sort(gt_order.begin(), gt_order.end(),
                       [&](uint32_t x, uint32_t y) { return gt_ignore[x] < gt_ignore[y]; });
      uint64_t npig = 0;
      for (size_t g = 0; g < G; ++g) {
        gt_ig_sorted[g] = gt_ignore[gt_order[g]];
        crowd_sorted[g] = crowd[gt_order[g]];
        gt_ids[g] = gt.annotations[gts[gb + gt_order[g]].ann].id;
        if (!gt_ig_sorted[g]) ++npig;
      }
      e.npig[a] = npig;
      for (size_t t = 0; t < T; ++t) {
        // Detection d's flag for (a, t) is flags[d * AT].
        // (No detections: flags is empty and never read; data() may be null.)
        uint8_t* flags = D > 0 ? e.flags.data() + a * T + t : nullptr;
        const size_t AT = A * T;
        gt_taken.assign(G, 0);
        if (!ious.empty()) {
          for (size_t d = 0; d < D; ++d) {
            double iou = std::min(p.iou_thrs[t], 1 - 1e-10);
            long m = -1;
            const double* row = ious.data() + d * G;
            for (size_t g = 0; g < G; ++g) {
              if (gt_taken[g] && !crowd_sorted[g]) continue;
              if (m > -1 && gt_ig_sorted[m] == 0 && gt_ig_sorted[g] == 1) break;
              const double v = row[gt_order[g]];
              if (v < iou) continue;
              iou = v;
              m = static_cast<long>(g);
            }
            if (m == -1) continue;
            // dtIg = gtIg[m]; dtm = gt id (0 reads as "unmatched" later);
            // gtm = the detection's id (>= 1).
            flags[d * AT] = static_cast<uint8_t>((gt_ig_sorted[m] ? kIgnored : 0) | (gt_ids[m] != 0 ? kMatched : 0));
            gt_taken[m] = 1;
          }
        }
        // Unmatched (dtm == 0) detections outside the range are ignored.
        for (size_t d = 0; d < D; ++d) {
          if (!(flags[d * AT] & kMatched) && (dt_area[d] < lo || dt_area[d] > hi)) flags[d * AT] |= kIgnored;
        }
      }
    }
    out.push_back(std::move(e));
    gb = ge;
    db = de;
  }
  return out;
}

// ------------------------------------------------------------ accumulate

struct SortedDet {
  double score;
  uint32_t entry;  ///< index into the category's entries
  uint32_t d;      ///< detection within the entry
};

void accumulate_category(const Plan& plan, size_t k, const std::vector<const EvalImg*>& entries, EvalResult& r) {
  const EvalParams& p = plan.p;
  const size_t T = r.T, R = r.R, K = r.K, A = r.A, M = r.M, AT = A * T;
  if (entries.empty()) return;  // len(E) == 0: stays -1
  std::vector<uint64_t> npig(A, 0);
  for (const EvalImg* ei : entries) {
    for (size_t a = 0; a < A; ++a) npig[a] += ei->npig[a];
  }
  std::vector<SortedDet> all;
  std::vector<uint8_t> flags;      // [i][A][T] in sorted order
  std::vector<double> rc, pr;      // [A][T][i]
  std::vector<uint64_t> tp(AT), fp(AT);
  for (size_t m = 0; m < M; ++m) {
    const size_t max_det = static_cast<size_t>(p.max_dets[m]);
    // np.concatenate([e['dtScores'][0:maxDet] for e in E]) then a stable
    // argsort of -scores; dtMatches / dtIgnore reordered alike.
    all.clear();
    for (size_t e = 0; e < entries.size(); ++e) {
      const EvalImg& ei = *entries[e];
      const size_t n = std::min(ei.scores.size(), max_det);
      for (size_t d = 0; d < n; ++d) {
        all.push_back(SortedDet{ei.scores[d], static_cast<uint32_t>(e), static_cast<uint32_t>(d)});
      }
    }
    std::stable_sort(all.begin(), all.end(), [](const SortedDet& a, const SortedDet& b) { return a.score > b.score; });
    const size_t nd = all.size();
    flags.resize(nd * AT);
    for (size_t i = 0; i < nd; ++i) {
      const uint8_t* src = entries[all[i].entry]->flags.data() + static_cast<size_t>(all[i].d) * AT;
      std::copy(src, src + AT, flags.data() + i * AT);
    }
    // tps / fps and their running sums as doubles
    // (np.cumsum(...).astype(float)); rc = tp / npig; pr = tp / (fp + tp + eps).
    rc.resize(AT * nd);
    pr.resize(AT * nd);
    std::fill(tp.begin(), tp.end(), 0);
    std::fill(fp.begin(), fp.end(), 0);
    for (size_t i = 0; i < nd; ++i) {
      const uint8_t* f = flags.data() + i * AT;
      for (size_t a = 0; a < A; ++a) {
        const double n_pos = static_cast<double>(npig[a]);
        for (size_t t = 0; t < T; ++t) {
          const size_t at = a * T + t;
          if (!(f[at] & kIgnored)) {
            if (f[at] & kMatched) {
              ++tp[at];
            } else {
              ++fp[at];
            }
          }
          const double tpd = static_cast<double>(tp[at]), fpd = static_cast<double>(fp[at]);
          rc[at * nd + i] = tpd / n_pos;
          pr[at * nd + i] = tpd / ((fpd + tpd) + kEps);
        }
      }
    }
    for (size_t a = 0; a < A; ++a) {
      if (npig[a] == 0) continue;  // stays -1
      for (size_t t = 0; t < T; ++t) {
        double* rct = rc.data() + (a * T + t) * nd;
        double* prt = pr.data() + (a * T + t) * nd;
        r.recall[((t * K + k) * A + a) * M + m] = nd ? rct[nd - 1] : 0;
        // The monotone envelope, from the back.
        for (size_t i = nd - 1; nd > 0 && i > 0; --i) {
          if (prt[i] > prt[i - 1]) prt[i - 1] = prt[i];
        }
        // inds = np.searchsorted(rc, recThrs, side='left'); q[ri] = pr[pi]
        // until an index runs past the end (the IndexError is swallowed,
        // the rest of q stays 0).
        size_t pi = 0;
        for (size_t ri = 0; ri < R; ++ri) {
          const size_t at = (((t * R + ri) * K + k) * A + a) * M + m;
          const size_t from = ri > 0 && p.rec_thrs[ri] >= p.rec_thrs[ri - 1] ? pi : 0;
          pi = static_cast<size_t>(std::lower_bound(rct + from, rct + nd, p.rec_thrs[ri]) - rct);
          if (pi >= nd) {
            for (size_t rj = ri; rj < R; ++rj) {
              const size_t at2 = (((t * R + rj) * K + k) * A + a) * M + m;
              r.precision[at2] = 0;
              r.scores[at2] = 0;
            }
            break;
          }
          r.precision[at] = prt[pi];
          r.scores[at] = all[pi].score;
        }
      }
    }
  }
}

// ------------------------------------------------------------ summarize

/// _summarize(ap, iouThr, areaRng, maxDets): the selected entries in numpy's
/// fancy-index order, their mean over those > -1.
double summarize_one(const EvalResult& r, bool ap, const double* iou_thr, const std::string& area_label,
                     int max_dets) {
  const EvalParams& p = r.params;
  std::vector<size_t> tind, aind, mind;
  for (size_t t = 0; t < r.T; ++t) {
    if (!iou_thr || p.iou_thrs[t] == *iou_thr) tind.push_back(t);
  }
  for (size_t a = 0; a < r.A; ++a) {
    if (p.area_ranges[a].label == area_label) aind.push_back(a);
  }
  for (size_t m = 0; m < r.M; ++m) {
    if (p.max_dets[m] == max_dets) mind.push_back(m);
  }
  // s[..., aind, mind]: the two index lists broadcast together.
  std::vector<std::pair<size_t, size_t>> am;
  if (aind.size() == mind.size()) {
    for (size_t j = 0; j < aind.size(); ++j) am.emplace_back(aind[j], mind[j]);
  } else if (aind.size() == 1) {
    for (size_t m : mind) am.emplace_back(aind[0], m);
  } else if (mind.size() == 1) {
    for (size_t a : aind) am.emplace_back(a, mind[0]);
  } else {
    throw ConfigError("bad_params", "area label '" + area_label + "' and maxDets " + std::to_string(max_dets) +
                                        " select index lists that do not broadcast");
  }
  std::vector<double> s;
  for (size_t t : tind) {
    if (ap) {
      for (size_t ri = 0; ri < r.R; ++ri) {
        for (size_t k = 0; k < r.K; ++k) {
          for (const auto& [a, m] : am) s.push_back(r.precision_at(t, ri, k, a, m));
        }
      }
    } else {
      for (size_t k = 0; k < r.K; ++k) {
        for (const auto& [a, m] : am) s.push_back(r.recall_at(t, k, a, m));
      }
    }
  }
  return mean_valid(s);
}

struct StatSpec {
  bool ap;
  bool has_iou;
  double iou;
  const char* area;
  int max_dets_index;  ///< -1: the literal 100 of _summarize's default
};

// _summarizeDets
constexpr StatSpec kStats[12] = {
    {true, false, 0, "all", -1},    {true, true, .5, "all", 2},     {true, true, .75, "all", 2},
    {true, false, 0, "small", 2},   {true, false, 0, "medium", 2},  {true, false, 0, "large", 2},
    {false, false, 0, "all", 0},    {false, false, 0, "all", 1},    {false, false, 0, "all", 2},
    {false, false, 0, "small", 2},  {false, false, 0, "medium", 2}, {false, false, 0, "large", 2},
};

int stat_max_dets(const EvalResult& r, const StatSpec& s) {
  return s.max_dets_index < 0 ? 100 : r.params.max_dets[static_cast<size_t>(s.max_dets_index)];
}

}  // namespace

std::string format_summary(const EvalResult& r) {
  std::string out;
  const EvalParams& p = r.params;
  for (size_t i = 0; i < 12; ++i) {
    const StatSpec& s = kStats[i];
    char iou[64];
    if (s.has_iou) {
      std::snprintf(iou, sizeof iou, "%0.2f", s.iou);
    } else {
      std::snprintf(iou, sizeof iou, "%0.2f:%0.2f", p.iou_thrs.front(), p.iou_thrs.back());
    }
    char line[256];
    std::snprintf(line, sizeof line, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  s.ap ? "Average Precision" : "Average Recall", s.ap ? "(AP)" : "(AR)", iou, s.area,
                  stat_max_dets(r, s), r.stats[i]);
    out += line;
  }
  return out;
}

EvalResult evaluate(const io::CocoDataset& gt, const std::vector<Detection>& detections, const EvalParams& params,
                    const EvalOptions& options) {
  SkipReport skipped;
  Plan plan = make_plan(gt, detections, params, options.policy, skipped);
  const size_t I = plan.p.img_ids.size();
  const int threads = options.threads > 0 ? options.threads : tbb::task_arena::automatic;
  tbb::task_arena arena(threads);
  if (plan.p.iou_type == IouType::kSegm) arena.execute([&] { build_gt_masks(plan, options.policy, skipped); });

  // evaluate(): per image, in parallel; each image writes its own slot and
  // the first error (lowest image) is rethrown, whatever the scheduling.
  std::vector<std::vector<EvalImg>> per_image(I);
  std::vector<std::exception_ptr> errors(I);
  auto run_images = [&] {
    tbb::parallel_for(tbb::blocked_range<size_t>(0, I, 1), [&](const tbb::blocked_range<size_t>& range) {
      for (size_t i = range.begin(); i != range.end(); ++i) {
        try {
          per_image[i] = evaluate_image(plan, i);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    });
  };
  arena.execute(run_images);
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }

  EvalResult r;
  r.skipped = std::move(skipped);
  r.params = plan.p;
  r.cat_ids = plan.p.use_cats ? plan.p.cat_ids : std::vector<int64_t>{-1};
  r.T = plan.T;
  r.R = plan.p.rec_thrs.size();
  r.K = plan.K;
  r.A = plan.A;
  r.M = plan.p.max_dets.size();
  r.precision.assign(r.T * r.R * r.K * r.A * r.M, -1.0);
  r.recall.assign(r.T * r.K * r.A * r.M, -1.0);
  r.scores.assign(r.T * r.R * r.K * r.A * r.M, -1.0);

  // accumulate(): per category, the entries of every image in image order.
  std::vector<std::vector<const EvalImg*>> by_cat(r.K);
  for (size_t i = 0; i < I; ++i) {
    for (const EvalImg& e : per_image[i]) by_cat[e.k].push_back(&e);
  }
  arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<size_t>(0, r.K, 1), [&](const tbb::blocked_range<size_t>& range) {
      for (size_t k = range.begin(); k != range.end(); ++k) accumulate_category(plan, k, by_cat[k], r);
    });
  });

  // summarize()
  for (size_t i = 0; i < 12; ++i) {
    const StatSpec& s = kStats[i];
    r.stats[i] = summarize_one(r, s.ap, s.has_iou ? &s.iou : nullptr, s.area, stat_max_dets(r, s));
  }
  std::vector<double> v;
  for (size_t k = 0; k < r.K; ++k) {
    v.clear();
    for (size_t t = 0; t < r.T; ++t) {
      for (size_t ri = 0; ri < r.R; ++ri) v.push_back(r.precision_at(t, ri, k, 0, r.M - 1));
    }
    r.per_category_ap.emplace_back(r.cat_ids[k], mean_valid(v));
  }
  r.summary = format_summary(r);
  return r;
}

}  // namespace pasteflow::eval
