// compute ID group alip/atom: the committee's per-atom force deviation
// eps_F,i = sqrt(<|F_ik - <F_i>|^2>_k) (eV/Å, DP-GEN's definition) from pair_style alip.
// Its maximum (compute reduce max) can stop a run with fix halt.
#pragma once

#include "compute.h"

namespace LAMMPS_NS {

class ComputeAlipAtom : public Compute {
public:
    ComputeAlipAtom(class LAMMPS*, int, char**);
    ~ComputeAlipAtom() override;
    void init() override;
    void compute_peratom() override;
    double memory_usage() override;

private:
    class PairAlip* pair_ = nullptr;
    int nmax_ = 0;
    double* deviation_ = nullptr;
};

}  // namespace LAMMPS_NS
