// pasteflow bench ...: benchmarks that print their figures (never timed tests).
#include <string>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/bench.hpp"

namespace pasteflow::cli {

namespace {

struct ParseArgs {
  std::string annotations;
  RunOptions run;
};

void run_bench_parse(const ParseArgs& a) {
  const io::ParseBenchResult r = io::bench_parse(a.annotations);
  JsonWriter w(a.run.json ? 0 : 2);
  w.begin_object();
  w.field("load_s", r.load_s).field("bare_parse_s", r.bare_parse_s).field("ratio", r.ratio);
  w.field("peak_rss_mb", r.peak_rss_mb).field("file_mb", r.file_mb);
  w.field("bare_peak_rss_mb", r.bare_peak_rss_mb).field("peak_reset", r.peak_reset);
  w.field("images", static_cast<uint64_t>(r.images)).field("annotations", static_cast<uint64_t>(r.annotations));
  w.end_object();
  print_stdout(w.str());
}

}  // namespace


void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: each prints its figures (JSON with --json)");
  bench->require_subcommand(1);

  auto parse = std::make_shared<ParseArgs>();
  CLI::App* cmd = bench->add_subcommand(
      "parse", "Full COCO load into pasteflow's structures vs a bare simdjson DOM parse of the same bytes, in one "
               "run: {load_s, bare_parse_s, ratio, peak_rss_mb, file_mb}");
  cmd->add_option("annotations", parse->annotations, "COCO instances JSON file")->required()->check(CLI::ExistingFile);
  add_json_option(cmd, parse->run);
  cmd->callback([parse] { run_bench_parse(*parse); });
}

}  // namespace pasteflow::cli
