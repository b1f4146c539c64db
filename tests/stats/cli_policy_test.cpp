// Issue 10: `pasteflow stats` and `pasteflow rle` on bad annotation records,
// under --on-error strict (the error names the file, the byte offset, the
// JSON path and the annotation, in a short message) and skip (the run
// finishes and reports the records it left out, by reason). Inputs are
// generated here.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/command.hpp"
#include "common/file.hpp"

namespace {

namespace fs = std::filesystem;
using pasteflow::testing::CommandResult;
using pasteflow::testing::read_file;
using pasteflow::testing::run_command;

const std::string kBin = PASTEFLOW_BIN;

class CliPolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pasteflow_cli_policy_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Writes a COCO file with one 10x10 image, one category and `annotations`.
  std::string coco(const std::string& name, const std::string& annotations) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << R"({"images":[{"id":1,"width":10,"height":10,"file_name":"a.jpg"}],)"
                        << R"("categories":[{"id":1,"name":"thing"}],"annotations":[)" << annotations << "]}";
    return path;
  }
  CommandResult pasteflow(const std::string& args, bool keep_stderr = true) {
    return run_command(kBin + " " + args, keep_stderr);
  }

  fs::path dir_;
};

std::string ann(int id, const std::string& segmentation) {
  return R"({"id":)" + std::to_string(id) + R"(,"image_id":1,"category_id":1,"area":12,"bbox":[1,1,4,4],)" +
         R"("segmentation":)" + segmentation + "}";
}

const std::string kGood = ann(1, "[[1,1,5,1,5,5]]");
const std::string kHuge = ann(2, "[[1,1,1e308,1,5,5]]");
const std::string kEmptyList = ann(3, "[]");
const std::string kEmptyPart = ann(4, "[[]]");

TEST_F(CliPolicy, StatsPolygon1e308StrictNamesFileOffsetPathAndId) {
  const std::string in = coco("huge.json", kGood + "," + kHuge);
  const CommandResult r = pasteflow("stats " + in);
  EXPECT_EQ(r.status, 1) << r.output;
  const std::string offset = std::to_string(read_file(in).find("1e308"));
  EXPECT_NE(r.output.find(in + ":byte " + offset), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("annotations[1].segmentation[0][2]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("annotation id 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1e+308"), std::string::npos) << r.output;
  EXPECT_LT(r.output.size(), 400u) << r.output;  // no 309-digit number
}

TEST_F(CliPolicy, StatsEmptyPolygonListStrictFailsWhereItIsRasterised) {
  // Loads (the area field decides the class by default) ...
  const std::string in = coco("empty.json", kGood + "," + kEmptyList);
  EXPECT_EQ(pasteflow("stats " + in).status, 0);
  // ... and fails with its place when the mask decides.
  const CommandResult r = pasteflow("stats " + in + " --area-source mask");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(in + ":byte " + std::to_string(read_file(in).find(kEmptyList))), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("annotations[1].segmentation"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("annotation id 3"), std::string::npos) << r.output;
}

TEST_F(CliPolicy, StatsSkipFinishesAndCountsByReason) {
  const std::string in = coco("mixed.json", kGood + "," + kHuge + "," + kEmptyList + "," + kEmptyPart);
  const CommandResult r = pasteflow("stats " + in + " --area-source mask --on-error skip --json", false);
  ASSERT_EQ(r.status, 0) << r.output;
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(r.output);
  EXPECT_EQ(int64_t(doc["counts"]["total"]["objects"]), 1);
  EXPECT_EQ(int64_t(doc["skipped"]["polygon_range"]), 1);
  EXPECT_EQ(int64_t(doc["skipped"]["short_polygon"]), 1);
  EXPECT_EQ(int64_t(doc["skipped"]["empty_segmentation"]), 1);
  EXPECT_EQ(simdjson::dom::object(doc["skipped"]).size(), 3u);
  // The text form says it too.
  const CommandResult t = pasteflow("stats " + in + " --area-source mask --on-error skip");
  ASSERT_EQ(t.status, 0) << t.output;
  EXPECT_NE(t.output.find("3 bad record(s) skipped"), std::string::npos) << t.output;
}

TEST_F(CliPolicy, RleEmptyPolygonListStrictNamesItsPlace) {
  const std::string in = coco("empty.json", kGood + "," + kEmptyList);
  const std::string out = (dir_ / "out.json").string();
  const CommandResult r = pasteflow("rle " + in + " -o " + out);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(in + ":byte " + std::to_string(read_file(in).find(kEmptyList))), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("annotations[1].segmentation"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("annotation id 3"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliPolicy, RleSkipWritesTheGoodRecordsAndCountsTheRest) {
  const std::string in = coco("mixed.json", kGood + "," + kHuge + "," + kEmptyList + "," + kEmptyPart);
  const std::string out = (dir_ / "out.json").string();
  const CommandResult r = pasteflow("rle " + in + " -o " + out + " --on-error skip");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("skipped 1 record(s): empty_segmentation"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("skipped 1 record(s): polygon_range"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3 bad records skipped"), std::string::npos) << r.output;
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(read_file(out));
  const simdjson::dom::array anns = doc["annotations"];
  ASSERT_EQ(anns.size(), 1u);
  EXPECT_EQ(int64_t(anns.at(0)["id"]), 1);
  EXPECT_EQ(std::string_view(anns.at(0)["segmentation"]["counts"]).empty(), false);
}

TEST_F(CliPolicy, RleZeroWidthImageIsRefusedNotWrittenAsSizeNx0) {
  const std::string in = (dir_ / "zero.json").string();
  std::ofstream(in) << R"({"images":[{"id":1,"width":0,"height":422,"file_name":"a.jpg"}],)"
                    << R"("categories":[{"id":1,"name":"thing"}],"annotations":[)" << kGood << "]}";
  const std::string out = (dir_ / "out.json").string();
  const CommandResult r = pasteflow("rle " + in + " -o " + out);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("images[0].width"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  // Skip: the image and its annotation are left out, nothing is [422, 0].
  ASSERT_EQ(pasteflow("rle " + in + " -o " + out + " --on-error skip").status, 0);
  const std::string written = read_file(out);
  EXPECT_EQ(written.find("422"), std::string::npos) << written;
}

}  // namespace
