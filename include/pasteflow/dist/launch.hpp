// `pasteflow train --nproc N`: N local ranks started as torchrun would, with
// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and
// a free MASTER_PORT in their environment. Needs no LibTorch.
//
// The children run in their own process group (a terminal's Ctrl-C reaches
// the launcher only, which forwards it once, so every rank checkpoints and
// stops at the same iteration) and die with the launcher (PR_SET_PDEATHSIG).
// When one rank fails, the others fail on their own within dist.timeout_s
// (their collectives name it); those still running `grace_s` after that are
// sent SIGTERM, then SIGKILL.
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace pasteflow::dist {

struct LocalLaunch {
  int nproc = 2;
  std::string program;            ///< executable (argv[0] of the children)
  std::vector<std::string> args;  ///< arguments of every child
  /// Extra arguments of rank r (appended), e.g. its thread count; may be empty.
  std::vector<std::vector<std::string>> rank_args;
  double grace_s = 30.0;          ///< after a failure, how long the others get to end by themselves
  /// Every child a single process of its own (RANK=0, WORLD_SIZE=1, no
  /// group): several independent runs at once (`bench distributed`'s
  /// contention baseline).
  bool independent = false;
};

struct RankExit {
  int rank = 0;
  int pid = 0;
  int exit_code = -1;  ///< the exit status, or 128 + signal when a signal ended it
  int signal = 0;      ///< the signal that ended it (0: exited)
  bool killed_by_launcher = false;
};

struct LaunchReport {
  std::vector<RankExit> ranks;  ///< by rank
  int first_failed = -1;        ///< the rank that failed first (-1: none)
  int exit_code = 0;            ///< the first failed rank's exit code (0: all succeeded)
  int master_port = 0;
};

/// A free TCP port on 127.0.0.1 (bound to port 0, read, closed).
int free_port();

/// The path of this program's executable (/proc/self/exe): what
/// `train --nproc` and `bench distributed` launch. Throws Error "cannot_launch".
std::string this_program();

/// Starts the ranks and waits for all of them. While `stop` is non-null and
/// becomes true, `stop_signal()` is forwarded once to every live child.
/// Throws Error "cannot_launch" when a child cannot be started.
LaunchReport launch_local(const LocalLaunch& launch, const std::atomic<bool>* stop = nullptr,
                          int (*stop_signal)() = nullptr);

}  // namespace pasteflow::dist
