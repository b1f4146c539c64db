// The input transform of torchvision's Mask R-CNN, GeneralizedRCNNTransform
// (torchvision 0.14, torchvision/models/detection/transform.py), written
// with the same LibTorch operations in the same order so that the results are
// the same as torchvision's. The data loader (stages/batch.hpp) and the
// LibTorch model share this one implementation.
//
// torchvision's forward() per image:   normalize -> resize (image, masks,
// boxes); then batch_images (zero padding to a multiple of size_divisible).
// postprocess() maps predicted boxes back with resize_boxes.
//
// Layout: images are float32 [C, H, W]; masks uint8 [N, H, W]; boxes
// float32 [N, 4] as x1, y1, x2, y2 in pixels; sizes are {height, width}.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <opencv2/core.hpp>

#include "pasteflow/core/random.hpp"

namespace pasteflow::stages::rcnn {

using Size2 = std::array<int64_t, 2>;  ///< {height, width}

/// The ImageNet statistics torchvision's detection models use.
inline const std::vector<double>& imagenet_mean() {
  static const std::vector<double> v{0.485, 0.456, 0.406};
  return v;
}
inline const std::vector<double>& imagenet_std() {
  static const std::vector<double> v{0.229, 0.224, 0.225};
  return v;
}

/// A decoded image (8-bit or 16-bit, 1 or 3 channels, channel order kept) as
/// a contiguous float32 [3, H, W] tensor in [0, 1], like torchvision's
/// convert_image_dtype: value / 255 (8-bit) or value / 65535 (16-bit), done
/// as a float32 tensor division. Grey images are repeated to 3 channels (as
/// PIL's convert("RGB")). Throws InputError "bad_image" for other depths or
/// channel counts, or an empty image.
at::Tensor image_to_tensor(const cv::Mat& image);

/// GeneralizedRCNNTransform.normalize: (image - mean[:, None, None]) /
/// std[:, None, None] with mean and std as tensors of image's dtype. Throws
/// ConfigError "bad_normalization" when mean/std do not have one value per
/// channel or std has a zero; InputError "bad_image" for a non-floating image.
at::Tensor normalize(const at::Tensor& image, const std::vector<double>& mean,
                     const std::vector<double>& std);

/// normalize(image_to_tensor(image), mean, std), mirrored left-right when
/// `flip` (torch.flip(-1), value-exact), in one pass over the pixels: for
/// 8-bit images each channel's 256 possible results are computed first by
/// those two functions on a ramp, then looked up, so the result is
/// bit-identical to the three-step form at a quarter of its memory traffic
/// (the batching stage is memory-bound). 16-bit images take the three-step
/// form. Throws what image_to_tensor and normalize throw.
at::Tensor normalized_image_tensor(const cv::Mat& image, const std::vector<double>& mean,
                                   const std::vector<double>& std, bool flip = false);

/// normalized_image_tensor(image, mean, std, flip) written into `out`, a
/// CPU float32 [3, H, W] tensor of any strides whose last dimension is
/// contiguous (typically an image's place in a batch tensor): the same
/// values, without a tensor of its own. 8-bit images take the lookup pass
/// straight into `out`; 16-bit ones the three-step form, then a copy.
/// `streaming`: 8-bit pixels are written with non-temporal stores (for a
/// destination not read again soon by this thread, such as a batch tensor;
/// leave it off for an image that is resized next). Throws what
/// normalized_image_tensor throws, and InputError "bad_image" for an `out`
/// of another size, dtype, device or layout.
void normalized_image_into(const cv::Mat& image, const std::vector<double>& mean, const std::vector<double>& std,
                           bool flip, const at::Tensor& out, bool streaming = false);

/// Whether resizing an 8-bit image normalised with (mean, std) at scale 1
/// (the size resized_size gives is the image's own) is an identity, bit for
/// bit: ATen's bilinear kernel then computes v * 1 + w * 0 for every output
/// value (weights 1 and 0 exactly; LibTorch 1.13 takes w = v, the same
/// source pixel, at equal sizes), which is v itself when every value the
/// normalisation can give is finite (inf * 0 is NaN) and, whatever w is,
/// none is -0 (-0 + +0 is +0). True for the ImageNet statistics; checked on
/// the 256 values of each channel. Throws what normalize throws.
bool identity_resize_is_exact(const std::vector<double>& mean, const std::vector<double>& std);

/// The scale factor _resize_image_and_masks computes for an h x w image:
/// min(self_min_size / min(h, w), self_max_size / max(h, w)), evaluated as
/// torchvision does it, on float32 0-dim tensors (a Python scalar divided by
/// a tensor is reciprocal(tensor) * scalar), then widened to double.
double resize_scale(int64_t h, int64_t w, double self_min_size, double self_max_size);

/// The size interpolate(scale_factor=s, recompute_scale_factor=True)
/// produces: floor(double(h) * s), floor(double(w) * s).
Size2 resized_size(int64_t h, int64_t w, double self_min_size, double self_max_size);

/// Nearest-neighbour resize of CPU uint8 masks [N, H, W] to `out` (h', w'),
/// mirrored left-right first when `flip`: bit-identical to
/// interpolate(masks[:, None].float(), size, "nearest")[:, 0].byte() (source
/// index min(floor(i * (float(in) / out)), in - 1), as ATen's nearest_idx),
/// but a row gather on bytes: an output row repeating the previous source
/// row is a copy. Throws InputError "bad_masks" for other tensors.
at::Tensor resize_masks_nearest(const at::Tensor& masks, Size2 out, bool flip = false);

/// The bilinear part of resize_image_and_masks, written into `out`, a CPU
/// float32 [C, h, w] tensor of any strides (typically a view into a padded
/// batch, so that collating needs no copy): ATen's own upsample_bilinear2d
/// CPU kernel (align_corners = False, no scale factors, as interpolate with
/// recompute_scale_factor = True calls it), reached through its dispatch
/// stub, which writes through the view's strides where the operator would
/// write a contiguous tensor and copy it. Bit-identical to
/// resize_image_and_masks(image, ...).image when out has the size
/// resized_size gives. Throws InputError "bad_image" for a non-[C, H, W]
/// float32 CPU image or an `out` of another dtype, device or channel count.
void resize_bilinear_into(const at::Tensor& image, const at::Tensor& out);

struct Resized {
  at::Tensor image;  ///< float [C, h', w']
  at::Tensor masks;  ///< uint8 [N, h', w'], undefined when no masks were given
};

/// _resize_image_and_masks (fixed_size = None): the image is interpolated
/// bilinearly (align_corners = False, recompute_scale_factor = True); the
/// masks with mode "nearest" and the same scale factor. torchvision runs the
/// masks through float32 as [N, 1, H, W] and back to uint8; nearest
/// interpolation only copies values, so CPU uint8 masks go through
/// resize_masks_nearest (the same source index for every output pixel);
/// other masks take torchvision's path.
/// `masks` may be undefined (boxes-only datasets) or [N, H, W] uint8.
Resized resize_image_and_masks(const at::Tensor& image, double self_min_size,
                               double self_max_size, const at::Tensor& masks = at::Tensor());

/// resize_boxes: x scaled by float32(new_w) / float32(orig_w), y likewise.
at::Tensor resize_boxes(const at::Tensor& boxes, Size2 original_size, Size2 new_size);

/// batch_images: zero-filled [N, C, ceil(maxH / d) * d, ceil(maxW / d) * d]
/// with image i copied to the top-left corner. Throws InputError
/// "bad_image" on an empty list or channel counts that differ.
at::Tensor batch_images(const std::vector<at::Tensor>& images, int64_t size_divisible = 32);

/// The padded size batch_images gives for images up to max_h x max_w.
Size2 padded_size(int64_t max_h, int64_t max_w, int64_t size_divisible = 32);

/// postprocess for boxes: predictions in the resized frame `image_size` back
/// to `original_size` (resize_boxes with the sizes swapped). Pasting
/// predicted masks into the image (paste_masks_in_image) belongs to the model.
at::Tensor postprocess_boxes(const at::Tensor& boxes, Size2 image_size, Size2 original_size);

/// GeneralizedRCNNTransform.resize's choice of the shorter-side size: in
/// training torch_choice(min_sizes), i.e. min_sizes[floor(uniform(0, n))],
/// drawn here from `rng` as min_sizes[rng.below(n)]; in evaluation the last
/// one. Throws ConfigError "bad_min_size" for an empty list or sizes <= 0.
int choose_min_size(const std::vector<int>& min_sizes, bool training, Rng& rng);

}  // namespace pasteflow::stages::rcnn
