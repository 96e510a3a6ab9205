// The committee of a model file written by `alip export lammps` (format: python/alip/models/lammps.py):
// the ACSF spec and K x S Behler-Parrinello MLPs, evaluated in double precision with their
// input gradients dE/dG. No LAMMPS types: the pair style is a thin user of it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alip/acsf.hpp"
#include "alip_mlp.h"

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
    /// of atoms of species `species` (n,). OpenMP over blocks of atoms when `parallel`.
    void evaluate(const double* G, const int32_t* species, int64_t n, double* energies, double* dE_dG,
                  bool parallel) const;

private:
    struct Mlp {
        std::vector<std::vector<double>> w;  ///< per layer (n_in, n_out), row-major
        std::vector<std::vector<double>> b;  ///< per layer (n_out)
    };
    std::unique_ptr<alip::Acsf> acsf_;
    std::vector<std::string> symbols_;
    std::vector<double> energy_ref_;  ///< (S)
    double energy_scale_ = 1.0;
    std::vector<double> shift_, inv_scale_;  ///< (S, F)
    int n_members_ = 0;
    Activation activation_ = Activation::Tanh;
    std::vector<int> sizes_;  ///< n_0 = F, ..., n_L = 1
    std::vector<Mlp> nets_;   ///< (K, S)

    void evaluate_block(int s, const double* G, const int64_t* atoms, int64_t nb, int64_t n, double* energies,
                        double* dE_dG, std::vector<double>& work) const;
};

}  // namespace alip_lammps
