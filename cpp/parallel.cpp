#include "parallel.hpp"

#include <stdexcept>

#if ALIP_HAVE_OPENMP
#include <omp.h>
#endif

namespace alip {

bool have_openmp() { return ALIP_HAVE_OPENMP != 0; }

int get_num_threads() {
#if ALIP_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("number of threads must be >= 1");
#if ALIP_HAVE_OPENMP
    omp_set_num_threads(n);
#endif
}

int thread_id() {
#if ALIP_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

}  // namespace alip
