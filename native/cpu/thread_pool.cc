#include "cpu/thread_pool.h"

#include <algorithm>

namespace mixattn {
namespace cpu {

namespace {
// The pool whose job this thread is running (workers: always their pool). A parallelFor
// issued from inside a chunk of the same pool would wait on itself, so it runs inline.
thread_local const ThreadPool* tlsInsidePool = nullptr;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  int workers = std::max(threads, 1) - 1;
  workers_.reserve(size_t(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::workerLoop() {
  tlsInsidePool = this;
  unsigned long long seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    runChunks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
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
  size_t chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    pending_ = int(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  const ThreadPool* outer = tlsInsidePool;
  tlsInsidePool = this;
  runChunks();
  tlsInsidePool = outer;
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    fn_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace cpu
}  // namespace mixattn
