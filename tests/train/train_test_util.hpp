// Shared helpers of the train/ tests: temporary directories and the tiny
// model config (configs/train/sample_tiny.yaml on the bundled sample).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/file.hpp"

#include "pasteflow/train/config.hpp"

namespace pasteflow::train::testing_util {

// Paths of the build (compile definitions of the test_train executable). The
// test files are compiled several to a translation unit (tests/CMakeLists.txt,
// UNITY): they take these with `using`, never define their own.
inline const std::string kSource = PASTEFLOW_SOURCE_DIR;
inline const std::string kSample = PASTEFLOW_SAMPLE_DATA;
inline const std::string kBin = PASTEFLOW_BIN;
/// The tiny model on the bundled sample (the trainer's and experiments' tests).
inline const std::string kTiny = kSource + "/configs/train/sample_tiny.yaml";

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

/// Starts `command` (stdout discarded, stderr to `stderr_file`), waits until
/// `metrics_file` shows iteration 2 (log_period 1; at most 50 s), sends
/// `sig` and returns the wait status (-1 when fork fails).
inline int run_until_signal(const std::string& command, const std::string& metrics_file,
                            const std::string& stderr_file, int sig) {
  const std::string cmd = "exec " + command + " >/dev/null 2>" + stderr_file;
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(50);
  while (std::chrono::steady_clock::now() < deadline &&
         pasteflow::testing::read_file(metrics_file).find("\"iter\":2,") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

}  // namespace pasteflow::train::testing_util
