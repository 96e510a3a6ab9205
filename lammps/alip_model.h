// The committee of a model file written by `alip export lammps` (format: python/alip/models/lammps.py):
// the ACSF spec and K x S Behler-Parrinello MLPs, evaluated in double precision with their
// input gradients dE/dG by the core (alip/mlp.hpp, the networks training runs too). No LAMMPS
// types: the pair style is a thin user of it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alip/acsf.hpp"
#include "alip/mlp.hpp"

namespace alip_lammps {

constexpr const char* kModelMagic = "alip-lammps-model";
constexpr int kModelVersion = 3;  ///< the newest version read; 2 added rs to the G4/G5 lines, 3 rs2

class Model {
public:
    /// Reads `path`; throws std::runtime_error naming the file and the problem (wrong magic,
    /// unsupported version or units, truncated or inconsistent contents).
    explicit Model(const std::string& path);

    const alip::Acsf& acsf() const { return *acsf_; }
    int64_t n_features() const { return acsf_->n_features(); }
    int n_members() const { return n_members_; }
    const std::vector<std::string>& symbols() const { return symbols_; }
    double cutoff() const { return acsf_->spec().cutoff; }

    /// Atomic energies (K, n) and dE/dG (K, n, F) of every member for descriptors G (n, F)
    /// of atoms of species `species` (n,). OpenMP over blocks of atoms when `parallel` (the core's).
    void evaluate(const double* G, const int32_t* species, int64_t n, double* energies, double* dE_dG,
                  bool parallel) const;

private:
    std::unique_ptr<alip::Acsf> acsf_;
    std::vector<std::string> symbols_;
    std::vector<double> energy_ref_;  ///< (S)
    double energy_scale_ = 1.0;
    std::vector<double> shift_, inv_scale_;  ///< (S, F)
    int n_members_ = 0;
    alip::MlpActivation activation_ = alip::MlpActivation::tanh;
    std::vector<int64_t> sizes_;  ///< n_0 = F, ..., n_L = 1
    /// per species, per layer: the K members' weights (K, n_l, n_{l+1}) and biases (K, n_{l+1}),
    /// the layout of alip/mlp.hpp's StackedMlp
    std::vector<std::vector<std::vector<double>>> weights_, biases_;
    std::vector<std::vector<const double*>> weight_ptrs_, bias_ptrs_;
};

}  // namespace alip_lammps
