// DatasetWriter: names kept inside OUT/images, staging published by rename,
// the manifest, cleanup of only what a run created, stale staging of killed
// runs, and what --overwrite may replace.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/file.hpp"
#include "pasteflow/dataset/writer.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

namespace fs = std::filesystem;
using pasteflow::Error;
using pasteflow::dataset::DatasetWriter;
using pasteflow::dataset::sanitize_file_name;
using pasteflow::dataset::WriterOptions;
using pasteflow::testing::read_file;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("pasteflow_dataset_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path operator/(const std::string& p) const { return path / p; }
};

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

/// Every file and directory below `dir`, relative, sorted.
std::set<std::string> tree(const fs::path& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(e.path().lexically_relative(dir).generic_string());
  return out;
}

/// A one-image COCO dataset naming `file_name`.
pasteflow::io::CocoDataset one_image(const std::string& file_name) {
  return pasteflow::io::parse_coco(R"({"images":[{"id":1,"width":4,"height":3,"file_name":")" + file_name +
                                       R"("}],"annotations":[],"categories":[{"id":1,"name":"x"}]})",
                                   "test.json");
}

/// Writes `name` with `text` and publishes it as the whole output.
void publish(const fs::path& out, const std::string& name, const std::string& text, bool overwrite = false) {
  WriterOptions options;
  options.command = "test";
  options.overwrite = overwrite;
  DatasetWriter w(out.string(), options);
  ASSERT_TRUE(w.try_reserve(name));
  w.write_image(name, text.data(), text.size());
  w.commit(one_image(name));
}

/// The pid of a process that has exited (a reaped child).
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

std::string host() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

/// A staging directory as a run with `pid` leaves it when killed.
fs::path staging_of(const fs::path& out, pid_t pid, bool with_marker = true) {
  const fs::path dir = out / (std::string(DatasetWriter::kStagingPrefix) + std::to_string(pid) + "-0");
  write_text(dir / "images/half.jpg", "half");
  if (with_marker) {
    write_text(dir / DatasetWriter::kStagingMarker, R"({"pasteflow_staging":1,"pid":)" + std::to_string(pid) +
                                                        R"(,"host":")" + host() + R"(","command":"augment"})");
  }
  return dir;
}

std::string reason_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.reason();
  }
  return "";
}

// ------------------------------------------------------------------ names

TEST(DatasetWriterRegression, AbsoluteAndDotDotFileNamesBecomeRelative) {
  EXPECT_EQ(sanitize_file_name("/home/user/photos/a.jpg"), "home/user/photos/a.jpg");
  EXPECT_EQ(sanitize_file_name("../../x.jpg"), "x.jpg");
  EXPECT_EQ(sanitize_file_name("a/../../b/./c.jpg"), "a/b/c.jpg");
  EXPECT_EQ(sanitize_file_name("C:\\data\\train\\a.jpg"), "data/train/a.jpg");
  EXPECT_EQ(sanitize_file_name("//srv//share/a.png"), "srv/share/a.png");
  EXPECT_EQ(sanitize_file_name(std::string("a\0b\nc.jpg", 9)), "a_b_c.jpg");
  EXPECT_EQ(sanitize_file_name("train/000001.jpg"), "train/000001.jpg");
  EXPECT_EQ(sanitize_file_name("..."), "...");
  EXPECT_EQ(sanitize_file_name("../.."), "");
  EXPECT_EQ(sanitize_file_name("/"), "");
  EXPECT_EQ(sanitize_file_name(""), "");
}

TEST(DatasetWriterRegression, SanitisedNamesThatCollideAreToldApartDeterministically) {
  TempDir dir;
  DatasetWriter w((dir / "out").string(), {});
  // Clean names keep theirs even when a changed name comes first.
  const std::vector<std::string> names =
      w.reserve_input_names({"../a.jpg", "a.jpg", "a_1.jpg", "/a.jpg", "sub/b.png", "sub/b.png", "/tmp/c.jpg", ".."});
  const std::vector<std::string> expected = {"a_2.jpg", "a.jpg",     "a_1.jpg",   "a_3.jpg",
                                             "sub/b.png", "sub/b_1.png", "tmp/c.jpg", ""};
  EXPECT_EQ(names, expected);
  EXPECT_FALSE(w.try_reserve("a_3.jpg"));
  EXPECT_TRUE(w.try_reserve("a_pf1.jpg"));
  EXPECT_EQ(reason_of([&] { w.try_reserve("../escape.jpg"); }), "unsafe_path");
  EXPECT_EQ(reason_of([&] { w.try_reserve("/etc/escape.jpg"); }), "unsafe_path");
  EXPECT_EQ(reason_of([&] { w.write_image("never_reserved.jpg", "x", 1); }), "unsafe_path");
}

// ------------------------------------------------------------------ publish

TEST(DatasetWriter, PublishesImagesAnnotationsAndManifestTogether) {
  TempDir dir;
  const fs::path out = dir / "out";
  write_text(out / "notes.txt", "the user's");
  {
    DatasetWriter w(out.string(), {});
    ASSERT_TRUE(w.try_reserve("sub/a.jpg"));
    w.write_image("sub/a.jpg", "pixels", 6);
    EXPECT_TRUE(fs::exists(fs::path(w.staging_dir()) / "images/sub/a.jpg"));
    EXPECT_FALSE(fs::exists(out / "images")) << "nothing appears before commit";
    EXPECT_EQ(w.commit(one_image("sub/a.jpg")), 1u);
  }
  EXPECT_EQ(tree(out), (std::set<std::string>{"notes.txt", "images", "images/sub", "images/sub/a.jpg",
                                              "annotations.json", DatasetWriter::kManifest}));
  EXPECT_EQ(read_file(out / "images/sub/a.jpg"), "pixels");
  EXPECT_EQ(read_file(out / "notes.txt"), "the user's");
  EXPECT_EQ(pasteflow::io::load_coco((out / "annotations.json").string()).images.size(), 1u);
  const std::string manifest = read_file(out / DatasetWriter::kManifest);
  EXPECT_NE(manifest.find("\"state\": \"complete\""), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"sub/a.jpg\""), std::string::npos) << manifest;
}

TEST(DatasetWriter, UncommittedRunRemovesOnlyWhatItCreated) {
  TempDir dir;
  {  // OUT did not exist: it goes too
    DatasetWriter w((dir / "fresh").string(), {});
    ASSERT_TRUE(w.try_reserve("a.jpg"));
    w.write_image("a.jpg", "x", 1);
  }
  EXPECT_FALSE(fs::exists(dir / "fresh"));
  {  // nor do the parents it created
    DatasetWriter w((dir / "new/deeper/out/").string(), {});
  }
  EXPECT_EQ(tree(dir.path), std::set<std::string>{});
  write_text(dir / "kept/user.txt", "mine");
  {
    DatasetWriter w((dir / "kept").string(), {});
    ASSERT_TRUE(w.try_reserve("a.jpg"));
    w.write_image("a.jpg", "x", 1);
  }
  EXPECT_EQ(tree(dir / "kept"), std::set<std::string>{"user.txt"});
}

// ------------------------------------------------------------------ killed runs

TEST(DatasetWriterRegression, StaleStagingOfAKilledRunIsRemovedAndNothingElse) {
  TempDir dir;
  const fs::path out = dir / "out";
  const fs::path stale = staging_of(out, dead_pid());
  const fs::path unmarked = staging_of(out, dead_pid(), /*with_marker=*/false);
  const fs::path live = staging_of(out, getpid());
  write_text(out / "user.txt", "mine");
  DatasetWriter w(out.string(), {});
  EXPECT_EQ(w.opened().removed_staging, std::vector<std::string>{stale.string()});
  EXPECT_EQ(w.opened().live_staging, std::vector<std::string>{live.string()});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(unmarked / "images/half.jpg")) << "without pasteflow's marker it is not ours";
  EXPECT_TRUE(fs::exists(live / "images/half.jpg")) << "its process is alive";
  EXPECT_EQ(read_file(out / "user.txt"), "mine");
}

TEST(DatasetWriterRegression, HalfPublishedOutputIsReplacedOnlyWithOverwrite) {
  TempDir dir;
  const fs::path out = dir / "out";
  publish(out, "a.jpg", "old");
  // Killed between the two renames: images/ published, annotations.json
  // not, the manifest still "publishing", the staging directory left.
  fs::remove(out / "annotations.json");
  std::string manifest = read_file(out / DatasetWriter::kManifest);
  manifest.replace(manifest.find("complete"), 8, "publishing");
  write_text(out / DatasetWriter::kManifest, manifest);
  const fs::path stale = staging_of(out, dead_pid());

  try {
    DatasetWriter w(out.string(), {});
    FAIL() << "a half-published output was mixed into";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "output_exists");
    EXPECT_NE(std::string(e.what()).find("half-published"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(stale)) << "the stale staging directory goes even when the run is refused";
  EXPECT_EQ(read_file(out / "images/a.jpg"), "old");

  publish(out, "b.jpg", "new", /*overwrite=*/true);
  EXPECT_EQ(tree(out / "images"), std::set<std::string>{"b.jpg"});
  EXPECT_TRUE(fs::exists(out / "annotations.json"));
}

// ------------------------------------------------------------------ replacing

TEST(DatasetWriterRegression, RerunWithoutOverwriteIsRefused) {
  TempDir dir;
  const fs::path out = dir / "out";
  publish(out, "a.jpg", "first");
  EXPECT_EQ(reason_of([&] { DatasetWriter w(out.string(), {}); }), "output_exists");
  EXPECT_EQ(read_file(out / "images/a.jpg"), "first");
  EXPECT_EQ(tree(out).size(), 4u) << "no staging directory left by the refused run";
}

TEST(DatasetWriterRegression, OverwriteReplacesAPreviousOutputAndNothingElse) {
  TempDir dir;
  const fs::path out = dir / "out";
  publish(out, "a.jpg", "first");
  write_text(out / "user.txt", "mine");
  {  // a rerun that fails leaves the previous output as it was
    WriterOptions options;
    options.overwrite = true;
    DatasetWriter w(out.string(), options);
    EXPECT_TRUE(w.opened().replaces_previous);
    ASSERT_TRUE(w.try_reserve("b.jpg"));
    w.write_image("b.jpg", "second", 6);
  }
  EXPECT_EQ(tree(out / "images"), std::set<std::string>{"a.jpg"});
  publish(out, "b.jpg", "second", /*overwrite=*/true);
  EXPECT_EQ(tree(out), (std::set<std::string>{"user.txt", "images", "images/b.jpg", "annotations.json",
                                              DatasetWriter::kManifest}));
  EXPECT_EQ(read_file(out / "images/b.jpg"), "second");
  EXPECT_EQ(read_file(out / "user.txt"), "mine");
}

TEST(DatasetWriterRegression, OutputPasteflowDidNotWriteIsNeverReplaced) {
  TempDir dir;
  WriterOptions overwrite;
  overwrite.overwrite = true;
  // No manifest: the user's own images/ and annotations.json.
  const fs::path user = dir / "user";
  write_text(user / "images/photo.jpg", "precious");
  EXPECT_EQ(reason_of([&] { DatasetWriter w(user.string(), overwrite); }), "foreign_output");
  write_text(dir / "ann_only/annotations.json", "keep me");
  EXPECT_EQ(reason_of([&] { DatasetWriter w((dir / "ann_only").string(), overwrite); }), "foreign_output");
  EXPECT_EQ(read_file(dir / "ann_only/annotations.json"), "keep me");
  // A published output into which the user put a file of their own.
  const fs::path mixed = dir / "mixed";
  publish(mixed, "a.jpg", "ours");
  write_text(mixed / "images/theirs.jpg", "precious");
  EXPECT_EQ(reason_of([&] { DatasetWriter w(mixed.string(), overwrite); }), "foreign_output");
  EXPECT_EQ(read_file(user / "images/photo.jpg"), "precious");
  EXPECT_EQ(read_file(mixed / "images/theirs.jpg"), "precious");
  EXPECT_EQ(read_file(mixed / "images/a.jpg"), "ours");
  EXPECT_EQ(tree(user), (std::set<std::string>{"images", "images/photo.jpg"}));
}

TEST(DatasetWriterRegression, OutputHoldingAnInputIsNeverReplaced) {
  TempDir dir;
  const fs::path out = dir / "out";
  publish(out, "a.jpg", "ours");
  WriterOptions options;
  options.overwrite = true;
  options.inputs = {(dir / "elsewhere.json").string(), (out / "images/../images/a.jpg").string()};
  EXPECT_EQ(reason_of([&] { DatasetWriter w(out.string(), options); }), "output_is_input");
  options.inputs = {(out / "annotations.json").string()};
  EXPECT_EQ(reason_of([&] { DatasetWriter w(out.string(), options); }), "output_is_input");
  options.inputs = {(dir / "elsewhere.json").string(), (dir / "out/other").string()};
  EXPECT_EQ(reason_of([&] { DatasetWriter w(out.string(), options); }), "");
  EXPECT_EQ(read_file(out / "images/a.jpg"), "ours");
}

}  // namespace
