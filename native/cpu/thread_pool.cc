#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "backend.h"

namespace mixattn {
namespace cpu {

namespace {

// The pool whose job this thread is running (workers: always their pool). A parallelFor
// issued from inside a chunk of the same pool would wait on itself, so it runs inline.
thread_local const ThreadPool* tlsInsidePool = nullptr;

// How long an idle thread polls before blocking: pause-spinning first (lowest latency),
// then yielding (leaves the core to other work on a busy machine).
constexpr std::chrono::microseconds kSpinFor{20};
constexpr std::chrono::microseconds kYieldFor{100};

inline void cpuRelax() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` for up to kSpinFor + kYieldFor; true once it holds.
template <class Ready>
bool pollFor(Ready ready) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    if (i % 64 != 0) {
      cpuRelax();
      continue;
    }
    auto elapsed = Clock::now() - start;
    if (elapsed > kSpinFor + kYieldFor) return false;
    if (elapsed > kSpinFor) std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  int workers = std::max(threads, 1) - 1;
  try {
    workers_.reserve(size_t(workers));
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { workerLoop(); });
  } catch (...) {
    stopWorkers();  // a destructor will not run: join what was started, then report
    throw Error("cannot start " + std::to_string(workers) + " CPU worker threads");
  }
}

ThreadPool::~ThreadPool() { stopWorkers(); }

void ThreadPool::stopWorkers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::workerLoop() {
  tlsInsidePool = this;
  unsigned long long seen = 0;
  auto ready = [&] {
    return stop_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen;
  };
  for (;;) {
    if (!pollFor(ready)) {
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleepers_;
      wake_.wait(lock, ready);
      --sleepers_;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    // seq_cst pairs with the caller's close (open_ = false, then read active_): either the
    // caller sees this worker counted, or this worker sees the job closed.
    active_.fetch_add(1);
    if (open_.load()) runChunks();
    if (active_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // the caller may be about to sleep
      done_.notify_one();
    }
  }
}

void ThreadPool::runChunks() {
  for (;;) {
    if (failed_.load(std::memory_order_relaxed)) return;
    size_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= n_) return;
    size_t end = std::min(n_, begin + chunk_);
    try {
      (*fn_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
}

void ThreadPool::parallelFor(size_t n, const RangeFn& fn, size_t grain) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  if (workers_.empty() || n <= grain || tlsInsidePool == this) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex_);
  // About 4 chunks per thread: enough to even out uneven chunks, few enough to stay cheap.
  size_t threads = workers_.size() + 1;
  fn_ = &fn;
  n_ = n;
  chunk_ = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
  next_.store(0, std::memory_order_relaxed);
  failed_.store(false, std::memory_order_relaxed);
  open_.store(true);  // publishes the fields above
  bool wakeSleepers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
    wakeSleepers = sleepers_ > 0;
  }
  if (wakeSleepers) wake_.notify_all();

  const ThreadPool* outer = tlsInsidePool;
  tlsInsidePool = this;
  runChunks();
  tlsInsidePool = outer;

  // Close the job; wait for the workers still running chunks of it.
  open_.store(false);
  auto drained = [&] { return active_.load() == 0; };
  if (!pollFor(drained)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, drained);
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error = error_;
    error_ = nullptr;
  }
  fn_ = nullptr;
  if (error) std::rethrow_exception(error);
}

}  // namespace cpu
}  // namespace mixattn
