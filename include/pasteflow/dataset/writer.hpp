// The one dataset writer: every command that writes a COCO dataset (images
// and an annotation file) writes it through a DatasetWriter, so the rules
// that keep users' files safe live in one place.
//
// Layout: OUT/images/<name> and OUT/annotations.json, plus
// OUT/.pasteflow-manifest.json, which lists what pasteflow published there.
//
// Rules:
//  - Paths: every file is written below OUT/images under a name that
//    sanitize_file_name() made relative (no root or drive, no '.', '..' or
//    empty component); two inputs that sanitise to one name are told apart
//    deterministically (reserve_input_names). Nothing is written anywhere
//    else; inputs are only ever read.
//  - Staging: a run writes into a fresh directory
//    OUT/.pasteflow-staging-<pid>-<n>/ (with a marker file saying it is
//    pasteflow's) and commit() publishes it by rename: images/ and
//    annotations.json appear together (the manifest marks the short window
//    between the two renames as "publishing"), or not at all.
//  - Cleanup: abort() (or the destructor of an uncommitted writer) removes
//    the staging directory and the directories of OUT's path that this
//    writer created, when empty; nothing else. Opening OUT removes the staging directories of
//    killed runs: a marker naming this host and a process that is gone.
//  - Replacing: an existing OUT/images or OUT/annotations.json is replaced
//    only with `overwrite` and only when a previous run's manifest lists it
//    and every file under OUT/images; anything else is refused before a file
//    is written, and is never deleted or mixed into. The old output stays in
//    place until commit(): a failed rerun leaves it untouched. Other files in
//    OUT are never touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::dataset {

/// `file_name` as a relative path below the images directory: '/' and '\'
/// separate components; a root, a drive ("C:"), and '.', '..' and empty
/// components are dropped; control characters become '_'. Returns "" when
/// no component is left.
std::string sanitize_file_name(std::string_view file_name);

struct WriterOptions {
  /// Replace an output that a previous pasteflow run published in OUT.
  bool overwrite = false;
  /// The command writing ("augment"): recorded in the marker and manifest.
  std::string command;
  /// Inputs of the run (annotation file, image root, image files): an
  /// output that holds one of them is never replaced (Error "output_is_input").
  std::vector<std::string> inputs;
};

/// What opening OUT found and did; the CLI logs it.
struct OpenReport {
  std::vector<std::string> removed_staging;  ///< staging directories of killed runs, removed
  std::vector<std::string> live_staging;     ///< staging directories of running processes, left alone
  bool replaces_previous = false;  ///< commit() replaces a previous run's published output
  bool previous_incomplete = false;  ///< ... which a killed run left half-published
};

class DatasetWriter {
 public:
  static constexpr const char* kImagesDir = "images";
  static constexpr const char* kAnnotations = "annotations.json";
  static constexpr const char* kManifest = ".pasteflow-manifest.json";
  static constexpr const char* kStagingPrefix = ".pasteflow-staging-";
  static constexpr const char* kStagingMarker = ".pasteflow-staging";

  /// Opens OUT (created when missing): removes stale staging directories,
  /// checks an existing output against the rules above and creates this
  /// run's staging directory. Throws Error "output_exists" (a previous
  /// output without `overwrite`), "foreign_output" (an output pasteflow did
  /// not publish), "output_is_input", "io_error".
  DatasetWriter(const std::string& out_dir, WriterOptions options);
  /// Uncommitted: abort().
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  const OpenReport& opened() const noexcept { return opened_; }
  const std::string& out_dir() const noexcept { return out_; }
  const std::string& staging_dir() const noexcept { return staging_; }

  /// Output names for the input file names `file_names`, in their order:
  /// each is sanitize_file_name() of its input. Names that were already
  /// clean are reserved first (in order), then the changed ones; a taken
  /// name becomes "<stem>_<k><ext>" with the first free k = 1, 2, ...
  /// Throws InputError "bad_file_name" for a name with nothing left.
  std::vector<std::string> reserve_input_names(const std::vector<std::string_view>& file_names);
  /// Reserves a name built by the caller (relative, already sanitised);
  /// false when it is taken. Throws Error "unsafe_path" for any other name.
  bool try_reserve(const std::string& name);

  /// Writes images/<name> (a reserved name) in the staging directory, never
  /// replacing a file. Throws Error "io_error".
  void write_image(const std::string& name, const void* data, size_t size);
  /// Creates images/<name> (a reserved name) empty in the staging directory
  /// (O_EXCL) and returns its path, for a caller that streams a large file
  /// into it (the mosaic's TIFF); the file is published by commit() like
  /// write_image()'s. Throws Error "unsafe_path", "io_error".
  std::string create_image_file(const std::string& name);

  /// Writes `coco` (io::write_coco) and publishes: the previous output (if
  /// replaced) is moved into the staging directory, images/ and
  /// annotations.json are renamed into OUT, the manifest is rewritten, the
  /// staging directory is removed. Returns the number of image files
  /// published.
  uint64_t commit(const io::CocoDataset& coco);

  /// Removes what this run created (the staging directory; the directories
  /// of OUT's path this writer created, when empty). Idempotent; never throws.
  void abort() noexcept;

 private:
  void clean_stale_staging();
  void check_existing_output();
  void create_staging();
  /// Checks `name` and creates its directory in staging; returns the path.
  std::string staged_image_path(const std::string& name);

  std::string out_;
  WriterOptions options_;
  OpenReport opened_;
  std::string staging_;
  std::string created_top_;  ///< the topmost directory of OUT's path this writer created, "" when none
  bool done_ = false;
  std::set<std::string> taken_;
  std::set<std::string> created_dirs_;
  std::vector<std::string> written_;       ///< names below images/, in write order
  std::vector<std::string> previous_files_;  ///< files the previous manifest lists
};

}  // namespace pasteflow::dataset
