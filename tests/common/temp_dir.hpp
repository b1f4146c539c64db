// Test helper: the running test's name as one path component. A
// parameterised test is called "Name/0"; used as is in a directory name it
// makes a nested directory, and removing "<prefix>_Name/0" left
// "<prefix>_Name" behind in /tmp after every run.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>

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

}  // namespace pasteflow::testing
