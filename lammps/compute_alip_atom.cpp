#include "compute_alip_atom.h"

#include <string>
#include <vector>

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
    timeflag = 1;  // the steps it is invoked on tell pair_style alip when to compute the deviation
}

ComputeAlipAtom::~ComputeAlipAtom() { memory->destroy(deviation_); }

void ComputeAlipAtom::init() {
    pair_ = dynamic_cast<PairAlip*>(force->pair_match("alip", 1));
    if (!pair_) error->all(FLERR, "compute alip/atom requires pair_style alip");
}

void ComputeAlipAtom::compute_peratom() {
    invoked_peratom = update->ntimestep;
    if (atom->nmax > nmax_) {
        memory->destroy(deviation_);
        nmax_ = atom->nmax;
        memory->create(deviation_, nmax_, "alip/atom:deviation");
        vector_atom = deviation_;
    }
    const std::vector<double>& dev = pair_->force_deviation();
    const int* mask = atom->mask;
    for (int i = 0; i < atom->nlocal; ++i) deviation_[i] = (mask[i] & groupbit) ? dev[size_t(i)] : 0.0;
}

double ComputeAlipAtom::memory_usage() { return double(nmax_) * sizeof(double); }
