// ThreadSanitizer annotations for the happens-before edges oneTBB hides.
//
// oneTBB's scheduler lives in libtbb.so.12, which is not instrumented: a
// message copied into a task by one thread and run by another, a buffer slot
// of a queue or sequencer node freed by one thread and refilled by another,
// and graph::wait_for_all returning once every task is done all synchronise
// through atomics that TSan never sees. Built with -fsanitize=thread, these
// helpers declare those edges with TSan's own interface (__tsan_release /
// __tsan_acquire on an address); otherwise they compile to nothing and
// Handed<T> is T itself.
//
// The edges are per object: a message orders only the threads that touch
// that message (or the slot it occupies; a reused slot carries an edge from
// its previous message, as libtbb's allocator orders it anyway), never two
// unrelated node bodies, so a real race between bodies still reports.
#pragma once

#if defined(__SANITIZE_THREAD__)  // gcc
#define PASTEFLOW_TSAN_EDGES 1
#elif defined(__has_feature)      // clang
#if __has_feature(thread_sanitizer)
#define PASTEFLOW_TSAN_EDGES 1
#endif
#endif

#if defined(PASTEFLOW_TSAN_EDGES)
#include <sanitizer/tsan_interface.h>

#include <type_traits>
#include <utility>
#endif

namespace pasteflow::pipeline::tsan {

/// What this thread did so far happens before whatever follows a later
/// acquire(key) on any thread.
inline void release(const void* key) noexcept {
#if defined(PASTEFLOW_TSAN_EDGES)
  __tsan_release(const_cast<void*>(key));
#else
  (void)key;
#endif
}

/// Takes the edges of every earlier release(key).
inline void acquire(const void* key) noexcept {
#if defined(PASTEFLOW_TSAN_EDGES)
  __tsan_acquire(const_cast<void*>(key));
#else
  (void)key;
#endif
}

#if defined(PASTEFLOW_TSAN_EDGES)

/// The first base of Handed, so that it is constructed before the fields and
/// destroyed after them: a slot that another thread's message occupied
/// before (oneTBB reuses task and buffer memory without freeing it) is
/// acquired before the fields are written, and released after they are
/// destroyed.
class Slot {
 protected:
  Slot() noexcept { acquire(this); }
  Slot(const Slot& from) noexcept { take(from); }
  Slot& operator=(const Slot& from) noexcept {
    take(from);
    return *this;
  }
  ~Slot() { release(this); }
  const void* key() const noexcept { return this; }  ///< the address the edges use

 private:
  void take(const Slot& from) noexcept {
    acquire(&from);  // the source's writer, before its fields are read
    acquire(this);
  }
};

/// A value oneTBB hands between threads (the flow graph's message): every
/// construction and assignment releases on the object once its fields are
/// written, every copy or move acquires on its source first, a move also
/// releases on the source it emptied, and destruction acquires on the object
/// before the fields are destroyed.
template <typename Fields>
class Handed : private Slot, public Fields {
 public:
  Handed() { publish(); }
  Handed(const Handed& from) : Slot(from), Fields(from) { publish(); }
  Handed(Handed&& from) noexcept(std::is_nothrow_move_constructible_v<Fields>)
      : Slot(from), Fields(std::move(static_cast<Fields&>(from))) {
    publish();
    release(from.key());
  }
  Handed& operator=(const Handed& from) {
    Slot::operator=(from);
    Fields::operator=(from);
    publish();
    return *this;
  }
  Handed& operator=(Handed&& from) noexcept(std::is_nothrow_move_assignable_v<Fields>) {
    Slot::operator=(from);
    Fields::operator=(std::move(static_cast<Fields&>(from)));
    publish();
    release(from.key());
    return *this;
  }
  ~Handed() { acquire(key()); }

  using Slot::key;

 private:
  void publish() const noexcept { release(key()); }
};

/// A node body that takes its message by reference (no copy, so no edge)
/// acquires it before reading it.
template <typename Fields>
void received(const Handed<Fields>& message) noexcept {
  acquire(message.key());
}

#else

template <typename Fields>
using Handed = Fields;

template <typename Fields>
void received(const Fields&) noexcept {}

#endif

}  // namespace pasteflow::pipeline::tsan
