// COCO parsing benchmark and synthetic COCO generator (used by the CLI and
// bench/bench_parse).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::io {

struct ParseBenchResult {
  double load_s = 0;        ///< load_coco() wall time
  double bare_parse_s = 0;  ///< simdjson::padded_string::load + dom::parser::parse wall time
  double ratio = 0;         ///< load_s / bare_parse_s
  double peak_rss_mb = 0;   ///< peak RSS during load_coco (VmHWM, reset before the load)
  double file_mb = 0;       ///< file size (MiB)
  size_t images = 0, annotations = 0;
  double bare_peak_rss_mb = 0;  ///< peak RSS during the bare parse (VmHWM, reset before it)
  bool peak_reset = false;      ///< VmHWM could be reset (else peaks include earlier use)
};

/// One measured run of each on `path`: first the file is read once to warm
/// the page cache, then load_coco (peak RSS = VmHWM after resetting it via
/// /proc/self/clear_refs), the dataset is freed, then the bare simdjson parse
/// (padded_string::load + DOM parse, its own VmHWM). Both therefore read the
/// file from the page cache. Throws what load_coco throws.
ParseBenchResult bench_parse(const std::string& path, const LoadOptions& options = {});

/// Process memory, from /proc/self/status (MiB; -1 when unavailable).
double current_rss_mb();
double peak_rss_mb();
/// Resets VmHWM to the current RSS (Linux >= 4.0); false when not possible.
bool reset_peak_rss();

struct SyntheticCocoOptions {
  size_t images = 118287;
  size_t annotations = 860001;
  int min_vertices = 8;  ///< polygon vertices (each vertex = 2 numbers)
  int max_vertices = 40;
  uint64_t seed = 1;
  double crowd_fraction = 0.0105;    ///< crowd annotations (uncompressed RLE), as in COCO train2017
  double multipart_fraction = 0.03;  ///< polygon annotations with 2..max_parts parts
  int max_parts = 3;
  int crowd_min_runs = 20;  ///< run lengths per crowd RLE
  int crowd_max_runs = 300;
};

/// Writes a COCO-like instances file with the field layout of the real
/// instances_train2017.json (info, licenses, images with coco_url,
/// flickr_url, date_captured, license; annotations with segmentation, area,
/// iscrowd, image_id, bbox, category_id, id; the 80 categories with COCO's
/// non-contiguous ids), streamed to disk (path + ".tmp", then renamed).
/// Deterministic for a seed. About 490 MB at the defaults. Throws Error
/// "io_error" on write failure.
void generate_synthetic_coco(const std::string& path, const SyntheticCocoOptions& options = {});

}  // namespace pasteflow::io
