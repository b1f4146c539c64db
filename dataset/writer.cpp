// DatasetWriter: sanitised output names, a staging directory published by
// rename, a manifest of what was published, cleanup of only what this run
// created (see the header for the rules).
#include "pasteflow/dataset/writer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include <simdjson.h>

#include "pasteflow/core/json_writer.hpp"

namespace pasteflow::dataset {

namespace fs = std::filesystem;

namespace {

Location at_file(const fs::path& path) {
  Location loc;
  loc.file = path.string();
  return loc;
}

Error io_error(const std::string& what, const fs::path& path, const std::error_code& ec) {
  return Error("io_error", what + (ec ? ": " + ec.message() : std::string()), at_file(path));
}

Error errno_error(const std::string& what, const fs::path& path) {
  return Error("io_error", what + ": " + std::strerror(errno), at_file(path));
}

/// Creates `path` (which must not exist) with `size` bytes of `data`.
void write_new_file(const fs::path& path, const void* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw errno_error("cannot create", path);
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const Error e = errno_error("cannot write", path);
      ::close(fd);
      ::unlink(path.c_str());
      throw e;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const Error e = errno_error("cannot close", path);
    ::unlink(path.c_str());
    throw e;
  }
}

/// rename() that fails with EEXIST instead of replacing `to`.
void rename_noreplace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EINVAL || errno == ENOSYS) {  // a file system without RENAME_NOREPLACE
    std::error_code ec;
    if (fs::exists(fs::symlink_status(to, ec))) {
      errno = EEXIST;
    } else if (std::rename(from.c_str(), to.c_str()) == 0) {
      return;
    }
  }
  throw errno_error("cannot rename " + from.string() + " to", to);
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

/// Parses a small JSON file of ours; false when it is missing, not a
/// regular file or not JSON.
bool parse_json_file(const fs::path& path, simdjson::dom::parser& parser, simdjson::dom::object& obj) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(path, ec))) return false;
  simdjson::padded_string json;
  if (simdjson::padded_string::load(path.string()).get(json) != simdjson::SUCCESS) return false;
  return parser.parse(json).get(obj) == simdjson::SUCCESS;
}

struct Marker {
  int64_t pid = 0;
  std::string host;
};

/// The marker of a staging directory; false when it is not pasteflow's.
bool read_marker(const fs::path& dir, Marker& m) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (!parse_json_file(dir / DatasetWriter::kStagingMarker, parser, obj)) return false;
  int64_t version = 0;
  std::string_view host;
  if (obj["pasteflow_staging"].get(version) != simdjson::SUCCESS || version != 1) return false;
  if (obj["pid"].get(m.pid) != simdjson::SUCCESS || m.pid <= 0) return false;
  if (obj["host"].get(host) != simdjson::SUCCESS) return false;
  m.host = std::string(host);
  return true;
}

bool process_alive(int64_t pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

struct Manifest {
  std::string command;
  std::string state;
  std::vector<std::string> files;
};

bool read_manifest(const fs::path& path, Manifest& m) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (!parse_json_file(path, parser, obj)) return false;
  int64_t version = 0;
  std::string_view command, state;
  simdjson::dom::array files;
  if (obj["pasteflow_manifest"].get(version) != simdjson::SUCCESS || version != 1) return false;
  if (obj["command"].get(command) != simdjson::SUCCESS || obj["state"].get(state) != simdjson::SUCCESS) return false;
  if (obj["files"].get(files) != simdjson::SUCCESS) return false;
  m.command = std::string(command);
  m.state = std::string(state);
  for (auto f : files) {
    std::string_view name;
    if (f.get(name) != simdjson::SUCCESS) return false;
    m.files.emplace_back(name);
  }
  return true;
}

/// True when `path` is `root` or lies below it (lexically, absolute paths).
bool inside(const fs::path& path, const fs::path& root) {
  const std::string p = path.generic_string(), r = root.generic_string();
  return p == r || (p.size() > r.size() && p.compare(0, r.size(), r) == 0 && p[r.size()] == '/');
}

fs::path absolute_normal(const fs::path& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  return (ec ? p : a).lexically_normal();
}

}  // namespace

std::string sanitize_file_name(std::string_view name) {
  if (name.size() >= 2 && name[1] == ':' && std::isalpha(static_cast<unsigned char>(name[0]))) name.remove_prefix(2);
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = i;
    while (j < name.size() && name[j] != '/' && name[j] != '\\') ++j;
    const std::string_view part = name.substr(i, j - i);
    if (!part.empty() && part != "." && part != "..") {
      if (!out.empty()) out += '/';
      for (const char c : part) {
        const unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '_' : c;
      }
    }
    i = j + 1;
  }
  return out;
}

DatasetWriter::DatasetWriter(const std::string& out_dir, WriterOptions options)
    : out_(out_dir), options_(std::move(options)) {
  try {
    std::error_code ec;
    const fs::file_status st = fs::status(out_, ec);
    if (!fs::exists(st)) {
      // The topmost directory this run creates, removed again by abort().
      fs::path top = fs::path(out_).lexically_normal();
      if (!top.has_filename()) top = top.parent_path();
      for (fs::path p = top.parent_path(); !p.empty() && p != p.root_path() && !fs::exists(p, ec); p = p.parent_path()) {
        top = p;
      }
      fs::create_directories(out_, ec);
      if (ec) throw io_error("cannot create the output directory", out_, ec);
      created_top_ = top.string();
    } else if (!fs::is_directory(st)) {
      throw Error("io_error", "the output is not a directory", at_file(out_));
    }
    clean_stale_staging();
    check_existing_output();
    create_staging();
  } catch (...) {
    abort();
    throw;
  }
}

DatasetWriter::~DatasetWriter() {
  if (!done_) abort();
}

void DatasetWriter::clean_stale_staging() {
  const std::string host = host_name();
  std::error_code ec;
  for (fs::directory_iterator it(out_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path dir = it->path();
    const std::string name = dir.filename().string();
    if (name.rfind(kStagingPrefix, 0) != 0) continue;
    std::error_code sec;
    if (!fs::is_directory(it->symlink_status(sec))) continue;
    Marker m;
    if (!read_marker(dir, m) || m.host != host) continue;  // not ours, or another machine's
    if (name.rfind(std::string(kStagingPrefix) + std::to_string(m.pid) + "-", 0) != 0) continue;
    if (process_alive(m.pid)) {
      opened_.live_staging.push_back(dir.string());
      continue;
    }
    fs::remove_all(dir, sec);
    if (sec) throw io_error("cannot remove the stale staging directory", dir, sec);
    opened_.removed_staging.push_back(dir.string());
  }
  if (ec) throw io_error("cannot list the output directory", out_, ec);
}

void DatasetWriter::check_existing_output() {
  const fs::path out(out_), images = out / kImagesDir, ann = out / kAnnotations, manifest = out / kManifest;
  std::error_code ec;
  const fs::file_status st_images = fs::symlink_status(images, ec), st_ann = fs::symlink_status(ann, ec);
  const bool has_images = fs::exists(st_images), has_ann = fs::exists(st_ann);
  if (!has_images && !has_ann) return;

  auto foreign = [&](const fs::path& what, const std::string& why) {
    return Error("foreign_output",
                 "was not written by pasteflow (" + why +
                     "): refusing to replace it or to write into it; choose another output directory",
                 at_file(what));
  };
  Manifest m;
  if (!read_manifest(manifest, m)) throw foreign(has_images ? images : ann, "no " + manifest.string());
  if (has_images) {
    if (!fs::is_directory(st_images)) throw foreign(images, "not a directory");
    const std::set<std::string> listed(m.files.begin(), m.files.end());
    for (fs::recursive_directory_iterator it(images, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code sec;
      const fs::file_status s = it->symlink_status(sec);
      if (fs::is_directory(s)) continue;
      const std::string rel = it->path().lexically_relative(images).generic_string();
      if (!fs::is_regular_file(s) || listed.count(rel) == 0) throw foreign(it->path(), "not in " + manifest.string());
    }
    if (ec) throw io_error("cannot list", images, ec);
  }
  if (has_ann && !fs::is_regular_file(st_ann)) throw foreign(ann, "not a regular file");
  opened_.previous_incomplete = m.state != "complete";
  if (!options_.overwrite) {
    throw Error("output_exists",
                "holds the " +
                    std::string(opened_.previous_incomplete ? "half-published output of an interrupted"
                                                            : "output of a previous") +
                    " pasteflow " + m.command + " run (use --overwrite to replace it)",
                at_file(out));
  }
  const fs::path images_abs = absolute_normal(images), ann_abs = absolute_normal(ann);
  for (const std::string& input : options_.inputs) {
    const fs::path p = absolute_normal(input);
    if (inside(p, images_abs) || p == ann_abs) {
      throw Error("output_is_input", "is an input of this run: refusing to replace the output that holds it",
                  at_file(input));
    }
  }
  opened_.replaces_previous = true;
  previous_files_ = std::move(m.files);
}

void DatasetWriter::create_staging() {
  const std::string pid = std::to_string(::getpid());
  std::error_code ec;
  for (int n = 0; staging_.empty(); ++n) {
    const fs::path dir = fs::path(out_) / (kStagingPrefix + pid + "-" + std::to_string(n));
    if (fs::create_directory(dir, ec)) {
      staging_ = dir.string();
    } else if (ec || n >= 1000) {
      throw io_error("cannot create a staging directory", dir, ec);
    }
  }
  JsonWriter w;
  w.begin_object().field("pasteflow_staging", 1).field("pid", static_cast<int64_t>(::getpid()));
  w.field("host", host_name()).field("command", options_.command).end_object();
  write_new_file(fs::path(staging_) / kStagingMarker, w.str().data(), w.str().size());
  const fs::path images = fs::path(staging_) / kImagesDir;
  if (!fs::create_directory(images, ec) || ec) throw io_error("cannot create", images, ec);
  created_dirs_.insert(images.string());
}

std::vector<std::string> DatasetWriter::reserve_input_names(const std::vector<std::string_view>& file_names) {
  std::vector<std::string> names(file_names.size());
  for (size_t i = 0; i < file_names.size(); ++i) names[i] = sanitize_file_name(file_names[i]);
  std::vector<size_t> changed;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) continue;
    if (names[i] != file_names[i] || !taken_.insert(names[i]).second) changed.push_back(i);
  }
  for (const size_t i : changed) {
    if (taken_.insert(names[i]).second) continue;
    const fs::path p(names[i]);
    const std::string stem = (p.parent_path() / p.stem()).generic_string(), ext = p.extension().string();
    for (uint64_t k = 1;; ++k) {
      std::string name = stem + "_" + std::to_string(k) + ext;
      if (taken_.insert(name).second) {
        names[i] = std::move(name);
        break;
      }
    }
  }
  return names;
}

bool DatasetWriter::try_reserve(const std::string& name) {
  if (name.empty() || sanitize_file_name(name) != name) {
    throw Error("unsafe_path", "\"" + name + "\" is not a clean relative path below the images directory",
                at_file(out_));
  }
  return taken_.insert(name).second;
}

void DatasetWriter::write_image(const std::string& name, const void* data, size_t size) {
  const std::string path = staged_image_path(name);
  write_new_file(path, data, size);
  written_.push_back(name);
}

std::string DatasetWriter::create_image_file(const std::string& name) {
  const std::string path = staged_image_path(name);
  write_new_file(path, nullptr, 0);
  written_.push_back(name);
  return path;
}

std::string DatasetWriter::staged_image_path(const std::string& name) {
  if (done_) throw Error("io_error", "the dataset writer has finished", at_file(out_));
  if (taken_.count(name) == 0 || sanitize_file_name(name) != name) {
    throw Error("unsafe_path", "\"" + name + "\" is not a reserved name below the images directory", at_file(out_));
  }
  const fs::path path = fs::path(staging_) / kImagesDir / name;
  const fs::path dir = path.parent_path();
  if (created_dirs_.count(dir.string()) == 0) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw io_error("cannot create", dir, ec);
    for (fs::path d = dir; created_dirs_.insert(d.string()).second; d = d.parent_path()) {
    }
  }
  return path.string();
}

uint64_t DatasetWriter::commit(const io::CocoDataset& coco) {
  if (done_) throw Error("io_error", "the dataset writer has finished", at_file(out_));
  const fs::path out(out_), stage(staging_);
  io::write_coco(coco, (stage / kAnnotations).string());

  std::vector<std::string> files = written_;
  std::sort(files.begin(), files.end());
  auto publish_manifest = [&](const char* state, const std::vector<std::string>& listed, const char* staged_name) {
    JsonWriter w(1);
    w.begin_object().field("pasteflow_manifest", 1).field("command", options_.command).field("state", state);
    w.field("images_dir", kImagesDir).field("annotations", kAnnotations);
    w.key("files").begin_array();
    for (const std::string& f : listed) w.value(f);
    w.end_array().end_object();
    const std::string text = w.str() + "\n";
    const fs::path staged = stage / staged_name;
    write_new_file(staged, text.data(), text.size());
    if (std::rename(staged.c_str(), (out / kManifest).c_str()) != 0) throw errno_error("cannot publish", out / kManifest);
  };

  // Until the end the manifest lists every file OUT/images may hold.
  std::vector<std::string> all = files;
  all.insert(all.end(), previous_files_.begin(), previous_files_.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  publish_manifest("publishing", all, "manifest-publishing.json");

  std::vector<std::pair<fs::path, fs::path>> moved;  // (from, to), undone in reverse on failure
  try {
    if (opened_.replaces_previous) {
      const fs::path replaced = stage / "replaced";
      std::error_code ec;
      if (!fs::create_directory(replaced, ec) || ec) throw io_error("cannot create", replaced, ec);
      for (const char* entry : {kImagesDir, kAnnotations}) {
        if (!fs::exists(fs::symlink_status(out / entry, ec))) continue;
        rename_noreplace(out / entry, replaced / entry);
        moved.emplace_back(out / entry, replaced / entry);
      }
    }
    for (const char* entry : {kImagesDir, kAnnotations}) {
      rename_noreplace(stage / entry, out / entry);
      moved.emplace_back(stage / entry, out / entry);
    }
  } catch (...) {
    for (auto it = moved.rbegin(); it != moved.rend(); ++it) {
      std::error_code ec;
      fs::rename(it->second, it->first, ec);
    }
    throw;
  }
  done_ = true;
  publish_manifest("complete", files, "manifest.json");
  std::error_code ec;
  fs::remove_all(stage, ec);
  fsync_dir(out);
  return files.size();
}

void DatasetWriter::abort() noexcept {
  done_ = true;
  std::error_code ec;
  if (!staging_.empty()) fs::remove_all(staging_, ec);
  if (created_top_.empty()) return;
  // The directories this writer created, from OUT up, each only when empty.
  const fs::path top(created_top_);
  fs::path p = fs::path(out_).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  while (fs::remove(p, ec) && p != top && p != p.parent_path()) p = p.parent_path();
}

}  // namespace pasteflow::dataset
