#include "pasteflow/model/det_utils.hpp"

#include <ATen/ATen.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/precision.hpp"

namespace pasteflow::model {

// ------------------------------------------------------------ anchors

AnchorGenerator::AnchorGenerator(std::vector<std::vector<double>> sizes,
                                 std::vector<std::vector<double>> aspect_ratios)
    : sizes_(std::move(sizes)), aspect_ratios_(std::move(aspect_ratios)) {
  Location where;
  where.key = "model.anchors";
  if (sizes_.size() != aspect_ratios_.size()) {
    throw ConfigError("bad_anchors", "anchor sizes and aspect ratios need the same number of levels", where);
  }
  for (size_t i = 0; i < sizes_.size(); ++i) {
    if (sizes_[i].empty() || aspect_ratios_[i].empty()) {
      throw ConfigError("bad_anchors", "anchor level " + std::to_string(i) + " has no sizes or no ratios", where);
    }
    cell_anchors_.push_back(generate_anchors(sizes_[i], aspect_ratios_[i]));
  }
}

at::Tensor AnchorGenerator::generate_anchors(const std::vector<double>& scales_in,
                                             const std::vector<double>& ratios_in) {
  // torch.as_tensor(python floats, dtype=float32): each value rounded to float.
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor scales = at::tensor(at::ArrayRef<double>(scales_in), at::TensorOptions().dtype(at::kDouble)).to(f32);
  const at::Tensor aspect_ratios =
      at::tensor(at::ArrayRef<double>(ratios_in), at::TensorOptions().dtype(at::kDouble)).to(f32);
  const at::Tensor h_ratios = at::sqrt(aspect_ratios);
  const at::Tensor w_ratios = 1 / h_ratios;
  const at::Tensor ws = (w_ratios.unsqueeze(1) * scales.unsqueeze(0)).view(-1);
  const at::Tensor hs = (h_ratios.unsqueeze(1) * scales.unsqueeze(0)).view(-1);
  const at::Tensor base = at::stack({-ws, -hs, ws, hs}, 1) / 2;
  return base.round();
}

std::vector<int64_t> AnchorGenerator::num_anchors_per_location() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < sizes_.size(); ++i) {
    out.push_back(static_cast<int64_t>(sizes_[i].size() * aspect_ratios_[i].size()));
  }
  return out;
}

std::vector<at::Tensor> AnchorGenerator::grid_anchors(const std::vector<Size2>& grid_sizes,
                                                      const std::vector<Size2>& strides) const {
  if (grid_sizes.size() != cell_anchors_.size() || strides.size() != cell_anchors_.size()) {
    throw Error("bad_tensor_argument",
                "AnchorGenerator: " + std::to_string(grid_sizes.size()) + " feature maps for " +
                    std::to_string(cell_anchors_.size()) + " anchor levels");
  }
  std::vector<at::Tensor> anchors;
  for (size_t i = 0; i < grid_sizes.size(); ++i) {
    const at::Tensor& base = cell_anchors_[i];
    const auto i32 = at::TensorOptions().dtype(at::kInt).device(base.device());
    // int32 arange times a 0-dim int64 stride stays int32 (torch promotion).
    const at::Tensor shifts_x = at::arange(0, grid_sizes[i][1], i32) * strides[i][1];
    const at::Tensor shifts_y = at::arange(0, grid_sizes[i][0], i32) * strides[i][0];
    const std::vector<at::Tensor> mesh = at::meshgrid({shifts_y, shifts_x}, "ij");
    const at::Tensor shift_x = mesh[1].reshape(-1);
    const at::Tensor shift_y = mesh[0].reshape(-1);
    const at::Tensor shifts = at::stack({shift_x, shift_y, shift_x, shift_y}, 1);
    anchors.push_back((shifts.view({-1, 1, 4}) + base.view({1, -1, 4})).reshape({-1, 4}));
  }
  return anchors;
}

std::vector<at::Tensor> AnchorGenerator::operator()(const ImageList& images,
                                                    const std::vector<at::Tensor>& features) const {
  const int64_t image_h = images.tensors.size(-2);
  const int64_t image_w = images.tensors.size(-1);
  std::vector<Size2> grids, strides;
  for (const at::Tensor& f : features) {
    const Size2 g{f.size(-2), f.size(-1)};
    grids.push_back(g);
    strides.push_back({image_h / g[0], image_w / g[1]});
  }
  // set_cell_anchors(dtype, device) then grid_anchors.
  AnchorGenerator moved = *this;
  // Anchors are fp32 even when autocast makes the features bf16 / fp16.
  const at::TensorOptions opts =
      features.at(0).options().dtype(full_precision_dtype(features.at(0).scalar_type()));
  for (at::Tensor& c : moved.cell_anchors_) c = c.to(opts);
  const std::vector<at::Tensor> per_level = moved.grid_anchors(grids, strides);
  const at::Tensor all = at::cat(per_level);
  return std::vector<at::Tensor>(images.image_sizes.size(), all);
}

// ------------------------------------------------------------ matcher

Matcher::Matcher(double high_threshold, double low_threshold, bool allow_low_quality_matches)
    : high_(high_threshold), low_(low_threshold), allow_low_quality_(allow_low_quality_matches) {
  if (low_ > high_) {
    throw ConfigError("bad_thresholds", "Matcher: low_threshold should be <= high_threshold");
  }
}

at::Tensor Matcher::operator()(const at::Tensor& match_quality_matrix) const {
  if (match_quality_matrix.numel() == 0) {
    if (match_quality_matrix.size(0) == 0) {
      throw InputError("no_ground_truth", "no ground-truth boxes available for one of the images during training");
    }
    throw InputError("no_proposals", "no proposal boxes available for one of the images during training");
  }
  auto max0 = match_quality_matrix.max(0);
  const at::Tensor matched_vals = std::get<0>(max0);
  at::Tensor matches = std::get<1>(max0);
  at::Tensor all_matches;
  if (allow_low_quality_) all_matches = matches.clone();

  const at::Tensor below = matched_vals < low_;
  const at::Tensor between = (matched_vals >= low_) & (matched_vals < high_);
  matches.index_put_({below}, kBelowLowThreshold);
  matches.index_put_({between}, kBetweenThresholds);

  if (allow_low_quality_) {
    // set_low_quality_matches_
    const at::Tensor highest = std::get<0>(match_quality_matrix.max(1));
    const std::vector<at::Tensor> pairs = at::where(match_quality_matrix == highest.unsqueeze(1));
    const at::Tensor& pred_inds_to_update = pairs[1];
    matches.index_put_({pred_inds_to_update}, all_matches.index({pred_inds_to_update}));
  }
  return matches;
}

// ------------------------------------------------------------ sampler

at::Tensor random_permutation(int64_t n, const c10::Device& device) {
  return at::randperm(n, at::TensorOptions().dtype(at::kLong).device(device));
}

at::Tensor hash_permutation(int64_t n, const c10::Device& device) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor keys = ((at::arange(n, opts) + 1) * int64_t{2654435761}).remainder(int64_t{1} << 32);
  return at::argsort(keys);
}

BalancedPositiveNegativeSampler::BalancedPositiveNegativeSampler(int64_t batch_size_per_image,
                                                                 double positive_fraction,
                                                                 PermutationFn permutation)
    : batch_size_per_image_(batch_size_per_image),
      positive_fraction_(positive_fraction),
      permutation_(std::move(permutation)) {}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> BalancedPositiveNegativeSampler::operator()(
    const std::vector<at::Tensor>& matched_idxs) const {
  std::vector<at::Tensor> pos_idx, neg_idx;
  for (const at::Tensor& m : matched_idxs) {
    const at::Tensor positive = at::where(m >= 1)[0];
    const at::Tensor negative = at::where(m == 0)[0];

    // int(batch_size_per_image * positive_fraction): Python truncation.
    int64_t num_pos = static_cast<int64_t>(static_cast<double>(batch_size_per_image_) * positive_fraction_);
    num_pos = std::min(positive.numel(), num_pos);
    int64_t num_neg = batch_size_per_image_ - num_pos;
    num_neg = std::min(negative.numel(), num_neg);

    const at::Tensor perm1 = permutation_(positive.numel(), positive.device()).slice(0, 0, num_pos);
    const at::Tensor perm2 = permutation_(negative.numel(), negative.device()).slice(0, 0, num_neg);

    const at::Tensor pos_per_image = positive.index({perm1});
    const at::Tensor neg_per_image = negative.index({perm2});

    at::Tensor pos_mask = at::zeros_like(m, at::TensorOptions().dtype(at::kByte));
    at::Tensor neg_mask = at::zeros_like(m, at::TensorOptions().dtype(at::kByte));
    pos_mask.index_put_({pos_per_image}, 1);
    neg_mask.index_put_({neg_per_image}, 1);
    pos_idx.push_back(pos_mask);
    neg_idx.push_back(neg_mask);
  }
  return {pos_idx, neg_idx};
}

PermutationFn permutation_by_name(const std::string& name) {
  if (name == "random") return random_permutation;
  if (name == "deterministic") return hash_permutation;
  Location where;
  where.key = "model.sampler";
  throw ConfigError("bad_choice", "unknown sampler '" + name + "' (random | deterministic)", where);
}

}  // namespace pasteflow::model
