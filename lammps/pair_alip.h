// pair_style alip: a committee of Behler-Parrinello networks exported by `alip export lammps`.
// Descriptors and forces come from alip's C++ core over LAMMPS's full neighbor list with
// ghosts (cpp/domain.hpp); energies, forces and virial are the committee mean; the committee's
// per-atom force deviation feeds compute alip/atom and a DP-GEN model_devi file.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace alip_lammps {
class Model;
}

namespace LAMMPS_NS {

class PairAlip : public Pair {
public:
    explicit PairAlip(class LAMMPS*);
    ~PairAlip() override;

    void compute(int, int) override;
    void settings(int, char**) override;
    void coeff(int, char**) override;
    void init_style() override;
    double init_one(int, int) override;
    int pack_reverse_comm(int, int, double*) override;
    void unpack_reverse_comm(int, int*, double*) override;
    double memory_usage() override;

    /// Per-atom force deviation of the local atoms (eV/Å) on this step: computed with the forces
    /// when a compute alip/atom was scheduled for the step, else evaluated again now.
    const std::vector<double>& force_deviation();

private:
    std::unique_ptr<alip_lammps::Model> model_;
    std::string model_file_;
    std::vector<int> type_species_;    ///< LAMMPS type (1..ntypes) -> model species index
    int out_freq_ = 0;                 ///< model_devi every out_freq_ steps (0: never)
    std::string out_file_ = "model_devi.out";
    FILE* devi_fp_ = nullptr;
    bigint last_written_ = -1;

    // per-call buffers
    std::vector<int32_t> species_;
    std::vector<int64_t> offsets_, candidates_;
    std::vector<double> values_, energies_, dE_dG_, mean_dE_dG_, forces_, virials_, deviation_;
    int n_rhs_ = 1, nall_ = 0;
    bigint deviation_step_ = -1, evaluated_step_ = -1;

    void allocate();
    bool deviation_wanted();
    void evaluate(int n_rhs);  ///< values, MLPs and forces/virials of n_rhs = 1 (mean) or K members
    void compute_deviation(int nlocal);
    void write_model_devi(int nlocal, double max_f, double min_f, double sum_f);
};

}  // namespace LAMMPS_NS
