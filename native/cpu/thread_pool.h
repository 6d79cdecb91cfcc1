// A persistent worker pool for the CPU backend. Threads are created once; parallelFor hands
// them chunks of an index range and returns when every chunk has run, so an op can be split
// without paying for thread creation on each of the hundreds of ops a step runs.
//
// Between jobs, workers spin briefly (pause, then yield) before sleeping on a condition
// variable: the ops of a forward step follow each other within microseconds, and waking
// sleeping threads through the kernel costs tens of microseconds per op at 16 threads.
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
  // Throws mixattn::Error when the threads cannot be started.
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
  void stopWorkers();
  void runChunks();

  std::vector<std::thread> workers_;
  std::mutex callMutex_;  // one parallelFor at a time

  // Job hand-off. generation_ and stop_ change under mutex_ (so a sleeper cannot miss them)
  // but are atomics so spinning workers can poll them without the lock.
  std::mutex mutex_;
  std::condition_variable wake_;  // workers sleep here between jobs
  std::condition_variable done_;  // the caller sleeps here when the last chunks run long
  std::atomic<unsigned long long> generation_{0};
  std::atomic<bool> stop_{false};
  int sleepers_ = 0;  // workers blocked on wake_ (guarded by mutex_)

  // A worker joins a job by counting itself in active_ and then finding open_ set; the
  // caller closes the job and waits only for active_ to drain, never for workers that did
  // not get to it (a descheduled worker cannot stall the step).
  std::atomic<bool> open_{false};
  std::atomic<int> active_{0};

  // The current job: written only while the job is closed, read only after seeing open_.
  const RangeFn* fn_ = nullptr;
  size_t n_ = 0;
  size_t chunk_ = 1;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;  // guarded by mutex_
};

}  // namespace cpu
}  // namespace mixattn
