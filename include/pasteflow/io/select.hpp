// A deterministic fraction of a COCO dataset's images: the low-data regime
// of an experiment (training config keys data.train_fraction and
// data.train_fraction_seed, issue 12).
//
// Selection: every image gets the key derive_seed(seed, {FNV-1a(file_name)})
// (the same key the mask importer's --split uses); images are ordered by key
// (ties by file name) and the first max(1, round(fraction * N)) are kept.
// The result depends on the file names, the fraction and the seed only —
// never on the images' order, ids or any thread count — and fractions nest:
// under one seed, the images of a smaller fraction are among those of a
// larger one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::io {

/// Ascending indices into dataset.images of the images kept at `fraction`
/// (in (0, 1]; ConfigError "bad_value" with key `key` otherwise) under
/// `seed`. An empty dataset gives none; fraction 1 gives every image.
std::vector<size_t> fraction_indices(const CocoDataset& dataset, double fraction, uint64_t seed,
                                     const char* key = "data.train_fraction");

/// `dataset` restricted to the images `keep` (ascending indices) and their
/// annotations; records, ids, categories and strings otherwise unchanged,
/// and annotation locations (file, byte offset) still name the source file.
CocoDataset keep_images(const CocoDataset& dataset, const std::vector<size_t>& keep);

/// Appends the categories of `from` to `to` (ids, names, supercategories
/// copied into `to`'s string pool; their extra fields too when `keep_extra`):
/// the category list of a dataset derived from another (a mosaic, a list of
/// images to predict, a benchmark's one-image dataset).
void copy_categories(const CocoDataset& from, CocoDataset& to, bool keep_extra);

}  // namespace pasteflow::io
