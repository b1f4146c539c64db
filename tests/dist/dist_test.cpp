// dist/: the launch environment, the c10d process group (Gloo over
// loopback, ranks as threads of this process), the bucketed gradient
// all-reduce against one process on the combined batch, failure diagnosis
// naming the rank, and the local launcher.
#include <gtest/gtest.h>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/temp_dir.hpp"
#include "pasteflow/dist/dist.hpp"
#include "pasteflow/dist/launch.hpp"

namespace pasteflow::dist {
namespace {

using Clock = std::chrono::steady_clock;

/// Runs body(group) on `world` ranks, each a thread of this process with its
/// own ProcessGroup over a TCP store on a free loopback port. Rethrows the
/// first rank's exception (by rank).
template <class Body>
void run_ranks(int world, const DistConfig& config, Body body) {
  const int port = free_port();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        ProcessGroup group(LaunchEnv::loopback(r, world, port), config);
        body(group);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

DistConfig quick(double timeout_s = 20.0) {
  DistConfig c;
  c.backend = "gloo";
  c.timeout_s = timeout_s;
  return c;
}

// ---------------------------------------------------------------- environment

std::function<const char*(const char*)> env_of(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* name) -> const char* {
    const auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

TEST(LaunchEnvironment, TorchrunVariables) {
  const LaunchEnv e = launch_environment(env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                                 {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node0"},
                                                 {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(e.source, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node0");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(LaunchEnvironment, SlurmVariablesWhenRankIsUnset) {
  const LaunchEnv e = launch_environment(env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"},
                                                 {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                                                 {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "1234"}}));
  EXPECT_EQ(e.source, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_port, 1234);
}

TEST(LaunchEnvironment, NothingSetIsOneProcess) {
  const LaunchEnv e = launch_environment(env_of({}));
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.source, "");
}

TEST(LaunchEnvironment, BadValuesNameTheVariable) {
  auto key_of = [](std::map<std::string, std::string> vars) {
    try {
      launch_environment(env_of(std::move(vars)));
    } catch (const ConfigError& e) {
      return e.where().key;
    }
    return std::string("no error");
  };
  EXPECT_EQ(key_of({{"RANK", "0"}}), "env WORLD_SIZE");                        // missing
  EXPECT_EQ(key_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), "env RANK");         // out of range
  EXPECT_EQ(key_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), "env RANK");         // not a number
  EXPECT_EQ(key_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}), "env MASTER_PORT");
}

TEST(ProcessGroupSetup, MissingMasterAddressIsAConfigErrorNamingIt) {
  LaunchEnv env;
  env.world_size = 2;
  env.master_port = 1234;
  try {
    ProcessGroup g(env, quick());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "env MASTER_ADDR");
  }
}

TEST(ProcessGroupSetup, NcclIsRefusedByACpuOnlyLibTorch) {
  LaunchEnv env;
  env.world_size = 2;
  DistConfig c = quick();
  c.backend = "nccl";
  try {
    ProcessGroup g(env, c);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "dist.backend");
  }
}

// ---------------------------------------------------------------- collectives

TEST(ProcessGroupCollectives, AllGatherBytesOfUnequalSizesAndBroadcastOfMixedDtypes) {
  std::vector<std::vector<std::vector<uint8_t>>> gathered(3);
  std::vector<std::vector<at::Tensor>> received(3);
  run_ranks(3, quick(), [&](ProcessGroup& g) {
    const int r = g.rank();
    std::vector<uint8_t> mine(static_cast<size_t>(r * 5));  // rank 0 sends nothing
    for (size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<uint8_t>(r * 10 + static_cast<int>(i));
    gathered[static_cast<size_t>(r)] = g.all_gather_bytes(mine);
    std::vector<at::Tensor> t{at::full({2, 3}, static_cast<float>(r + 1)), at::full({4}, int64_t{r + 7}),
                              at::full({1}, static_cast<double>(r) + 0.5)};
    g.broadcast(t, 1);
    received[static_cast<size_t>(r)] = t;
    at::Tensor s = at::full({3}, static_cast<float>(r));
    g.all_reduce_sum(s);
    EXPECT_TRUE(at::equal(s, at::full({3}, 3.0f)));
    g.barrier();
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(gathered[static_cast<size_t>(r)].size(), 3u);
    for (int from = 0; from < 3; ++from) {
      const auto& b = gathered[static_cast<size_t>(r)][static_cast<size_t>(from)];
      ASSERT_EQ(b.size(), static_cast<size_t>(from * 5));
      for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], from * 10 + static_cast<int>(i));
    }
    const auto& t = received[static_cast<size_t>(r)];
    EXPECT_TRUE(at::equal(t[0], at::full({2, 3}, 2.0f)));  // rank 1's
    EXPECT_TRUE(at::equal(t[1], at::full({4}, int64_t{8})));
    EXPECT_EQ(t[2].item<double>(), 1.5);
  }
}

// dist.store_file: the rendezvous through a file (torch's file://), no TCP store.
TEST(ProcessGroupCollectives, FileStoreRendezvous) {
  const pasteflow::testing::ScratchDir dir("file_store");
  DistConfig config = quick();
  config.store_file = (dir.path() / "store").string();
  std::vector<double> sums(2);
  run_ranks(2, config, [&](ProcessGroup& g) {
    at::Tensor t = at::full({2}, static_cast<double>(g.rank() + 1));
    g.all_reduce_sum(t);
    sums[static_cast<size_t>(g.rank())] = t[0].item<double>();
  });
  EXPECT_EQ(sums[0], 3.0);
  EXPECT_EQ(sums[1], 3.0);
  // c10d's FileStore removes its file when the last rank leaves (the README says so).
  EXPECT_FALSE(std::filesystem::exists(config.store_file));
}

// ---------------------------------------------------------------- gradient reducer

/// A small conv net with a frozen layer and one that forward never uses.
struct ToyImpl : torch::nn::Module {
  ToyImpl() {
    frozen = register_module("frozen", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 3, 1)));
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)));
    fc = register_module("fc", torch::nn::Linear(4 * 6 * 6, 2));
    unused = register_module("unused", torch::nn::Linear(2, 2));
    for (auto& p : frozen->parameters()) p.set_requires_grad(false);
  }
  at::Tensor forward(const at::Tensor& x) {
    return fc->forward(torch::relu(conv->forward(frozen->forward(x))).flatten(1));
  }
  torch::nn::Conv2d frozen{nullptr}, conv{nullptr};
  torch::nn::Linear fc{nullptr}, unused{nullptr};
};
TORCH_MODULE(Toy);

std::vector<at::Tensor> trainable(torch::nn::Module& m) {
  std::vector<at::Tensor> out;
  for (auto& p : m.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

std::vector<at::Tensor> snapshot(torch::nn::Module& m) {
  std::vector<at::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

struct ReducerCase {
  double bucket_mb;
  bool overlap;
};

class GradientReducerMatchesOneProcess : public ::testing::TestWithParam<ReducerCase> {};

// DDP's defining property: 2 ranks with 2 samples each, gradients averaged,
// train as one process does on the 4 samples (loss = mean over the batch).
TEST_P(GradientReducerMatchesOneProcess, TwoRanksOfTwoSamplesEqualOneProcessOfFour) {
  const ReducerCase p = GetParam();
  constexpr int kSteps = 4;
  torch::manual_seed(11);
  const at::Tensor x = torch::randn({4, 3, 8, 8});
  const at::Tensor y = torch::randn({4, 2});
  // Different initial weights on each rank: broadcast_module must make them rank 0's.
  torch::manual_seed(1);
  Toy reference;
  std::vector<Toy> ranks;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(100 + r);
    ranks.emplace_back();
  }
  {
    torch::NoGradGuard no_grad;
    auto src = ranks[0]->parameters();
    auto dst = reference->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  const std::vector<at::Tensor> unused_before = snapshot(*ranks[0]->unused);

  auto sgd = [](Toy& m) { return torch::optim::SGD(m->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9)); };
  std::vector<std::vector<std::vector<at::Tensor>>> after(2, std::vector<std::vector<at::Tensor>>(kSteps));
  DistConfig config = quick();
  config.bucket_mb = p.bucket_mb;
  config.overlap = p.overlap;
  size_t buckets = 0;
  run_ranks(2, config, [&](ProcessGroup& g) {
    const int r = g.rank();
    Toy& m = ranks[static_cast<size_t>(r)];
    broadcast_module(g, *m);
    GradientReducer reducer(g, trainable(*m), config);
    if (r == 0) buckets = reducer.layout().buckets;
    auto opt = sgd(m);
    for (int s = 0; s < kSteps; ++s) {
      for (auto& q : m->parameters()) q.mutable_grad() = at::Tensor();
      const at::Tensor loss =
          torch::nn::functional::mse_loss(m->forward(x.narrow(0, 2 * r, 2)), y.narrow(0, 2 * r, 2));
      reducer.prepare();
      loss.backward();
      reducer.finish();
      EXPECT_FALSE(m->unused->weight.grad().defined());  // no rank had a gradient: stays undefined
      EXPECT_FALSE(m->frozen->weight.grad().defined());
      opt.step();
      after[static_cast<size_t>(r)][static_cast<size_t>(s)] = snapshot(*m);
    }
  });
  if (p.bucket_mb < 0.001001) {
    EXPECT_EQ(buckets, 3u);  // 1 KiB: {unused.*, fc.bias}, {fc.weight}, {conv.*}
  }
  if (p.bucket_mb > 1.0) {
    EXPECT_EQ(buckets, 1u);
  }

  auto opt = sgd(reference);
  for (int s = 0; s < kSteps; ++s) {
    for (auto& q : reference->parameters()) q.mutable_grad() = at::Tensor();
    torch::nn::functional::mse_loss(reference->forward(x), y).backward();
    opt.step();
    const std::vector<at::Tensor> ref = snapshot(*reference);
    for (size_t i = 0; i < ref.size(); ++i) {
      // Identical on both ranks after every step, and the one-process result within 1e-5.
      EXPECT_TRUE(at::equal(after[0][static_cast<size_t>(s)][i], after[1][static_cast<size_t>(s)][i]))
          << "step " << s << " tensor " << i;
      EXPECT_LT((after[0][static_cast<size_t>(s)][i] - ref[i]).abs().max().item<double>(), 1e-5)
          << "step " << s << " tensor " << i;
    }
  }
  // The unused layer never moved (SGD skipped its undefined gradient), as in one process.
  const std::vector<at::Tensor> unused_after = snapshot(*ranks[0]->unused);
  for (size_t i = 0; i < unused_after.size(); ++i) EXPECT_TRUE(at::equal(unused_after[i], unused_before[i]));
}

INSTANTIATE_TEST_SUITE_P(Buckets, GradientReducerMatchesOneProcess,
                         ::testing::Values(ReducerCase{25.0, true}, ReducerCase{0.001, true},
                                           ReducerCase{0.001, false}, ReducerCase{0.002, true}));

TEST(GradientReducer, StopRequestIsTheLargestOverRanks) {
  std::vector<int> agreed(2, -1);
  run_ranks(2, quick(), [&](ProcessGroup& g) {
    torch::manual_seed(3);
    Toy m;
    GradientReducer reducer(g, trainable(*m), g.config());
    const at::Tensor x = torch::randn({1, 3, 8, 8});
    reducer.prepare();
    m->forward(x).sum().backward();
    agreed[static_cast<size_t>(g.rank())] = reducer.finish(g.rank() == 1 ? 2 : 0).stop;  // SIGINT on rank 1 only
  });
  EXPECT_EQ(agreed[0], 2);
  EXPECT_EQ(agreed[1], 2);
}

// dist.verify_period's check: equal weights pass, a rank whose weights
// differ by one bit is named.
TEST(GradientReducer, VerifySameWeightsNamesTheRankThatDiffers) {
  std::vector<std::string> errors(3);
  std::vector<std::vector<int>> named(3);
  run_ranks(3, quick(), [&](ProcessGroup& g) {
    Toy m;
    {
      // The same weights on every rank without the (process-wide) generator.
      torch::NoGradGuard no_grad;
      auto a = m->parameters();
      for (size_t i = 0; i < a.size(); ++i) {
        a[i].copy_(at::arange(a[i].numel(), at::kFloat).reshape(a[i].sizes()) * 0.001f * static_cast<float>(i + 1));
      }
    }
    verify_same_weights(g, *m, "at the start");  // every rank the same: no error
    if (g.rank() == 2) {
      torch::NoGradGuard no_grad;
      auto w = m->fc->weight.view({-1});
      w[0] = std::nextafter(w[0].item<float>(), 1.0f);
    }
    try {
      verify_same_weights(g, *m, "after one change");
    } catch (const DistError& e) {
      errors[static_cast<size_t>(g.rank())] = e.what();
      named[static_cast<size_t>(g.rank())] = e.ranks();
    }
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(named[static_cast<size_t>(r)], std::vector<int>{2}) << errors[static_cast<size_t>(r)];
    EXPECT_NE(errors[static_cast<size_t>(r)].find("rank(s) 2 differ from rank 0's after one change"),
              std::string::npos);
  }
}

// ---------------------------------------------------------------- failures

/// What the surviving rank saw: two ranks all-reduce once, then rank `gone`
/// leaves after `linger` (its thread returns, destroying its process group,
/// as when its process dies) while the other all-reduces again.
struct Survivor {
  int named = -1;  ///< the first rank its DistError named (-2: none named)
  std::string message;
  double waited = 0.0;  ///< its second all-reduce, until the error
};

Survivor survivor_of(int gone, double timeout_s, std::chrono::milliseconds linger) {
  Survivor s;
  run_ranks(2, quick(timeout_s), [&](ProcessGroup& g) {
    at::Tensor t = at::ones({4});
    g.all_reduce_sum(t);
    if (g.rank() == gone) {
      std::this_thread::sleep_for(linger);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto t0 = Clock::now();
    try {
      g.all_reduce_sum(t);
    } catch (const DistError& e) {
      s.named = e.ranks().empty() ? -2 : e.ranks()[0];
      s.message = e.what();
    }
    s.waited = std::chrono::duration<double>(Clock::now() - t0).count();
  });
  return s;
}

// A rank whose process group goes away (as when its process dies) makes the
// other's next collective fail at once, naming it.
TEST(ProcessGroupFailure, ADeadRankIsNamedByTheSurvivor) {
  const Survivor s = survivor_of(1, 30.0, std::chrono::milliseconds(0));
  EXPECT_EQ(s.named, 1) << s.message;
  EXPECT_NE(s.message.find("rank 1 stopped before all_reduce"), std::string::npos) << s.message;
  EXPECT_LT(s.waited, 25.0);  // not the 30 s timeout
}

// A rank that hangs is named when the timeout passes.
TEST(ProcessGroupFailure, AHungRankIsNamedWithinTheTimeout) {
  const Survivor s = survivor_of(1, 2.0, std::chrono::milliseconds(5000));  // hangs past the 2 s timeout
  EXPECT_EQ(s.named, 1) << s.message;
  EXPECT_NE(s.message.find("it died or hangs"), std::string::npos) << s.message;
  EXPECT_GE(s.waited, 1.5);
  EXPECT_LT(s.waited, 4.5);
}

// The TCP store lives in rank 0: when rank 0 goes, the others say so.
TEST(ProcessGroupFailure, ADeadRankZeroIsNamedAsTheStoreHost) {
  const Survivor s = survivor_of(0, 10.0, std::chrono::milliseconds(0));
  EXPECT_EQ(s.named, 0) << s.message;
  EXPECT_NE(s.message.find("rank 0 (which hosts the TCP store"), std::string::npos) << s.message;
}

// ---------------------------------------------------------------- launcher

class LauncherTest : public ::testing::Test {
 protected:
  pasteflow::testing::ScratchDir scratch_{"launch"};
  const std::filesystem::path& dir_ = scratch_.path();
};

TEST_F(LauncherTest, EveryRankGetsTheTorchrunEnvironmentAndTheFirstFailureIsReported) {
  LocalLaunch l;
  l.nproc = 3;
  l.program = "/bin/sh";
  l.args = {"-c", "echo \"$RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT $1\" > " +
                      dir_.string() + "/rank$RANK; [ $RANK = 2 ] && exit 3; exit 0",
            "sh"};
  l.rank_args = {{"a"}, {"b"}, {"c"}};
  const LaunchReport report = launch_local(l);
  EXPECT_EQ(report.first_failed, 2);
  EXPECT_EQ(report.exit_code, 3);
  ASSERT_EQ(report.ranks.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    std::ifstream f(dir_ / ("rank" + std::to_string(r)));
    std::string line;
    std::getline(f, line);
    EXPECT_EQ(line, std::to_string(r) + " 3 " + std::to_string(r) + " 3 127.0.0.1 " +
                        std::to_string(report.master_port) + " " + std::string(1, static_cast<char>('a' + r)));
  }
}

TEST_F(LauncherTest, RanksStillRunningAfterTheGraceAreTerminated) {
  LocalLaunch l;
  l.nproc = 2;
  l.program = "/bin/sh";
  l.args = {"-c", "[ $RANK = 1 ] && exit 4; exec sleep 60"};
  l.grace_s = 0.5;
  const auto t0 = Clock::now();
  const LaunchReport report = launch_local(l);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 20.0);
  EXPECT_EQ(report.first_failed, 1);
  EXPECT_EQ(report.exit_code, 4);
  EXPECT_EQ(report.ranks[0].signal, SIGTERM);
  EXPECT_TRUE(report.ranks[0].killed_by_launcher);
}

TEST_F(LauncherTest, AStopRequestIsForwardedOnceToEveryRank) {
  LocalLaunch l;
  l.nproc = 2;
  l.program = "/bin/sh";
  // Each rank traps SIGINT, records it and exits 130.
  l.args = {"-c", "trap 'echo int >> " + dir_.string() + "/got$RANK; exit 130' INT; touch " + dir_.string() +
                      "/up$RANK; while true; do sleep 0.05; done"};
  std::atomic<bool> stop{false};
  std::thread raiser([&] {
    for (int i = 0; i < 200; ++i) {
      if (std::filesystem::exists(dir_ / "up0") && std::filesystem::exists(dir_ / "up1")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    stop = true;
  });
  static int (*sigint)() = [] { return SIGINT; };
  const LaunchReport report = launch_local(l, &stop, sigint);
  raiser.join();
  EXPECT_EQ(report.exit_code, 130);
  for (int r = 0; r < 2; ++r) {
    std::ifstream f(dir_ / ("got" + std::to_string(r)));
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(all, "int\n") << "rank " << r;
  }
}

}  // namespace
}  // namespace pasteflow::dist
