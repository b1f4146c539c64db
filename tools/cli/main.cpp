// pasteflow: small-object copy-paste augmentation, COCO tools and training.
#include <spdlog/sinks/stdout_color_sinks.h>

#include <exception>

#include "cli.hpp"
#include "pasteflow/core/error.hpp"

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("pasteflow");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");

  CLI::App app{"pasteflow: copy-paste augmentation for small-object detection (Kisantal et al.), COCO tools, training"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pasteflow 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "stderr log level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(log_level)); });

  pasteflow::cli::add_stats_command(app);
  pasteflow::cli::add_rle_command(app);
  pasteflow::cli::add_bench_command(app);
  pasteflow::cli::add_generate_command(app);
  pasteflow::cli::add_eval_command(app);
  pasteflow::cli::add_config_command(app);
  pasteflow::cli::add_augment_command(app);
  pasteflow::cli::add_preview_command(app);
  pasteflow::cli::add_train_command(app);
  pasteflow::cli::add_plot_command(app);
  pasteflow::cli::add_experiment_command(app);
  pasteflow::cli::add_predict_command(app);
  pasteflow::cli::add_slice_command(app);
  pasteflow::cli::add_import_command(app);
  pasteflow::cli::add_bench_pipeline_command(*app.get_subcommand("bench"));
  pasteflow::cli::add_bench_soak_command(*app.get_subcommand("bench"));
  pasteflow::cli::add_bench_distributed_command(*app.get_subcommand("bench"));
  pasteflow::cli::add_bench_slices_command(*app.get_subcommand("bench"));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const pasteflow::cli::Interrupted& e) {
    spdlog::warn("{}", e.what());
    return e.exit_code();
  } catch (const pasteflow::cli::ExitStatus& e) {
    spdlog::error("{}", e.what());
    return e.code();
  } catch (const pasteflow::Error& e) {
    spdlog::error("{}", e.what());
    spdlog::debug("reason code: {}", e.reason());  // the stable code, for scripts and the bad-input tests
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("unexpected error: {}", e.what());
    return 1;
  }
  return 0;
}
