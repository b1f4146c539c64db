#include "pasteflow/stages/transform.hpp"

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stages {

namespace {

ConfigError transform_error(const std::string& field, const std::string& message) {
  Location where;
  where.key = "augment.transform." + field;
  return ConfigError("bad_config", message, where);
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

void TransformConfig::validate() const {
  if (!(scale >= 0.0 && scale < 1.0)) throw transform_error("scale", "must be in [0, 1)");
  if (!(rotation >= 0.0 && rotation <= 180.0)) throw transform_error("rotation", "must be in [0, 180] degrees");
}

Transformer::Transformer(TransformConfig config) : config_(config) { config_.validate(); }

TransformParams Transformer::draw(Rng& rng) const {
  TransformParams p;
  p.scale = rng.uniform(1.0 - config_.scale, 1.0 + config_.scale);
  p.angle = rng.uniform(-config_.rotation, config_.rotation);
  p.flip = config_.hflip ? rng.bernoulli(0.5) : false;
  return p;
}

ObjectPatch Transformer::apply(const ObjectPatch& patch, const TransformParams& params) {
  ObjectPatch out;
  out.instance = patch.instance;
  out.source_id = patch.source_id;
  out.category_id = patch.category_id;
  out.size_class = patch.size_class;
  out.from_box = patch.from_box;
  out.box = patch.box;
  out.scale = patch.scale * params.scale;
  out.angle = patch.angle + params.angle;
  out.flipped = patch.flipped != params.flip;
  if (patch.empty() || patch.mask.empty()) return out;
  CV_Assert(patch.mask.type() == CV_8UC1 && patch.pixels.size() == patch.mask.size());
  if (!(params.scale > 0.0) || !std::isfinite(params.angle))
    throw Error("bad_transform", "scale must be positive and the angle finite");

  const double w = patch.mask.cols, h = patch.mask.rows;
  const double rad = params.angle * kPi / 180.0;
  // Exact values at multiples of 90 degrees keep the identity exact.
  double cs = std::cos(rad), sn = std::sin(rad);
  if (params.angle == 0.0) cs = 1.0, sn = 0.0;
  const double f = params.flip ? -1.0 : 1.0;
  const double s = params.scale;
  // Forward linear part A = s * R * F, R = [[cs, sn], [-sn, cs]] (CCW on screen).
  const double a00 = s * cs * f, a01 = s * sn;
  const double a10 = -s * sn * f, a11 = s * cs;
  // Half extents of the transformed patch rectangle (pixel squares included).
  const double ex = std::abs(a00) * w / 2 + std::abs(a01) * h / 2;
  const double ey = std::abs(a10) * w / 2 + std::abs(a11) * h / 2;
  const int out_w = static_cast<int>(std::ceil(2 * ex - 1e-9)) + 2;
  const int out_h = static_cast<int>(std::ceil(2 * ey - 1e-9)) + 2;
  const double cix = (w - 1) / 2, ciy = (h - 1) / 2;
  const double cox = (out_w - 1) / 2.0, coy = (out_h - 1) / 2.0;
  // Inverse: p = c_in + A^-1 (q - c_out), A^-1 = (1/s) F R^T.
  const double b00 = cs * f / s, b01 = -sn * f / s;
  const double b10 = sn / s, b11 = cs / s;
  cv::Matx23d inv(b00, b01, cix - (b00 * cox + b01 * coy),  //
                  b10, b11, ciy - (b10 * cox + b11 * coy));

  cv::Mat mask_f, warped_mask, warped_pixels;
  patch.mask.convertTo(mask_f, CV_32F);
  cv::warpAffine(mask_f, warped_mask, inv, cv::Size(out_w, out_h), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP,
                 cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::Mat binary = warped_mask >= 0.5f;  // 0 / 255
  const cv::Rect tight = cv::boundingRect(binary);
  if (tight.empty()) return out;
  cv::warpAffine(patch.pixels, warped_pixels, inv, cv::Size(out_w, out_h), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP,
                 cv::BORDER_REPLICATE);
  out.mask = binary(tight) / 255;  // 0 / 1, owned
  out.pixels = warped_pixels(tight).clone();
  out.area = static_cast<uint64_t>(cv::countNonZero(out.mask));
  return out;
}

}  // namespace pasteflow::stages
