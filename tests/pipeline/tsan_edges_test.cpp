// tsan::Handed, the flow graph's message under ThreadSanitizer: its writes
// reach the thread that copies it, and the slot it leaves reaches the thread
// that reuses it, across a hand-off that TSan cannot see. The hand-off here
// is a pair of standalone fences around relaxed atomics: correct C++, but
// TSan does not model fences, as it does not see libtbb's atomics. Under
// TSan (run.sh test_tsan, halt_on_error=1) a missing edge fails the test
// with a data race report; in other builds it checks the values only.
#include "tsan_edges.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <new>
#include <string>
#include <thread>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wtsan"  // the point: a fence TSan does not see
#endif

namespace pasteflow::pipeline {
namespace {

struct Fields {
  std::vector<int> values;
  std::string name;
};
using Message = tsan::Handed<Fields>;

/// A one-slot mailbox whose only synchronisation is invisible to TSan.
class Mailbox {
 public:
  void put(const Message& m) {
    wait_for(false);
    new (&storage_) Message(m);  // a copy in the slot, as oneTBB copies into a task
    std::atomic_thread_fence(std::memory_order_release);
    full_.store(true, std::memory_order_relaxed);
  }

  Message take() {
    wait_for(true);
    Message* slot = std::launder(reinterpret_cast<Message*>(&storage_));
    Message out(std::move(*slot));
    slot->~Message();
    std::atomic_thread_fence(std::memory_order_release);
    full_.store(false, std::memory_order_relaxed);
    return out;
  }

 private:
  void wait_for(bool full) const {
    while (full_.load(std::memory_order_relaxed) != full) std::this_thread::yield();
    std::atomic_thread_fence(std::memory_order_acquire);
  }

  alignas(Message) unsigned char storage_[sizeof(Message)];
  std::atomic<bool> full_{false};
};

TEST(TsanEdges, MessageWritesReachTheThreadThatTakesIt) {
  Mailbox box;
  constexpr int kMessages = 50;
  std::thread producer([&box] {
    for (int i = 0; i < kMessages; ++i) {
      Message m;
      m.values.assign(static_cast<size_t>(i + 1), i);
      m.name = "message " + std::to_string(i);
      box.put(m);
    }
  });
  // The consumer reuses the one slot the producer refills: each message is
  // written into memory the other thread destroyed a message in.
  for (int i = 0; i < kMessages; ++i) {
    const Message m = box.take();
    ASSERT_EQ(m.values, std::vector<int>(static_cast<size_t>(i + 1), i));
    ASSERT_EQ(m.name, "message " + std::to_string(i));
  }
  producer.join();
}

TEST(TsanEdges, ReceivedTakesAMessageReadByReference) {
  // The batch node's case: the message is read in place, not copied.
  Message shared;
  std::atomic<bool> ready{false};
  std::thread writer([&] {
    Message m;
    m.values = {1, 2, 3};
    m.name = "written";
    shared = m;
    std::atomic_thread_fence(std::memory_order_release);
    ready.store(true, std::memory_order_relaxed);
  });
  while (!ready.load(std::memory_order_relaxed)) std::this_thread::yield();
  std::atomic_thread_fence(std::memory_order_acquire);
  tsan::received(shared);
  EXPECT_EQ(shared.values, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(shared.name, "written");
  writer.join();
}

}  // namespace
}  // namespace pasteflow::pipeline
