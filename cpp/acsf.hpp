// Behler–Parrinello atom-centered symmetry functions G2, G4, G5 (DScribe's convention)
// with exact derivatives: values, sparse per-pair gradients + strain gradients, and a
// fused vector–Jacobian product (forces and virial) that stores no Jacobian.
#pragma once

#include <cstdint>
#include <vector>

#include "neighbors.hpp"
#include "structure.hpp"

namespace alip {

namespace detail {
struct LocalNeighbors;
struct BlockScratch;
struct ValuesScratch;
}  // namespace detail

enum class CutoffFunction { Cosine, Polynomial };

struct RadialParam {
    double eta;  ///< Å^-2
    double rs;   ///< Å
};

struct AngularParam {
    double eta;     ///< Å^-2
    double zeta;    ///< >= 1
    double lambda;  ///< in [-1, 1], usually ±1
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
    double* values;            ///< (n_atoms, F)
    double* grad;              ///< (n_rows, 3, F)
    int64_t* centers;          ///< (n_rows,)
    int64_t* neighbors;        ///< (n_rows,)
    double* strain;            ///< (n_atoms, 3, 3, F)
    int64_t atom_offset = 0;   ///< added to the atom indices written to centers/neighbors
};

/// Right-hand sides of the fused VJP sharing one geometry (e.g. committee members):
/// rhs r is read at dE_dG + r * dE_dG_stride and written at forces + r * forces_stride,
/// virial + r * virial_stride.
struct VjpRhs {
    int64_t n = 1;
    int64_t dE_dG_stride = 0, forces_stride = 0, virial_stride = 0;
};

class Acsf {
public:
    explicit Acsf(AcsfSpec spec);  ///< validates the parameters (throws InvalidInput)

    const AcsfSpec& spec() const { return spec_; }
    int64_t n_features() const { return n_features_; }
    int64_t n_radial_features() const { return int64_t(spec_.n_species) * int64_t(spec_.g2.size()); }

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

private:
    /// Accumulates the center's values and, by mode, derivatives w.r.t. its pair vectors.
    template <class Mode>
    void center(const StructureView& s, const NeighborList& nl, int64_t i, Mode& mode, detail::LocalNeighbors& local,
                detail::BlockScratch& block) const;

    /// The derivative modes' part of center(), after the neighbors are gathered.
    template <class Mode>
    void derivative_terms(Mode& mode, detail::LocalNeighbors& local, detail::BlockScratch& block) const;

    /// G2, G4, G5 of one center for the values-only mode (acsf_values.hpp).
    void values_kernel(const detail::LocalNeighbors& local, double* g, detail::ValuesScratch& scratch) const;

    AcsfSpec spec_;
    int64_t n_features_ = 0;
    int64_t n_angular_per_pair_ = 0;
    std::vector<double> angular_etas_;  ///< distinct etas over g4 and g5
    struct ZetaLambda {
        double zeta, lambda;
        int integer_zeta;  ///< >= 1 when zeta is a small integer, else -1
        int lambda_index;  ///< into lambdas_
    };
    std::vector<double> lambdas_;  ///< distinct lambdas
    int ladder_depth_ = 0;         ///< powers b^(2^t), t < ladder_depth_, cover every integer zeta
    std::vector<ZetaLambda> zeta_lambdas_;  ///< distinct (zeta, lambda)
    struct AngularIndex {
        int eta, zl;
        double prefactor;  ///< 2^(1 - zeta)
        double eta_value;
    };
    std::vector<AngularIndex> g4_index_, g5_index_;
    std::vector<double> g4_etas_, g5_etas_;  ///< eta of each g4 / g5 function
    std::vector<int32_t> pair_index_;  ///< (n_species, n_species) -> unordered pair index
};

}  // namespace alip
