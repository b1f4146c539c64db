// Test helpers: the running test's name as one path component, and a
// scratch directory named after it. A parameterised test is called "Name/0";
// used as is in a directory name it makes a nested directory, and removing
// "<prefix>_Name/0" left "<prefix>_Name" behind in /tmp after every run.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>

namespace pasteflow::testing {

/// "<suite>_<name>" of the running test with every character other than
/// [A-Za-z0-9_-] replaced by '_'; "no_test" outside a test.
inline std::string test_path_component() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string s = info != nullptr ? std::string(info->test_suite_name()) + "_" + info->name() : "no_test";
  std::replace_if(
      s.begin(), s.end(),
      [](char c) { return !(std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-'); }, '_');
  return s;
}

/// <temp>/pasteflow_<prefix>_<pid>_<suite>_<test>, created empty, removed
/// with everything in it on destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix)
      : path_(std::filesystem::temp_directory_path() /
              ("pasteflow_" + prefix + "_" + std::to_string(::getpid()) + "_" + test_path_component())) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace pasteflow::testing
