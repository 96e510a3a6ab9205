// Behler–Parrinello atom-centered symmetry functions G2, G4, G5 (DScribe's convention)
// with exact derivatives: values, sparse per-pair gradients + strain gradients, and a
// fused vector–Jacobian product (forces and virial) that stores no Jacobian.
#pragma once

#include <cstdint>
#include <vector>

#include "neighbors.hpp"
#include "structure.hpp"

namespace alip {

enum class CutoffFunction { Cosine, Polynomial };

struct RadialParam {
    double eta;  ///< Å^-2
    double rs;   ///< Å
};

/// G4: 2^(1-zeta) sum_{j<k} (1 + lambda cos)^zeta exp(-eta [(r_ij-rs)^2 + (r_ik-rs)^2 + (r_jk-rs)^2]) fc fc fc;
/// G5: the same without the r_jk terms. rs = 0 is DScribe's G4 / G5; rs > 0 centres the
/// radial window on a neighbor shell (n2p2's angular functions with a shift).
/// A G5 may put its two legs on two windows (rs2 >= 0, rs2 != rs): its radial factor is then
/// 1/2 [g(r_ij; rs) g(r_ik; rs2) + g(r_ij; rs2) g(r_ik; rs)], g(r; c) = exp(-eta (r - c)^2),
/// which counts the angles between a neighbor near rs and one near rs2 (symmetric in j, k).
struct AngularParam {
    double eta;         ///< Å^-2
    double zeta;        ///< >= 1
    double lambda;      ///< in [-1, 1], usually ±1
    double rs = 0.0;    ///< Å, >= 0
    double rs2 = -1.0;  ///< Å: the second leg's window (G5 only); < 0: rs, one window for both legs
};

struct AcsfSpec {
    int32_t n_species = 1;
    double cutoff = 6.0;
    CutoffFunction cutoff_function = CutoffFunction::Cosine;
    std::vector<RadialParam> g2;
    std::vector<AngularParam> g4;
    std::vector<AngularParam> g5;
};

/// Output pointers for the gradient mode of one structure (all preallocated).
struct GradientOutput {
    double* values;           ///< (n_atoms, F)
    double* grad;             ///< (n_rows, 3, F)
    int64_t* centers;         ///< (n_rows,)
    int64_t* neighbors;       ///< (n_rows,)
    double* strain;           ///< (n_atoms, 3, 3, F)
    int64_t atom_offset = 0;  ///< added to the atom indices written to centers/neighbors
};

/// Right-hand sides of the fused VJP sharing one geometry (e.g. committee members):
/// rhs r is read at dE_dG + r * dE_dG_stride and written at forces + r * forces_stride,
/// virial + r * virial_stride.
struct VjpRhs {
    int64_t n = 1;
    int64_t dE_dG_stride = 0, forces_stride = 0, virial_stride = 0;
};

namespace detail {
/// Everything the kernels read, derived once from the spec by Acsf's constructor.
/// The kernels (acsf_kernel.hpp, acsf_values.hpp, acsf_variant.hpp) are compiled once
/// per CPU variant (dispatch.hpp) and see the descriptor only through this table.
struct AcsfTables {
    AcsfSpec spec;
    int64_t n_features = 0;
    int64_t n_angular_per_pair = 0;
    /// the distinct radial factors (eta, rs, rs2) over g4 and g5 ("eta groups": a triplet's
    /// radial factor E_e is a product of per-neighbor windows, 1/2 (a_j b_k + b_j a_k) for two)
    std::vector<double> angular_etas;  ///< eta of each group
    /// the centre (rs + rs2) / 2 of each group: rs for one window, so that every
    /// d/dr_ij E_e = -2 eta_e (r_ij - angular_rs_e) E_e + 2 eta_e angular_half_gap_e A_e, with A_e the
    /// antisymmetric part 1/2 (a_j b_k - b_j a_k) of a two-window group (0 for one window)
    std::vector<double> angular_rs;
    std::vector<double> angular_half_gap;  ///< (rs - rs2) / 2 of each group (0: one window)
    bool angular_shifted = false;          ///< whether any group has rs != 0
    bool angular_two_windows = false;      ///< whether any group has rs2 != rs (G5 only)
    /// the distinct per-neighbor windows exp(-eta (r - c)^2) ("legs"); group e multiplies
    /// legs leg_a[e] and leg_b[e] (equal for one window; without two windows leg e is group e's)
    std::vector<double> leg_etas, leg_rs;
    std::vector<int32_t> leg_a, leg_b;
    struct ZetaLambda {
        double zeta, lambda;
        int integer_zeta;  ///< >= 1 when zeta is a small integer, else -1
        int lambda_index;  ///< into lambdas
    };
    std::vector<double> lambdas;           ///< distinct lambdas
    int ladder_depth = 0;                  ///< powers b^(2^t), t < ladder_depth, cover every integer zeta
    std::vector<ZetaLambda> zeta_lambdas;  ///< distinct (zeta, lambda)
    struct AngularIndex {
        int eta, zl;
        double prefactor;  ///< 2^(1 - zeta)
        double eta_value;
        double eta_rs;        ///< eta * rs (of its group's centre)
        double eta_half_gap;  ///< eta * (rs - rs2) / 2 (0: one window)
    };
    std::vector<AngularIndex> g4_index, g5_index;
    std::vector<double> g4_etas, g5_etas;      ///< eta of each g4 / g5 function
    std::vector<double> g4_eta_rs, g5_eta_rs;  ///< eta * rs of each g4 / g5 function (its group's centre)
    std::vector<double> g5_eta_half_gap;       ///< eta * (rs - rs2) / 2 of each g5 function (G4: 0)
    std::vector<int32_t> pair_index;           ///< (n_species, n_species) -> unordered pair index

    int64_t n_radial_features() const { return int64_t(spec.n_species) * int64_t(spec.g2.size()); }
};
}  // namespace detail

class Acsf {
public:
    explicit Acsf(AcsfSpec spec);  ///< validates the parameters (throws InvalidInput)

    const AcsfSpec& spec() const { return t_.spec; }
    int64_t n_features() const { return t_.n_features; }
    int64_t n_radial_features() const { return t_.n_radial_features(); }

    /// values (n_atoms, F) of one structure.
    void values(const StructureView& s, const NeighborList& nl, double* out, bool parallel) const;

    /// Row offsets (n_atoms + 1) of the sparse gradient: per center, the self row plus
    /// one row per distinct neighbor atom.
    std::vector<int64_t> gradient_rows(const NeighborList& nl) const;

    /// values, sparse position gradients and strain gradients of one structure.
    void gradients(const StructureView& s, const NeighborList& nl, const std::vector<int64_t>& rows,
                   const GradientOutput& out, bool parallel) const;

    /// forces (n_atoms, 3) = -dE/dr and virial (3, 3) = -dE/deps given dE/dG (n_atoms, F).
    /// Outputs are overwritten. With `rhs.n` > 1 the same geometry serves several dE/dG.
    void forces_virial(const StructureView& s, const NeighborList& nl, const double* dE_dG, double* forces,
                       double* virial, bool parallel, VjpRhs rhs = VjpRhs()) const;

    /// What the kernels read (KernelTable's entry points take it; tests call a variant directly).
    const detail::AcsfTables& tables() const { return t_; }

private:
    detail::AcsfTables t_;
};

}  // namespace alip
