// A persistent worker pool for the CPU backend. Threads are created once; parallelFor hands
// them chunks of an index range and returns when every chunk has run, so an op can be split
// without paying for thread creation on each of the hundreds of ops a step runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mixattn {
namespace cpu {

class ThreadPool {
 public:
  using RangeFn = std::function<void(size_t begin, size_t end)>;

  // `threads` counts the calling thread: 1 runs everything inline, N starts N-1 workers.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), each at least `grain` long
  // (except the last), from the calling thread and the workers; returns when all are done.
  // The first exception a chunk throws is rethrown here (remaining chunks are skipped).
  // A call made from inside a chunk runs inline; calls from different threads take turns.
  void parallelFor(size_t n, const RangeFn& fn, size_t grain = 1);

 private:
  void workerLoop();
  void runChunks();

  std::vector<std::thread> workers_;
  std::mutex callMutex_;  // one parallelFor at a time

  std::mutex mutex_;  // guards generation_, stop_, pending_, error_
  std::condition_variable wake_;
  std::condition_variable done_;
  unsigned long long generation_ = 0;
  bool stop_ = false;
  int pending_ = 0;  // workers that have not finished the current generation

  // The current job; written before generation_ is bumped under mutex_.
  const RangeFn* fn_ = nullptr;
  size_t n_ = 0;
  size_t chunk_ = 1;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace cpu
}  // namespace mixattn
