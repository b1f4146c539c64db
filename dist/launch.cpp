#include "pasteflow/dist/launch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "pasteflow/core/error.hpp"

extern char** environ;

namespace pasteflow::dist {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot_launch", std::string("socket(): ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error("cannot_launch", "cannot find a free port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string this_program() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) throw Error("cannot_launch", "cannot find this program (/proc/self/exe)");
  return std::string(exe, static_cast<size_t>(n));
}

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

LaunchReport launch_local(const LocalLaunch& launch, const std::atomic<bool>* stop, int (*stop_signal)()) {
  LaunchReport report;
  report.master_port = free_port();
  const int n = launch.nproc;
  // Environment of every child: ours without the variables we set.
  const std::vector<std::string> ours = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                                         "MASTER_PORT"};
  std::vector<std::string> base_env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    bool skip = false;
    for (const std::string& o : ours) skip = skip || key == o;
    if (!skip) base_env.push_back(kv);
  }
  const pid_t parent = ::getpid();
  std::map<pid_t, int> live;  // pid -> rank
  report.ranks.resize(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    std::vector<std::string> env = base_env;
    const int rank = launch.independent ? 0 : r;
    const int world = launch.independent ? 1 : n;
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("WORLD_SIZE=" + std::to_string(world));
    env.push_back("LOCAL_RANK=" + std::to_string(rank));
    env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(world));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(report.master_port));
    std::vector<std::string> args;
    args.push_back(launch.program);
    args.insert(args.end(), launch.args.begin(), launch.args.end());
    if (static_cast<size_t>(r) < launch.rank_args.size()) {
      args.insert(args.end(), launch.rank_args[static_cast<size_t>(r)].begin(),
                  launch.rank_args[static_cast<size_t>(r)].end());
    }
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (const auto& [p, rank] : live) ::kill(p, SIGKILL);
      throw Error("cannot_launch", std::string("fork(): ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::setpgid(0, 0);                   // the terminal's Ctrl-C reaches the launcher only
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // and the ranks die with it
      if (::getppid() != parent) ::_exit(127);
      ::execve(launch.program.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    live[pid] = r;
    report.ranks[static_cast<size_t>(r)].rank = r;
    report.ranks[static_cast<size_t>(r)].pid = pid;
  }

  bool forwarded = false;
  Clock::time_point failed_at{};
  bool term_sent = false;
  Clock::time_point term_at{};
  while (!live.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && live.count(pid)) {
      RankExit& x = report.ranks[static_cast<size_t>(live[pid])];
      if (WIFEXITED(status)) {
        x.exit_code = WEXITSTATUS(status);
      } else if (WIFSIGNALED(status)) {
        x.signal = WTERMSIG(status);
        x.exit_code = 128 + x.signal;
      }
      live.erase(pid);
      if (x.exit_code != 0 && report.first_failed < 0) {
        report.first_failed = x.rank;
        report.exit_code = x.exit_code;
        failed_at = Clock::now();
      }
      continue;
    }
    if (stop != nullptr && stop->load() && !forwarded) {
      const int sig = stop_signal != nullptr && stop_signal() != 0 ? stop_signal() : SIGTERM;
      for (const auto& [p, rank] : live) ::kill(p, sig);
      forwarded = true;
    }
    if (report.first_failed >= 0) {
      const double since = std::chrono::duration<double>(Clock::now() - failed_at).count();
      if (!term_sent && since > launch.grace_s) {
        for (const auto& [p, rank] : live) {
          ::kill(p, SIGTERM);
          report.ranks[static_cast<size_t>(rank)].killed_by_launcher = true;
        }
        term_sent = true;
        term_at = Clock::now();
      } else if (term_sent && std::chrono::duration<double>(Clock::now() - term_at).count() > 10.0) {
        for (const auto& [p, rank] : live) ::kill(p, SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (report.first_failed < 0) {
    for (const RankExit& x : report.ranks) {
      if (x.exit_code != 0) {
        report.first_failed = x.rank;
        report.exit_code = x.exit_code;
        break;
      }
    }
  }
  return report;
}

}  // namespace pasteflow::dist
