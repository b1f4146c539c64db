// Test helpers shared by the suites that run programs: the built pasteflow
// binary, or /usr/bin/python3 for the torchvision parity oracles.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace pasteflow::testing {

struct CommandResult {
  int status = -1;     ///< exit status, -1 when it did not exit normally
  std::string output;  ///< stdout (and stderr unless discarded)
};

/// Runs `command` through the shell; stderr is captured too unless
/// `keep_stderr` is false (then it is discarded).
inline CommandResult run_command(const std::string& command, bool keep_stderr = true) {
  CommandResult r;
  FILE* pipe = popen((command + (keep_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, got);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// Starts `command` through the shell without waiting (for tests that
/// signal a running program); `exec` it in `command` to signal the program
/// itself rather than the shell. Returns the pid (waitpid() it), -1 on failure.
inline pid_t spawn_command(const std::string& command) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

/// The Python that has Debian's torch and torchvision (the `python3` on a
/// developer's PATH may be another one).
inline const char* python() { return "/usr/bin/python3"; }

/// Why the torchvision oracle cannot be used, or "" when it can.
inline std::string torchvision_unavailable() {
  if (access(python(), X_OK) != 0) return std::string(python()) + " does not exist";
  const CommandResult r = run_command(std::string(python()) + " -c \"import torch, torchvision\"");
  if (r.status != 0) return std::string(python()) + " cannot import torchvision: " + r.output;
  return "";
}

}  // namespace pasteflow::testing
