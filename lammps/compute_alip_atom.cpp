#include "compute_alip_atom.h"

#include <string>

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "pair_alip.h"
#include "update.h"

using namespace LAMMPS_NS;

ComputeAlipAtom::ComputeAlipAtom(LAMMPS* lmp, int narg, char** arg) : Compute(lmp, narg, arg) {
    if (narg != 3) error->all(FLERR, "Illegal compute alip/atom command: compute ID group alip/atom");
    peratom_flag = 1;
    size_peratom_cols = 0;
}

ComputeAlipAtom::~ComputeAlipAtom() { memory->destroy(deviation_); }

void ComputeAlipAtom::init() {
    pair_ = dynamic_cast<PairAlip*>(force->pair_match("alip", 1));
    if (!pair_) error->all(FLERR, "compute alip/atom requires pair_style alip");
}

void ComputeAlipAtom::compute_peratom() {
    invoked_peratom = update->ntimestep;
    if (pair_->deviation_step() != update->ntimestep)
        error->all(FLERR, "compute alip/atom: no force deviation for step " + std::to_string(update->ntimestep) +
                              " (it is computed with the forces; use it on steps where forces were computed)");
    if (atom->nmax > nmax_) {
        memory->destroy(deviation_);
        nmax_ = atom->nmax;
        memory->create(deviation_, nmax_, "alip/atom:deviation");
        vector_atom = deviation_;
    }
    const auto& dev = pair_->force_deviation();
    const int* mask = atom->mask;
    for (int i = 0; i < atom->nlocal; ++i) deviation_[i] = (mask[i] & groupbit) ? dev[size_t(i)] : 0.0;
}

double ComputeAlipAtom::memory_usage() { return double(nmax_) * sizeof(double); }
