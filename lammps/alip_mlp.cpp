#include "alip_mlp.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ALIP_MLP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ALIP_MLP_CLONES
#endif

namespace alip_lammps {

ALIP_MLP_CLONES
void dense_forward(const double* x, int64_t ldx, const double* W, const double* b, int ni, int no, int64_t nb,
                   double* z, int64_t ldz) {
    for (int64_t a = 0; a < nb; ++a) {
        double* za = z + a * ldz;
        const double* xa = x + a * ldx;
#pragma omp simd
        for (int o = 0; o < no; ++o) za[o] = b[o];
        for (int i = 0; i < ni; ++i) {
            const double xi = xa[i];
            const double* wi = W + int64_t(i) * no;
#pragma omp simd
            for (int o = 0; o < no; ++o) za[o] += xi * wi[o];
        }
    }
}

ALIP_MLP_CLONES
void activate(Activation act, double* z, double* d, int no, int64_t nb, int64_t ld) {
    for (int64_t a = 0; a < nb; ++a) {
        double* za = z + a * ld;
        double* da = d + a * ld;
        switch (act) {
            case Activation::Tanh:
#pragma omp simd
                for (int o = 0; o < no; ++o) {
                    const double t = std::tanh(za[o]);
                    za[o] = t;
                    da[o] = 1.0 - t * t;
                }
                break;
            case Activation::Silu:
#pragma omp simd
                for (int o = 0; o < no; ++o) {
                    const double x = za[o];
                    const double sig = 1.0 / (1.0 + std::exp(std::min(-x, 700.0)));
                    za[o] = x * sig;
                    da[o] = sig * (1.0 + x * (1.0 - sig));
                }
                break;
            case Activation::Softplus:
#pragma omp simd
                for (int o = 0; o < no; ++o) {
                    const double x = za[o];
                    const double e = std::exp(std::min(x, 20.0));
                    const bool linear = x > 20.0;
                    za[o] = linear ? x : std::log1p(e);
                    da[o] = linear ? 1.0 : e / (1.0 + e);
                }
                break;
            case Activation::Celu:
#pragma omp simd
                for (int o = 0; o < no; ++o) {
                    const double x = za[o];
                    const double m = std::expm1(std::min(x, 0.0));
                    za[o] = x > 0.0 ? x : m;
                    da[o] = x > 0.0 ? 1.0 : m + 1.0;
                }
                break;
        }
    }
}

ALIP_MLP_CLONES
void dense_backward(const double* g, const double* d, const double* W, int ni, int no, int64_t nb, double* out,
                    int64_t ld) {
    for (int64_t a = 0; a < nb; ++a) {
        const double* ga = g + a * ld;
        double gd[1024];
        const double* src = ga;
        if (d != nullptr && no <= 1024) {
            const double* da = d + a * ld;
#pragma omp simd
            for (int o = 0; o < no; ++o) gd[o] = ga[o] * da[o];
            src = gd;
        }
        double* oa = out + a * ld;
        for (int i = 0; i < ni; ++i) {
            const double* wi = W + int64_t(i) * no;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int o = 0; o < no; ++o) acc += src[o] * wi[o];
            oa[i] = acc;
        }
    }
}

}  // namespace alip_lammps
