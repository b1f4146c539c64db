// Shared helpers of the train/ tests: temporary directories and the tiny
// model config (configs/train/sample_tiny.yaml on the bundled sample).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "pasteflow/train/config.hpp"

namespace pasteflow::train::testing_util {

/// A fresh directory under the test temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "pasteflow_train_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str(const std::string& sub = {}) const { return sub.empty() ? path_.string() : (path_ / sub).string(); }

 private:
  std::filesystem::path path_;
};

/// configs/train/sample_tiny.yaml with the sample's absolute paths, the
/// output in `out`, and `extra` overrides on top.
inline TrainConfig tiny_config(const std::string& out, std::vector<std::string> extra = {}) {
  const std::string sample = PASTEFLOW_SAMPLE_DATA;
  std::vector<std::string> o = {
      "data.train_annotations=" + sample + "/annotations.json",
      "data.train_images=" + sample + "/images",
      "data.val_annotations=" + sample + "/annotations.json",
      "data.val_images=" + sample + "/images",
      "output_dir=" + out,
  };
  o.insert(o.end(), extra.begin(), extra.end());
  return load_train_config(std::string(PASTEFLOW_SOURCE_DIR) + "/configs/train/sample_tiny.yaml", o);
}

}  // namespace pasteflow::train::testing_util
