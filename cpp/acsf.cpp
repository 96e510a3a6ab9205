#include "acsf.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "acsf_kernel.hpp"
#include "acsf_values.hpp"
#include "parallel.hpp"

namespace alip {


Acsf::Acsf(AcsfSpec spec) : spec_(std::move(spec)) {
    if (spec_.n_species < 1) throw InvalidInput("at least one species is required");
    validate_cutoff(spec_.cutoff);
    if (spec_.g2.empty() && spec_.g4.empty() && spec_.g5.empty())
        throw InvalidInput("no symmetry functions given (g2, g4 and g5 are all empty)");
    for (size_t k = 0; k < spec_.g2.size(); ++k) {
        check_finite(spec_.g2[k].eta, "g2", k);
        check_finite(spec_.g2[k].rs, "g2", k);
        if (spec_.g2[k].eta < 0) throw InvalidInput("g2 eta must be >= 0");
    }
    auto add_angular = [&](const std::vector<AngularParam>& params, std::vector<AngularIndex>& index,
                           const char* name) {
        for (size_t k = 0; k < params.size(); ++k) {
            const AngularParam& p = params[k];
            check_finite(p.eta, name, k);
            check_finite(p.zeta, name, k);
            check_finite(p.lambda, name, k);
            if (p.eta < 0) throw InvalidInput(std::string(name) + " eta must be >= 0");
            if (p.zeta < 1) throw InvalidInput(std::string(name) + " zeta must be >= 1");
            if (std::abs(p.lambda) > 1) throw InvalidInput(std::string(name) + " lambda must be in [-1, 1]");
            int e = int(std::find(angular_etas_.begin(), angular_etas_.end(), p.eta) - angular_etas_.begin());
            if (e == int(angular_etas_.size())) angular_etas_.push_back(p.eta);
            int z = 0;
            while (z < int(zeta_lambdas_.size()) &&
                   !(zeta_lambdas_[z].zeta == p.zeta && zeta_lambdas_[z].lambda == p.lambda))
                ++z;
            if (z == int(zeta_lambdas_.size())) {
                const bool is_int = p.zeta == std::floor(p.zeta) && p.zeta <= 64;
                int l = int(std::find(lambdas_.begin(), lambdas_.end(), p.lambda) - lambdas_.begin());
                if (l == int(lambdas_.size())) lambdas_.push_back(p.lambda);
                const int iz = is_int ? int(p.zeta) : -1;
                zeta_lambdas_.push_back({p.zeta, p.lambda, iz, l});
                while (iz >= 1 && (1 << ladder_depth_) <= iz) ++ladder_depth_;
            }
            index.push_back({e, z, std::pow(2.0, 1.0 - p.zeta), p.eta});
        }
    };
    add_angular(spec_.g4, g4_index_, "g4");
    add_angular(spec_.g5, g5_index_, "g5");
    for (const AngularParam& p : spec_.g4) g4_etas_.push_back(p.eta);
    for (const AngularParam& p : spec_.g5) g5_etas_.push_back(p.eta);
    const int32_t ns = spec_.n_species;
    pair_index_.assign(size_t(ns) * ns, 0);
    int32_t q = 0;
    for (int32_t a = 0; a < ns; ++a)
        for (int32_t b = a; b < ns; ++b) pair_index_[a * ns + b] = pair_index_[b * ns + a] = q++;
    n_angular_per_pair_ = int64_t(spec_.g4.size() + spec_.g5.size());
    n_features_ = n_radial_features() + int64_t(q) * n_angular_per_pair_;
}


void Acsf::values(const StructureView& s, const NeighborList& nl, double* out, bool parallel) const {
    ExceptionCollector errors;
#pragma omp parallel if (parallel && s.n_atoms >= kMinAtomsPerParallelRegion)
    {
        errors.run([&] {
            detail::LocalNeighbors local;
            detail::BlockScratch block;
            detail::ValuesScratch scratch;
            detail::ValuesMode mode;
            mode.scratch = &scratch;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < s.n_atoms; ++i) {
                mode.g = out + i * n_features_;
                center(s, nl, i, mode, local, block);
            }
        });
    }
    errors.rethrow();
}

std::vector<int64_t> Acsf::gradient_rows(const NeighborList& nl) const {
    std::vector<int64_t> rows(nl.n_atoms + 1, 0);
    for (int64_t i = 0; i < nl.n_atoms; ++i) {
        int64_t count = 1;  // self
        for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p) {
            const int64_t j = nl.neighbor[p];
            if (j != i && (p == nl.offsets[i] || nl.neighbor[p - 1] != j)) ++count;
        }
        rows[i + 1] = rows[i] + count;
    }
    return rows;
}

namespace {

/// Writes the strain gradient and the sparse rows of center i from t = d (m, 3, F).
void write_gradient_rows(const NeighborList& nl, int64_t i, const detail::LocalNeighbors& L, const std::vector<double>& t,
                         int64_t F, int64_t first_row, const GradientOutput& out) {
    const int64_t m = L.m, first = nl.offsets[i], F3 = 3 * F;
    const double* v[3] = {L.x.data(), L.y.data(), L.z.data()};
    double* strain = out.strain + i * 9 * F;
    std::fill(strain, strain + 9 * F, 0.0);
    for (int64_t n = 0; n < m; ++n) {
        const double* tn = &t[size_t(n * F3)];
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                double* s = strain + (a * 3 + b) * F;
                const double* src = tn + b * F;
                const double va = v[a][n];
#pragma omp simd
                for (int64_t f = 0; f < F; ++f) s[f] += va * src[f];
            }
    }
    int64_t row = first_row;
    auto begin_row = [&](int64_t j) {
        double* dst = out.grad + row * F3;
        std::fill(dst, dst + F3, 0.0);
        out.centers[row] = i + out.atom_offset;
        out.neighbors[row] = j + out.atom_offset;
        return dst;
    };
    auto write_self = [&]() {
        double* dst = begin_row(i);
        for (int64_t n = 0; n < m; ++n) {
            if (nl.neighbor[L.entry[n]] == i) continue;  // own images move with i
            const double* tn = &t[size_t(n * F3)];
#pragma omp simd
            for (int64_t k = 0; k < F3; ++k) dst[k] -= tn[k];
        }
        ++row;
    };
    bool self_done = false;
    for (int64_t p = 0; p < m;) {
        const int64_t j = nl.neighbor[first + p];
        int64_t p_end = p;
        while (p_end < m && nl.neighbor[first + p_end] == j) ++p_end;
        if (!self_done && j >= i) write_self(), self_done = true;
        if (j != i) {
            double* dst = begin_row(j);
            for (int64_t q = p; q < p_end; ++q) {
                const double* tn = &t[size_t(L.local[q] * F3)];
#pragma omp simd
                for (int64_t k = 0; k < F3; ++k) dst[k] += tn[k];
            }
            ++row;
        }
        p = p_end;
    }
    if (!self_done) write_self();
}

}  // namespace

void Acsf::gradients(const StructureView& s, const NeighborList& nl, const std::vector<int64_t>& rows,
                     const GradientOutput& out, bool parallel) const {
    ExceptionCollector errors;
#pragma omp parallel if (parallel && s.n_atoms >= kMinAtomsPerParallelRegion)
    {
        errors.run([&] {
            detail::LocalNeighbors local;
            detail::BlockScratch block;
            detail::GradientMode mode;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < s.n_atoms; ++i) {
                mode.g = out.values + i * n_features_;
                center(s, nl, i, mode, local, block);
                write_gradient_rows(nl, i, local, mode.d, n_features_, rows[i], out);
            }
        });
    }
    errors.rethrow();
}

void Acsf::forces_virial(const StructureView& s, const NeighborList& nl, const double* dE_dG, double* forces,
                         double* virial, bool parallel, VjpRhs rhs) const {
    const int64_t n = s.n_atoms, K = rhs.n;
    const int64_t per_rhs = 3 * n + 9;  // one thread buffer per rhs: forces then virial
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    std::vector<double> buffers(size_t(n_threads) * size_t(K * per_rhs), 0.0);
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            double* buf = &buffers[size_t(thread_id()) * size_t(K * per_rhs)];
            detail::LocalNeighbors L;
            detail::BlockScratch block;
            detail::VjpMode mode;
            mode.n_rhs = K;
            mode.w_stride = rhs.dE_dG_stride;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < n; ++i) {
                mode.w = dE_dG + i * n_features_;
                center(s, nl, i, mode, L, block);
                for (int64_t r = 0; r < K; ++r) {
                    double* f = buf + r * per_rhs;
                    double* w = f + 3 * n;
                    const double* coef = mode.coef.data() + r * L.m;
                    const double* ex = mode.ex.data() + r * L.m;
                    const double* ey = mode.ey.data() + r * L.m;
                    const double* ez = mode.ez.data() + r * L.m;
                    for (int64_t k = 0; k < L.m; ++k) {
                        const double v[3] = {L.x[k], L.y[k], L.z[k]};
                        const double g[3] = {coef[k] * v[0] + ex[k], coef[k] * v[1] + ey[k], coef[k] * v[2] + ez[k]};
                        const int64_t j = nl.neighbor[L.entry[k]];
                        for (int c = 0; c < 3; ++c) {
                            f[3 * j + c] -= g[c];
                            f[3 * i + c] += g[c];
                        }
                        for (int a = 0; a < 3; ++a)
                            for (int b = 0; b < 3; ++b) w[3 * a + b] -= v[a] * g[b];
                    }
                }
            }
        });
    }
    errors.rethrow();
    for (int64_t r = 0; r < K; ++r) {
        double* fo = forces + r * rhs.forces_stride;
        double* wo = virial + r * rhs.virial_stride;
        std::fill(fo, fo + 3 * n, 0.0);
        std::fill(wo, wo + 9, 0.0);
        for (int t = 0; t < n_threads; ++t) {
            const double* f = &buffers[size_t(t) * size_t(K * per_rhs) + size_t(r * per_rhs)];
            for (int64_t k = 0; k < 3 * n; ++k) fo[k] += f[k];
            for (int k = 0; k < 9; ++k) wo[k] += f[3 * n + k];
        }
    }
}

}  // namespace alip
