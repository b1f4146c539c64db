// Checkpoint files: atomic writing, naming, listing and pruning, the
// round trip of model + SGD momentum + trainer state, generator states,
// errors; the optimizer's parameter groups.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/trainer.hpp"
#include "train_test_util.hpp"
#include "common/file.hpp"

namespace pasteflow::train {
namespace {

using pasteflow::testing::read_file;

namespace fs = std::filesystem;
using testing_util::TempDir;

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

/// A small module with a weight, a bias, a norm layer and a frozen part.
struct NetImpl : torch::nn::Module {
  explicit NetImpl(int64_t width = 4) {
    fc1 = register_module("fc1", torch::nn::Linear(3, width));
    norm = register_module("norm", torch::nn::GroupNorm(2, width));
    fc2 = register_module("fc2", torch::nn::Linear(width, 2));
    frozen = register_module("frozen", torch::nn::Linear(2, 2));
    for (auto& p : frozen->parameters()) p.set_requires_grad(false);
  }
  at::Tensor forward(const at::Tensor& x) { return frozen(fc2(at::relu(norm(fc1(x))))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, frozen{nullptr};
  torch::nn::GroupNorm norm{nullptr};
};
TORCH_MODULE(Net);

void sgd_steps(Net& net, torch::optim::SGD& opt, int n, uint64_t seed) {
  torch::manual_seed(seed);
  for (int i = 0; i < n; ++i) {
    const at::Tensor x = at::randn({5, 3});
    opt.zero_grad();
    net->forward(x).pow(2).sum().backward();
    opt.step();
  }
}

TEST(Checkpoint, FileNames) {
  EXPECT_EQ(checkpoint_file_name(0), "model_0000000.pt");
  EXPECT_EQ(checkpoint_file_name(36000), "model_0036000.pt");
  EXPECT_EQ(checkpoint_file_name(123456789), "model_123456789.pt");
}

TEST(Checkpoint, AtomicWriteLeavesNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.str("a.txt");
  write_file_atomic(path, std::string("first"));
  write_file_atomic(path, std::string("second"));
  EXPECT_EQ(read_file(path), "second");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  try {
    write_file_atomic(dir.str("missing/b.txt"), std::string("x"));
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "cannot_write");
    EXPECT_EQ(e.where().file, dir.str("missing/b.txt"));
  }
}

TEST(Checkpoint, ListLatestPrune) {
  TempDir dir;
  for (uint64_t i : {2, 10, 1, 7}) touch(dir.path() / checkpoint_file_name(i));
  for (const char* other : {"best.pt", "model_12.pt", "model_x.pt", "model_0000003.pt.tmp-1", "last_checkpoint"}) {
    touch(dir.path() / other);
  }
  auto all = list_checkpoints(dir.str());
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].first, 1u);
  EXPECT_EQ(all[3].first, 10u);
  EXPECT_EQ(latest_checkpoint(dir.str()), dir.str(checkpoint_file_name(10)));
  EXPECT_TRUE(prune_checkpoints(dir.str(), 0).empty());
  const auto removed = prune_checkpoints(dir.str(), 2);
  ASSERT_EQ(removed.size(), 2u);
  all = list_checkpoints(dir.str());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 7u);
  EXPECT_EQ(all[1].first, 10u);
  EXPECT_TRUE(fs::exists(dir.path() / "best.pt"));
  EXPECT_TRUE(list_checkpoints(dir.str("nope")).empty());
  EXPECT_EQ(latest_checkpoint(dir.str("nope")), "");
}

TEST(Checkpoint, ParamGroupsAndDecay) {
  Net net;
  const ParamGroups g = param_groups(*net);
  EXPECT_EQ(g.weights, (std::vector<std::string>{"fc1.weight", "fc2.weight"}));
  EXPECT_EQ(g.norms, (std::vector<std::string>{"norm.weight", "norm.bias"}));
  EXPECT_EQ(g.biases, (std::vector<std::string>{"fc1.bias", "fc2.bias"}));
  SolverConfig s;
  s.weight_decay = 0.01;
  s.weight_decay_norm = 0.0;
  s.decay_bias = false;
  auto opt = make_optimizer(*net, s, 0.5);
  ASSERT_EQ(opt->param_groups().size(), 3u);
  const auto decay = [&](size_t i) {
    return static_cast<const torch::optim::SGDOptions&>(opt->param_groups()[i].options()).weight_decay();
  };
  EXPECT_EQ(decay(0), 0.01);
  EXPECT_EQ(decay(1), 0.0);
  EXPECT_EQ(decay(2), 0.0);
  set_learning_rate(*opt, 0.125);
  for (const auto& group : opt->param_groups()) EXPECT_EQ(group.options().get_lr(), 0.125);
}

TEST(Checkpoint, RoundTripContinuesIdentically) {
  TempDir dir;
  SolverConfig solver;
  Net a;
  auto opt_a = make_optimizer(*a, solver, 0.1);
  sgd_steps(a, *opt_a, 3, 1);

  TrainState s;
  s.iteration = 3;
  s.epoch = 2;
  s.batch = 5;
  s.rng = capture_torch_rng();
  s.rng.model = Rng(7).state();
  s.best_metric = 0.25;
  s.best_iteration = 2;
  s.lr = 0.1;
  s.config_yaml = "solver:\n  max_iter: 3\n";
  const std::string path = dir.str(checkpoint_file_name(3));
  save_checkpoint(path, *a, *opt_a, s);

  torch::manual_seed(99);
  Net b;  // different initial weights
  auto opt_b = make_optimizer(*b, solver, 0.1);
  const TrainState t = load_checkpoint(path, *b, *opt_b);
  EXPECT_EQ(t.iteration, 3u);
  EXPECT_EQ(t.epoch, 2u);
  EXPECT_EQ(t.batch, 5u);
  EXPECT_EQ(t.best_metric, 0.25);
  EXPECT_EQ(t.best_iteration, 2u);
  EXPECT_EQ(t.lr, 0.1);
  EXPECT_EQ(t.config_yaml, s.config_yaml);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.rng.model.s[i], s.rng.model.s[i]);
  EXPECT_TRUE(at::equal(t.rng.torch_cpu, s.rng.torch_cpu));
  for (const auto& [k, v] : model::state_dict(*a)) EXPECT_TRUE(at::equal(v, model::state_dict(*b).at(k))) << k;

  // Momentum is restored: one more identical step keeps both equal.
  sgd_steps(a, *opt_a, 1, 5);
  sgd_steps(b, *opt_b, 1, 5);
  for (const auto& [k, v] : model::state_dict(*a)) EXPECT_TRUE(at::equal(v, model::state_dict(*b).at(k))) << k;

  // Without the momentum (a fresh optimizer) the same step differs.
  Net c;
  auto opt_c = make_optimizer(*c, solver, 0.1);
  load_checkpoint(path, *c, *opt_c);
  opt_c->state().clear();
  sgd_steps(c, *opt_c, 1, 5);
  EXPECT_FALSE(at::equal(model::state_dict(*a).at("fc1.weight"), model::state_dict(*c).at("fc1.weight")));

  // The model part alone, as model::load_state_dict takes it.
  const auto weights = checkpoint_model_weights(path);
  EXPECT_EQ(weights.size(), model::state_dict(*a).size());
  EXPECT_TRUE(weights.count("fc1.weight"));
}

TEST(Checkpoint, TorchGeneratorStateRoundTrip) {
  torch::manual_seed(3);
  const RngStates s = capture_torch_rng();
  const at::Tensor first = at::randperm(1000);
  const at::Tensor other = at::randperm(1000);
  EXPECT_FALSE(at::equal(first, other));
  restore_torch_rng(s);
  EXPECT_TRUE(at::equal(first, at::randperm(1000)));
}

TEST(Checkpoint, Errors) {
  TempDir dir;
  SolverConfig solver;
  Net net;
  auto opt = make_optimizer(*net, solver, 0.1);
  // A weights-only file is not a training checkpoint.
  model::save_weights(*net, dir.str("weights.pt"));
  try {
    load_checkpoint(dir.str("weights.pt"), *net, *opt);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "bad_checkpoint");
    EXPECT_EQ(e.where().file, dir.str("weights.pt"));
  }
  // Garbage and missing files.
  std::ofstream(dir.str("junk.pt")) << "not a zip";
  try {
    load_checkpoint(dir.str("junk.pt"), *net, *opt);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "not_a_torch_archive");
  }
  EXPECT_THROW(load_checkpoint(dir.str("missing.pt"), *net, *opt), InputError);
  // Another architecture: nothing is changed.
  TrainState s;
  save_checkpoint(dir.str("wide.pt"), *Net(8), *make_optimizer(*Net(8), solver, 0.1), s);
  const at::Tensor before = net->fc1->weight.detach().clone();
  try {
    load_checkpoint(dir.str("wide.pt"), *net, *opt);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "weight_shape_mismatch");
    EXPECT_EQ(e.where().file, dir.str("wide.pt"));
    // The message names the file, the parameter and both shapes.
    const std::string what = e.what();
    EXPECT_NE(what.find(dir.str("wide.pt")), std::string::npos) << what;
    EXPECT_NE(what.find("tensor 'fc1.bias' has shape [8], the model expects [4]"), std::string::npos) << what;
  }
  EXPECT_TRUE(at::equal(before, net->fc1->weight));
}

// A killed run leaves model_N.pt.tmp-PID behind (247 MB after six kills);
// only that exact pattern, of a process that is gone, is removed.
TEST(CheckpointRegression, KilledRunTemporaryFilesAreRemovedAtStart) {
  TempDir dir;
  // A PID that no process has any more: a child that has exited and been reaped.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  const std::string dead = std::to_string(child);
  const std::string alive = std::to_string(getpid());
  const std::vector<std::string> stale = {"model_0000002.pt.tmp-" + dead, "model_12345678.pt.tmp-" + dead};
  const std::vector<std::string> kept = {
      "model_0000002.pt",                // a checkpoint
      "model_0000004.pt.tmp-" + alive,   // a live process is writing it
      "model_0000002.pt.tmp-x" + dead,   // not a PID
      "model_0000002.pt.tmp-",           // no PID
      "model_2.pt.tmp-" + dead,          // not a checkpoint name
      "best.pt.tmp-" + dead,             // another file's temporary
      "notes.txt",
  };
  for (const auto& n : stale) touch(dir.path() / n);
  for (const auto& n : kept) touch(dir.path() / n);
  const std::vector<std::string> removed = remove_stale_temporaries(dir.str());
  std::vector<std::string> expected;
  for (const auto& n : stale) expected.push_back(dir.str(n));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(removed, expected);
  for (const auto& n : stale) EXPECT_FALSE(fs::exists(dir.path() / n)) << n;
  for (const auto& n : kept) EXPECT_TRUE(fs::exists(dir.path() / n)) << n;
  EXPECT_TRUE(remove_stale_temporaries(dir.str("absent")).empty());
}

// A truncated, empty or random .pt was answered with a hint about
// converting torchvision state dicts; it now says what is wrong with it.
TEST(CheckpointRegression, CorruptFileSaysTruncatedEmptyOrNotAnArchive) {
  TempDir dir;
  SolverConfig solver;
  Net net;
  auto opt = make_optimizer(*net, solver, 0.1);
  sgd_steps(net, *opt, 2, 1);
  TrainState state;
  state.iteration = 2;
  save_checkpoint(dir.str("good.pt"), *net, *opt, state);
  const std::string good = read_file(dir.str("good.pt"));
  ASSERT_GT(good.size(), 200u);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir.str(name), std::ios::binary) << bytes;
    return dir.str(name);
  };
  std::string random(4096, '\0');
  uint32_t x = 12345;
  for (char& c : random) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  const std::vector<char> tensor_bytes = torch::pickle_save(c10::IValue(at::zeros({2})));
  struct Case {
    std::string path, reason, says;
  };
  const std::vector<Case> cases = {
      {write("half.pt", good.substr(0, good.size() / 2)), "truncated_weights_file", "truncated"},
      {write("short.pt", good.substr(0, good.size() - 10)), "truncated_weights_file", "truncated"},
      {write("empty.pt", ""), "empty_weights_file", "empty"},
      {write("random.pt", random), "not_a_torch_archive", "not a PyTorch archive"},
      {write("tensor.pt", std::string(tensor_bytes.begin(), tensor_bytes.end())), "bad_weights_file",
       "not a pasteflow checkpoint"},
  };
  const at::Tensor before = net->fc1->weight.detach().clone();
  for (const Case& c : cases) {
    for (int reader = 0; reader < 2; ++reader) {
      try {
        if (reader == 0) {
          load_checkpoint(c.path, *net, *opt);
        } else {
          model::load_weights(*net, c.path);
        }
        ADD_FAILURE() << c.path << ": no error";
      } catch (const InputError& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.reason(), c.reason) << what;
        EXPECT_EQ(e.where().file, c.path);
        EXPECT_NE(what.find(c.says), std::string::npos) << what;
        EXPECT_EQ(what.find("torchvision"), std::string::npos) << what;
      }
    }
  }
  EXPECT_TRUE(at::equal(before, net->fc1->weight));
  // The intact file still loads.
  EXPECT_EQ(load_checkpoint(dir.str("good.pt"), *net, *opt).iteration, 2u);
}

}  // namespace
}  // namespace pasteflow::train
