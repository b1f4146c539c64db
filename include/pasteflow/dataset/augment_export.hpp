// The offline export of `pasteflow augment`: the pipeline's delivered
// samples (stages::Sample) turned into a new COCO dataset written through a
// DatasetWriter.
//
// Output scheme (OUT/images/ and OUT/annotations.json):
//  - the first delivered copy of an image that is not augmented is the
//    "original": same image id, its annotation records written back
//    unchanged (extras included), and its file copied byte for byte under
//    the image's file_name made safe (DatasetWriter::reserve_input_names: a
//    clean relative name is kept as it is; an absolute one or one with '..'
//    is written below OUT/images and the output's file_name says where);
//  - every other copy (augmented, or an extra oversampling copy) is a new
//    image: id = (largest image id of the input) + 1, + 2, ... in output
//    order, file name <stem>_pf<k><ext> beside the original's (k = 1, 2, ...
//    per source image, skipping names already taken), the source image's
//    extras plus "source_image_id". A copy whose pixels did not change (not
//    augmented, or nothing could be pasted) is the original file's bytes
//    with the original extension; a changed one is encoded as `format`
//    (jpg at `quality`, or lossless png; 16-bit images always png).
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
// Ids: a run whose new image or annotation ids could exceed INT64_MAX is
// refused before anything is written (InputError "id_overflow").
//
// Views (a pipeline that slices, AugmentExportConfig::windows): an image of
// `dataset` read as a window [x, y, w, h] of its file (a huge source image)
// is never copied as a file: its original is its pixels encoded as lossless
// PNG named <stem>_<x>_<y>_<w>_<h>.png beside the source's name, its record
// (the view's: the window's size, the view's id and annotations, extras
// "source_image_id" = the source image's id and "window": [x, y, w, h])
// written as it is; unchanged copies are that PNG's pixels again
// (<stem>_<x>_<y>_<w>_<h>_pf<k>.png), changed ones follow `format`.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/dataset/writer.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/stages/instances.hpp"
#include "pasteflow/stages/sample.hpp"
#include "pasteflow/stages/sampler.hpp"
#include "pasteflow/stages/size_class.hpp"

namespace pasteflow::dataset {

/// What the export needs of the pipeline's config, and the encoding.
struct AugmentExportConfig {
  std::string format = "jpg";  ///< changed images: "jpg" or "png"
  int quality = 95;            ///< JPEG quality
  stages::SizeClassConfig size;
  stages::InstancesConfig instances;
  bool allow_overlap = false;      ///< augment.placement.allow_overlap
  uint64_t ids_per_sample = 1024;  ///< augment.composite.ids_per_sample
  /// Per image of the dataset: the window [x, y, width, height] of its file
  /// it is read from (a view of a sliced image); width 0, or the vector
  /// empty: the whole file.
  std::vector<std::array<int64_t, 4>> windows;
};

/// Throws InputError "id_overflow" (naming the file, the record with the
/// largest id, and how many new ids the run needs) when exporting `tickets`
/// of `dataset` could give an image or annotation id above INT64_MAX.
void check_augment_ids(const io::CocoDataset& dataset, const std::vector<stages::SampleTicket>& tickets,
                       uint64_t ids_per_sample);

class AugmentExporter {
 public:
  /// `writer`, `dataset` and `tickets`' dataset must outlive the exporter.
  /// Checks the ids (check_augment_ids) and reserves the originals' names.
  AugmentExporter(DatasetWriter& writer, const io::CocoDataset& dataset, AugmentExportConfig config,
                  const std::vector<stages::SampleTicket>& tickets);

  /// Writes one delivered sample's image and records its annotations.
  void add(const stages::Sample& s);
  /// Writes the annotations and publishes the output (DatasetWriter::commit).
  void finish();

  /// The output dataset (complete after finish()).
  const io::CocoDataset& dataset() const noexcept { return out_; }
  uint64_t originals() const noexcept { return originals_; }
  uint64_t augmented() const noexcept { return augmented_; }
  uint64_t extra() const noexcept { return extra_; }
  uint64_t pasted() const noexcept { return pasted_; }
  uint64_t trimmed() const noexcept { return trimmed_; }
  /// The delivered samples' paste counters, summed.
  const stages::PasteCounters& counters() const noexcept { return counters_; }

 private:
  std::string new_name(uint32_t image_index, bool unchanged, const cv::Mat& image);
  bool windowed(uint32_t image_index) const;
  void copy_file(const std::string& from, const std::string& name);
  void encode(const cv::Mat& image, const std::string& name);
  void set_rle(io::AnnotationRecord& rec, const mask::Rle& m);
  void add_copy_annotations(const stages::Sample& s, int64_t image_id);
  int64_t next_id(uint64_t& next, const char* what);

  DatasetWriter& writer_;
  const io::CocoDataset& ds_;
  AugmentExportConfig cfg_;
  io::CocoDataset out_;
  stages::InstanceBuilder builder_;
  std::vector<std::string> names_;  ///< the originals' output names
  std::vector<bool> original_done_;
  std::vector<uint32_t> copy_counter_;
  uint64_t next_image_id_ = 1;  ///< <= INT64_MAX while ids are left (check_augment_ids)
  uint64_t next_ann_id_ = 1;
  uint64_t originals_ = 0, augmented_ = 0, extra_ = 0, pasted_ = 0, trimmed_ = 0;
  stages::PasteCounters counters_;
};

}  // namespace pasteflow::dataset
