// The one place that knows about OpenMP.
#pragma once

#include <exception>
#include <mutex>

namespace alip {

/// Structures smaller than this run on one thread: forking a team costs more than it
/// saves, and on a busy machine idle team members can stall a tiny region for ms.
constexpr long long kMinAtomsPerParallelRegion = 128;

bool have_openmp();
int get_num_threads();
void set_num_threads(int n);
int thread_id();

/// Collects the first exception thrown inside a parallel region so that it can
/// be rethrown outside it (an exception must never escape an OpenMP region).
class ExceptionCollector {
public:
    template <class F>
    void run(F&& f) noexcept {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }
    bool failed() const { return static_cast<bool>(error_); }
    void rethrow() const {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::exception_ptr error_;
    std::mutex mutex_;
};

}  // namespace alip
