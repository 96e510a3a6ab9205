#include "acsf.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "parallel.hpp"

namespace alip {

namespace {

constexpr double kPi = 3.14159265358979323846;

struct CutoffValue {
    double f, df;
};

inline CutoffValue cutoff_value(CutoffFunction kind, double r, double rc) {
    if (r >= rc) return {0.0, 0.0};
    if (kind == CutoffFunction::Cosine) {
        const double a = kPi / rc;
        return {0.5 * (std::cos(a * r) + 1.0), -0.5 * a * std::sin(a * r)};
    }
    const double x = r / rc, x2 = x * x;
    return {1.0 + x2 * x * (-10.0 + x * (15.0 - 6.0 * x)), x2 * (-30.0 + x * (60.0 - 30.0 * x)) / rc};
}

inline double int_pow(double b, int e) {
    double r = 1.0;
    while (e > 0) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return r;
}

void check_finite(double x, const char* what, size_t k) {
    if (!std::isfinite(x)) {
        std::ostringstream msg;
        msg << what << " parameter " << k << " is not finite";
        throw InvalidInput(msg.str());
    }
}

// ---- the three modes of the per-center kernel ------------------------------
// radial(n, f, value, c):  d value / d v_n = c * v_n
// angular(n1, n2, f, value, a1, b, a2):  d/dv_n1 = a1 v1 + b v2,  d/dv_n2 = a2 v2 + b v1

struct ValuesMode {
    static constexpr bool kDerivatives = false;
    const NeighborList& nl;
    double* out;
    int64_t n_features;
    double* g = nullptr;

    void begin(int64_t i, int64_t, int64_t) {
        g = out + i * n_features;
        std::fill(g, g + n_features, 0.0);
    }
    void radial(int64_t, int64_t f, double value, double) { g[f] += value; }
    void angular(int64_t, int64_t, int64_t f, double value, double, double, double) { g[f] += value; }
    void triplet_end(int64_t, int64_t) {}
    void end(int64_t) {}
};

struct GradientMode {
    static constexpr bool kDerivatives = true;
    const NeighborList& nl;
    const GradientOutput& out;
    const std::vector<int64_t>& rows;
    int64_t n_features;
    std::vector<double> d;  // (m, 3, F) derivative w.r.t. each pair vector
    double* g = nullptr;
    int64_t first = 0, m = 0;

    void begin(int64_t i, int64_t first_pair, int64_t n_pairs) {
        first = first_pair;
        m = n_pairs;
        g = out.values + i * n_features;
        std::fill(g, g + n_features, 0.0);
        d.assign(size_t(m * 3 * n_features), 0.0);
    }
    const double* vec(int64_t n) const { return &nl.vector[3 * (first + n)]; }
    void radial(int64_t n, int64_t f, double value, double c) {
        g[f] += value;
        const double* v = vec(n);
        double* dn = &d[size_t(n * 3 * n_features)];
        for (int k = 0; k < 3; ++k) dn[k * n_features + f] += c * v[k];
    }
    void angular(int64_t n1, int64_t n2, int64_t f, double value, double a1, double b, double a2) {
        g[f] += value;
        const double* v1 = vec(n1);
        const double* v2 = vec(n2);
        double* d1 = &d[size_t(n1 * 3 * n_features)];
        double* d2 = &d[size_t(n2 * 3 * n_features)];
        for (int k = 0; k < 3; ++k) {
            d1[k * n_features + f] += a1 * v1[k] + b * v2[k];
            d2[k * n_features + f] += a2 * v2[k] + b * v1[k];
        }
    }
    void triplet_end(int64_t, int64_t) {}

    void end(int64_t i) {
        const int64_t F = n_features, F3 = 3 * F;
        // strain: dG/deps_ab = sum_n v_n,a dG/dv_n,b
        double* strain = out.strain + i * 9 * F;
        std::fill(strain, strain + 9 * F, 0.0);
        for (int64_t n = 0; n < m; ++n) {
            const double* v = vec(n);
            const double* dn = &d[size_t(n * F3)];
            for (int a = 0; a < 3; ++a)
                for (int bb = 0; bb < 3; ++bb) {
                    double* s = strain + (a * 3 + bb) * F;
                    const double* src = dn + bb * F;
                    for (int64_t f = 0; f < F; ++f) s[f] += v[a] * src[f];
                }
        }
        // position rows: one per distinct neighbor atom (images summed), self row in order
        int64_t row = rows[i];
        bool self_done = false;
        auto write_self = [&]() {
            double* dst = out.grad + row * F3;
            std::fill(dst, dst + F3, 0.0);
            for (int64_t n = 0; n < m; ++n) {
                if (nl.neighbor[first + n] == i) continue;  // own images move with i
                const double* dn = &d[size_t(n * F3)];
                for (int64_t k = 0; k < F3; ++k) dst[k] -= dn[k];
            }
            out.centers[row] = i + out.atom_offset;
            out.neighbors[row] = i + out.atom_offset;
            ++row;
            self_done = true;
        };
        for (int64_t n = 0; n < m;) {
            const int64_t j = nl.neighbor[first + n];
            int64_t n_end = n;
            while (n_end < m && nl.neighbor[first + n_end] == j) ++n_end;
            if (!self_done && j >= i) write_self();
            if (j != i) {
                double* dst = out.grad + row * F3;
                std::fill(dst, dst + F3, 0.0);
                for (int64_t q = n; q < n_end; ++q) {
                    const double* dn = &d[size_t(q * F3)];
                    for (int64_t k = 0; k < F3; ++k) dst[k] += dn[k];
                }
                out.centers[row] = i + out.atom_offset;
                out.neighbors[row] = j + out.atom_offset;
                ++row;
            }
            n = n_end;
        }
        if (!self_done) write_self();
    }
};

struct VjpMode {
    static constexpr bool kDerivatives = true;
    const NeighborList& nl;
    const double* dE_dG;
    int64_t n_features;
    double* forces;  // this thread's (n_atoms, 3) buffer
    double* virial;  // this thread's (3, 3) buffer
    std::vector<double> coef;   // (m,) coefficient of v_n
    std::vector<double> extra;  // (m, 3) cross terms
    const double* w = nullptr;
    int64_t first = 0, m = 0;
    double b_sum = 0.0, a1_sum = 0.0, a2_sum = 0.0;

    void begin(int64_t i, int64_t first_pair, int64_t n_pairs) {
        first = first_pair;
        m = n_pairs;
        w = dE_dG + i * n_features;
        coef.assign(size_t(m), 0.0);
        extra.assign(size_t(3 * m), 0.0);
    }
    void radial(int64_t n, int64_t f, double, double c) { coef[n] += w[f] * c; }
    void angular(int64_t, int64_t, int64_t f, double, double a1, double b, double a2) {
        a1_sum += w[f] * a1;
        a2_sum += w[f] * a2;
        b_sum += w[f] * b;
    }
    void triplet_end(int64_t n1, int64_t n2) {
        coef[n1] += a1_sum;
        coef[n2] += a2_sum;
        const double* v1 = &nl.vector[3 * (first + n1)];
        const double* v2 = &nl.vector[3 * (first + n2)];
        for (int k = 0; k < 3; ++k) {
            extra[3 * n1 + k] += b_sum * v2[k];
            extra[3 * n2 + k] += b_sum * v1[k];
        }
        a1_sum = a2_sum = b_sum = 0.0;
    }
    void end(int64_t i) {
        for (int64_t n = 0; n < m; ++n) {
            const double* v = &nl.vector[3 * (first + n)];
            const int64_t j = nl.neighbor[first + n];
            double gn[3];
            for (int k = 0; k < 3; ++k) gn[k] = coef[n] * v[k] + extra[3 * n + k];
            for (int k = 0; k < 3; ++k) {
                forces[3 * j + k] -= gn[k];
                forces[3 * i + k] += gn[k];
            }
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) virial[3 * a + b] -= v[a] * gn[b];
        }
    }
};

}  // namespace

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
                zeta_lambdas_.push_back({p.zeta, p.lambda, is_int ? int(p.zeta) : -1});
            }
            index.push_back({e, z, std::pow(2.0, 1.0 - p.zeta)});
        }
    };
    add_angular(spec_.g4, g4_index_, "g4");
    add_angular(spec_.g5, g5_index_, "g5");
    const int32_t ns = spec_.n_species;
    pair_index_.assign(size_t(ns) * ns, 0);
    int32_t q = 0;
    for (int32_t a = 0; a < ns; ++a)
        for (int32_t b = a; b < ns; ++b) pair_index_[a * ns + b] = pair_index_[b * ns + a] = q++;
    n_angular_per_pair_ = int64_t(spec_.g4.size() + spec_.g5.size());
    n_features_ = n_radial_features() + int64_t(q) * n_angular_per_pair_;
}

template <class Mode>
void Acsf::center(const StructureView& s, const NeighborList& nl, int64_t i, Mode& mode) const {
    constexpr bool D = Mode::kDerivatives;
    const int64_t first = nl.offsets[i];
    const int64_t m = nl.offsets[i + 1] - first;
    mode.begin(i, first, m);
    if (m == 0) {
        mode.end(i);
        return;
    }
    const double rc = spec_.cutoff;
    const int64_t n_g2 = int64_t(spec_.g2.size());
    thread_local std::vector<double> fc, dfc, expo, pw, dpw, e12;
    thread_local std::vector<int32_t> sp;
    fc.resize(m);
    dfc.resize(m);
    sp.resize(m);
    for (int64_t n = 0; n < m; ++n) {
        const CutoffValue c = cutoff_value(spec_.cutoff_function, nl.distance[first + n], rc);
        fc[n] = c.f;
        dfc[n] = c.df;
        sp[n] = s.species[nl.neighbor[first + n]];
    }
    // G2
    for (int64_t n = 0; n < m; ++n) {
        const double r = nl.distance[first + n];
        const int64_t base = int64_t(sp[n]) * n_g2;
        for (int64_t p = 0; p < n_g2; ++p) {
            const double dr = r - spec_.g2[p].rs;
            const double e = std::exp(-spec_.g2[p].eta * dr * dr);
            double c = 0.0;
            if (D) c = e * (dfc[n] - 2.0 * spec_.g2[p].eta * dr * fc[n]) / r;
            mode.radial(n, base + p, e * fc[n], c);
        }
    }
    if (n_angular_per_pair_ == 0) {
        mode.end(i);
        return;
    }
    // G4 / G5 over unordered pairs of neighbors
    const int64_t ne = int64_t(angular_etas_.size());
    const int64_t nz = int64_t(zeta_lambdas_.size());
    expo.resize(m * ne);
    pw.resize(nz);
    dpw.resize(nz);
    e12.resize(ne);
    for (int64_t n = 0; n < m; ++n) {
        const double r2 = nl.distance[first + n] * nl.distance[first + n];
        for (int64_t e = 0; e < ne; ++e) expo[n * ne + e] = std::exp(-angular_etas_[e] * r2);
    }
    const int64_t n_g4 = int64_t(spec_.g4.size());
    const int64_t n_radial = n_radial_features();
    const int32_t ns = spec_.n_species;
    for (int64_t n1 = 0; n1 < m; ++n1) {
        const double* v1 = &nl.vector[3 * (first + n1)];
        const double r1 = nl.distance[first + n1];
        const double fc1 = fc[n1], dfc1 = dfc[n1];
        for (int64_t n2 = n1 + 1; n2 < m; ++n2) {
            const double* v2 = &nl.vector[3 * (first + n2)];
            const double r2 = nl.distance[first + n2];
            const double fc2 = fc[n2], dfc2 = dfc[n2];
            const double inv12 = 1.0 / (r1 * r2);
            double cos = (v1[0] * v2[0] + v1[1] * v2[1] + v1[2] * v2[2]) * inv12;
            cos = std::min(1.0, std::max(-1.0, cos));
            for (int64_t z = 0; z < nz; ++z) {
                const ZetaLambda& zl = zeta_lambdas_[z];
                const double b = 1.0 + zl.lambda * cos;
                if (b <= 0.0) {
                    pw[z] = 0.0;
                    dpw[z] = zl.zeta == 1.0 ? zl.lambda : 0.0;
                } else {
                    pw[z] = zl.integer_zeta >= 0 ? int_pow(b, zl.integer_zeta) : std::pow(b, zl.zeta);
                    dpw[z] = zl.zeta * zl.lambda * pw[z] / b;
                }
            }
            const int64_t base = n_radial + int64_t(pair_index_[sp[n1] * ns + sp[n2]]) * n_angular_per_pair_;
            const double* ex1 = &expo[n1 * ne];
            const double* ex2 = &expo[n2 * ne];
            const double cos_r1 = cos / (r1 * r1), cos_r2 = cos / (r2 * r2);
            if (n_g4 > 0) {
                const double d12[3] = {v2[0] - v1[0], v2[1] - v1[1], v2[2] - v1[2]};
                const double r12sq = d12[0] * d12[0] + d12[1] * d12[1] + d12[2] * d12[2];
                const double r12 = std::sqrt(r12sq);
                if (r12 < rc) {
                    const CutoffValue c12 = cutoff_value(spec_.cutoff_function, r12, rc);
                    for (int64_t e = 0; e < ne; ++e) e12[e] = std::exp(-angular_etas_[e] * r12sq);
                    const double Fc = fc1 * fc2 * c12.f;
                    const double dF1 = D ? dfc1 * fc2 * c12.f / r1 + fc1 * fc2 * c12.df / r12 : 0.0;
                    const double dF2 = D ? fc1 * dfc2 * c12.f / r2 + fc1 * fc2 * c12.df / r12 : 0.0;
                    const double dFb = D ? -fc1 * fc2 * c12.df / r12 : 0.0;
                    for (int64_t p = 0; p < n_g4; ++p) {
                        const AngularIndex& ix = g4_index_[p];
                        const double eta = angular_etas_[ix.eta];
                        const double X = ix.prefactor * ex1[ix.eta] * ex2[ix.eta] * e12[ix.eta];
                        const double P = pw[ix.zl];
                        double a1 = 0, bb = 0, a2 = 0;
                        if (D) {
                            const double dP = dpw[ix.zl];
                            a1 = X * (-dP * Fc * cos_r1 - 4.0 * eta * P * Fc + P * dF1);
                            bb = X * (dP * Fc * inv12 + 2.0 * eta * P * Fc + P * dFb);
                            a2 = X * (-dP * Fc * cos_r2 - 4.0 * eta * P * Fc + P * dF2);
                        }
                        mode.angular(n1, n2, base + p, X * P * Fc, a1, bb, a2);
                    }
                }
            }
            if (!g5_index_.empty()) {
                const double Fc = fc1 * fc2;
                const double dF1 = dfc1 * fc2 / r1, dF2 = fc1 * dfc2 / r2;
                const int64_t base5 = base + n_g4;
                for (size_t p = 0; p < g5_index_.size(); ++p) {
                    const AngularIndex& ix = g5_index_[p];
                    const double eta = angular_etas_[ix.eta];
                    const double X = ix.prefactor * ex1[ix.eta] * ex2[ix.eta];
                    const double P = pw[ix.zl];
                    double a1 = 0, bb = 0, a2 = 0;
                    if (D) {
                        const double dP = dpw[ix.zl];
                        a1 = X * (-dP * Fc * cos_r1 - 2.0 * eta * P * Fc + P * dF1);
                        bb = X * dP * Fc * inv12;
                        a2 = X * (-dP * Fc * cos_r2 - 2.0 * eta * P * Fc + P * dF2);
                    }
                    mode.angular(n1, n2, base5 + int64_t(p), X * P * Fc, a1, bb, a2);
                }
            }
            mode.triplet_end(n1, n2);
        }
    }
    mode.end(i);
}

void Acsf::values(const StructureView& s, const NeighborList& nl, double* out, bool parallel) const {
    ExceptionCollector errors;
#pragma omp parallel if (parallel && s.n_atoms > 1)
    {
        errors.run([&] {
            ValuesMode mode{nl, out, n_features_};
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < s.n_atoms; ++i) center(s, nl, i, mode);
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

void Acsf::gradients(const StructureView& s, const NeighborList& nl, const std::vector<int64_t>& rows,
                     const GradientOutput& out, bool parallel) const {
    ExceptionCollector errors;
#pragma omp parallel if (parallel && s.n_atoms > 1)
    {
        errors.run([&] {
            GradientMode mode{nl, out, rows, n_features_, {}};
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < s.n_atoms; ++i) center(s, nl, i, mode);
        });
    }
    errors.rethrow();
}

void Acsf::forces_virial(const StructureView& s, const NeighborList& nl, const double* dE_dG, double* forces,
                         double* virial, bool parallel) const {
    const int64_t n = s.n_atoms;
    const int n_threads = (parallel && n > 1) ? get_num_threads() : 1;
    std::vector<double> buffers(size_t(n_threads > 1 ? n_threads : 0) * size_t(3 * n + 9), 0.0);
    std::fill(forces, forces + 3 * n, 0.0);
    std::fill(virial, virial + 9, 0.0);
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            double* f = forces;
            double* w = virial;
            if (n_threads > 1) {
                f = &buffers[size_t(thread_id()) * size_t(3 * n + 9)];
                w = f + 3 * n;
            }
            VjpMode mode{nl, dE_dG, n_features_, f, w, {}, {}};
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < n; ++i) center(s, nl, i, mode);
        });
    }
    errors.rethrow();
    if (n_threads > 1) {
        for (int t = 0; t < n_threads; ++t) {
            const double* f = &buffers[size_t(t) * size_t(3 * n + 9)];
            for (int64_t k = 0; k < 3 * n; ++k) forces[k] += f[k];
            for (int k = 0; k < 9; ++k) virial[k] += f[3 * n + k];
        }
    }
}

}  // namespace alip
