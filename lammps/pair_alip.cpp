#include "pair_alip.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>

#include "alip_model.h"
#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "alip/domain.hpp"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "modify.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

using namespace LAMMPS_NS;

PairAlip::PairAlip(LAMMPS* lmp) : Pair(lmp) {
    single_enable = 0;
    restartinfo = 0;
    one_coeff = 1;
    manybody_flag = 1;
    centroidstressflag = CENTROID_NOTAVAIL;
    no_virial_fdotr_compute = 1;  // the core returns the virial of the centres' pairs
    comm_reverse = 0;             // set to 3 K once the model is known
}

PairAlip::~PairAlip() {
    if (devi_fp_) fclose(devi_fp_);
    if (allocated) {
        memory->destroy(setflag);
        memory->destroy(cutsq);
    }
}

void PairAlip::allocate() {
    allocated = 1;
    const int n = atom->ntypes;
    memory->create(setflag, n + 1, n + 1, "pair:setflag");
    for (int i = 1; i <= n; i++)
        for (int j = i; j <= n; j++) setflag[i][j] = 0;
    memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
}

void PairAlip::settings(int narg, char** arg) {
    if (narg < 1) error->all(FLERR, "Illegal pair_style alip command: pair_style alip MODEL_FILE [out_freq N] [out_file FILE]");
    if (strcmp(update->unit_style, "metal") != 0)
        error->all(FLERR, std::string("pair_style alip requires units metal (eV, Å, ps), not units ") + update->unit_style);
    model_file_ = arg[0];
    for (int iarg = 1; iarg < narg; iarg += 2) {
        if (iarg + 1 >= narg) error->all(FLERR, std::string("pair_style alip: keyword ") + arg[iarg] + " needs a value");
        if (strcmp(arg[iarg], "out_freq") == 0) {
            out_freq_ = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
            if (out_freq_ < 0) error->all(FLERR, "pair_style alip: out_freq must be >= 0");
        } else if (strcmp(arg[iarg], "out_file") == 0) {
            out_file_ = arg[iarg + 1];
        } else {
            error->all(FLERR, std::string("pair_style alip: unknown keyword ") + arg[iarg] +
                                  " (known: out_freq, out_file)");
        }
    }
    try {
        model_ = std::make_unique<alip_lammps::Model>(model_file_);
    } catch (const std::exception& e) {
        error->all(FLERR, std::string("pair_style alip: ") + e.what());
    }
    comm_reverse = 3 * model_->n_members();
    if (devi_fp_) {
        fclose(devi_fp_);
        devi_fp_ = nullptr;
    }
}

void PairAlip::coeff(int narg, char** arg) {
    if (!model_) error->all(FLERR, "pair_coeff before pair_style alip");
    if (!allocated) allocate();
    const int ntypes = atom->ntypes;
    if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
        error->all(FLERR, "pair_coeff for pair_style alip must be '* *' followed by one element per atom type (" +
                              std::to_string(ntypes) + " types), e.g. pair_coeff * * Si");
    const auto& symbols = model_->symbols();
    std::string known;
    for (const auto& s : symbols) known += (known.empty() ? "" : " ") + s;
    type_species_.assign(size_t(ntypes) + 1, -1);
    for (int t = 1; t <= ntypes; ++t) {
        const std::string el = arg[1 + t];
        const auto it = std::find(symbols.begin(), symbols.end(), el);
        if (it == symbols.end())
            error->all(FLERR, "pair_coeff: element " + el + " of atom type " + std::to_string(t) +
                                  " is not in the model's species (" + known + ")");
        type_species_[size_t(t)] = int(it - symbols.begin());
    }
    for (int i = 1; i <= ntypes; i++)
        for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairAlip::init_style() {
    if (strcmp(update->unit_style, "metal") != 0)
        error->all(FLERR, std::string("pair_style alip requires units metal, not units ") + update->unit_style);
    if (force->newton_pair == 0) error->all(FLERR, "pair_style alip requires newton pair on");
    if (type_species_.empty()) error->all(FLERR, "pair_style alip: no pair_coeff * * command given");
    neighbor->add_request(this, NeighConst::REQ_FULL);
    if (out_freq_ > 0 && comm->me == 0 && !devi_fp_) {
        devi_fp_ = fopen(out_file_.c_str(), "w");
        if (!devi_fp_) error->one(FLERR, "pair_style alip: cannot open " + out_file_ + " for writing");
        fprintf(devi_fp_, "#%11s %18s %18s %18s %18s %18s %18s\n", "step", "max_devi_v", "min_devi_v", "avg_devi_v",
                "max_devi_f", "min_devi_f", "avg_devi_f");
        fflush(devi_fp_);
    }
}

double PairAlip::init_one(int i, int j) {
    if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
    return model_->cutoff();
}

bool PairAlip::deviation_wanted() {
    if (out_freq_ > 0 && update->ntimestep % out_freq_ == 0) return true;
    // computes alip/atom store the steps they will be invoked on (thermo, dumps, fix halt, ...)
    for (Compute* c : modify->get_compute_by_style("alip/atom"))
        if (c->matchstep(update->ntimestep)) return true;
    return false;
}

void PairAlip::evaluate(int n_rhs) {
    const int nlocal = atom->nlocal;
    const int nall = nlocal + atom->nghost;
    nall_ = nall;
    n_rhs_ = n_rhs;
    const int K = model_->n_members();
    const int64_t F = model_->n_features();
    const int inum = list->inum;
    const int* ilist = list->ilist;
    const int* numneigh = list->numneigh;
    int** firstneigh = list->firstneigh;
    if (inum != nlocal) error->one(FLERR, "pair_style alip: the neighbor list does not cover every local atom");

    species_.resize(size_t(nall));
    const int* type = atom->type;
    for (int i = 0; i < nall; ++i) species_[size_t(i)] = type_species_[size_t(type[i])];
    offsets_.assign(size_t(nlocal) + 1, 0);
    for (int ii = 0; ii < inum; ++ii) offsets_[size_t(ilist[ii]) + 1] = numneigh[ilist[ii]];
    for (int i = 0; i < nlocal; ++i) offsets_[size_t(i) + 1] += offsets_[size_t(i)];
    candidates_.resize(size_t(offsets_[size_t(nlocal)]));
    for (int ii = 0; ii < inum; ++ii) {
        const int i = ilist[ii];
        int64_t* out = &candidates_[size_t(offsets_[size_t(i)])];
        for (int jj = 0; jj < numneigh[i]; ++jj) out[jj] = firstneigh[i][jj] & NEIGHMASK;
    }

    alip::DomainView d;
    d.positions = nall > 0 ? &atom->x[0][0] : nullptr;
    d.n_centres = nlocal;
    d.n_atoms = nall;
    d.species = species_.data();
    try {
        alip::validate_domain(d, int32_t(model_->symbols().size()));
        const alip::NeighborList nl = alip::domain_neighbor_list(d, offsets_.data(), candidates_.data(),
                                                                 model_->cutoff(), true);
        values_.resize(size_t(nlocal * F));
        alip::domain_values(model_->acsf(), d, nl, values_.data(), true);
        energies_.resize(size_t(K) * size_t(nlocal));
        dE_dG_.resize(size_t(K) * size_t(nlocal * F));
        model_->evaluate(values_.data(), species_.data(), nlocal, energies_.data(), dE_dG_.data(), true);
        const double* rhs = dE_dG_.data();
        if (n_rhs == 1 && K > 1) {  // the mean force is the VJP of the mean dE/dG: one pass instead of K
            mean_dE_dG_.assign(size_t(nlocal * F), 0.0);
            for (int k = 0; k < K; ++k)
                for (size_t q = 0; q < mean_dE_dG_.size(); ++q) mean_dE_dG_[q] += dE_dG_[size_t(k) * mean_dE_dG_.size() + q];
            for (double& v : mean_dE_dG_) v /= K;
            rhs = mean_dE_dG_.data();
        }
        forces_.resize(size_t(n_rhs) * size_t(3 * nall));
        virials_.resize(size_t(n_rhs) * 9);
        alip::domain_forces_virial(model_->acsf(), d, nl, rhs, n_rhs, forces_.data(), virials_.data(), true);
    } catch (const std::exception& e) {
        error->one(FLERR, std::string("pair_style alip: ") + e.what());
    }
}

void PairAlip::compute(int eflag, int vflag) {
    ev_init(eflag, vflag);
    if (vflag_atom || cvflag_atom)
        error->all(FLERR, "pair_style alip does not compute per-atom virials (compute stress/atom)");
    const int nlocal = atom->nlocal;
    const int K = model_->n_members();
    const bool deviation = deviation_wanted();
    evaluate(deviation ? K : 1);
    const int nall = nall_;

    if (eflag_either) {
        for (int i = 0; i < nlocal; ++i) {
            double e = 0.0;
            for (int k = 0; k < K; ++k) e += energies_[size_t(k) * size_t(nlocal) + size_t(i)];
            e /= K;
            if (eflag_global) eng_vdwl += e;
            if (eflag_atom) eatom[i] += e;
        }
    }
    double** f = atom->f;
    const double inv = 1.0 / n_rhs_;
    for (int i = 0; i < nall; ++i)
        for (int c = 0; c < 3; ++c) {
            double s = 0.0;
            for (int r = 0; r < n_rhs_; ++r) s += forces_[size_t(r) * size_t(3 * nall) + size_t(3 * i + c)];
            f[i][c] += s * inv;
        }
    if (vflag_global) {
        double w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
        for (int r = 0; r < n_rhs_; ++r)
            for (int q = 0; q < 9; ++q) w[q] += virials_[size_t(9 * r + q)] * inv;
        virial[0] += w[0];
        virial[1] += w[4];
        virial[2] += w[8];
        virial[3] += 0.5 * (w[1] + w[3]);
        virial[4] += 0.5 * (w[2] + w[6]);
        virial[5] += 0.5 * (w[5] + w[7]);
    }
    if (deviation) compute_deviation(nlocal);
    evaluated_step_ = update->ntimestep;
}

const std::vector<double>& PairAlip::force_deviation() {
    if (deviation_step_ != update->ntimestep || deviation_step_ != evaluated_step_) {
        // not scheduled with the forces (e.g. read from Python after a run): evaluate again at the
        // same positions, without touching the forces
        if (evaluated_step_ != update->ntimestep || list == nullptr)
            error->all(FLERR, "compute alip/atom: no forces were computed on step " +
                                  std::to_string(update->ntimestep) + " (run 0 first)");
        evaluate(model_->n_members());
        compute_deviation(atom->nlocal);
    }
    return deviation_;
}

void PairAlip::compute_deviation(int nlocal) {
    const int K = model_->n_members();
    const size_t stride = size_t(3 * nall_);
    comm->reverse_comm(this);  // ghosts' member forces onto their owners
    deviation_.resize(size_t(nlocal));
    double max_f = 0.0, min_f = std::numeric_limits<double>::infinity(), sum_f = 0.0;
    for (int i = 0; i < nlocal; ++i) {
        double mean[3] = {0, 0, 0};
        for (int k = 0; k < K; ++k)
            for (int c = 0; c < 3; ++c) mean[c] += forces_[size_t(k) * stride + size_t(3 * i + c)] / K;
        double var = 0.0;
        for (int k = 0; k < K; ++k)
            for (int c = 0; c < 3; ++c) {
                const double dv = forces_[size_t(k) * stride + size_t(3 * i + c)] - mean[c];
                var += dv * dv;
            }
        const double eps = std::sqrt(var / K);
        deviation_[size_t(i)] = eps;
        max_f = std::max(max_f, eps);
        min_f = std::min(min_f, eps);
        sum_f += eps;
    }
    deviation_step_ = update->ntimestep;
    if (out_freq_ > 0 && update->ntimestep % out_freq_ == 0 && update->ntimestep != last_written_)
        write_model_devi(nlocal, max_f, min_f, sum_f);
}

void PairAlip::write_model_devi(int /*nlocal*/, double max_f, double min_f, double sum_f) {
    const int K = model_->n_members();
    double local[3] = {max_f, -min_f, sum_f}, global[3];
    MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_MAX, world);
    MPI_Allreduce(&local[2], &global[2], 1, MPI_DOUBLE, MPI_SUM, world);
    std::vector<double> w(size_t(9 * K));
    MPI_Allreduce(virials_.data(), w.data(), 9 * K, MPI_DOUBLE, MPI_SUM, world);
    // DeePMD's convention: per-component committee std of the virial per atom; max, min and
    // the root mean square over the 9 components
    const double natoms = double(atom->natoms);
    double vmax = 0.0, vmin = std::numeric_limits<double>::infinity(), vsq = 0.0;
    for (int q = 0; q < 9; ++q) {
        double mean = 0.0, var = 0.0;
        for (int k = 0; k < K; ++k) mean += w[size_t(9 * k + q)] / natoms / K;
        for (int k = 0; k < K; ++k) {
            const double dv = w[size_t(9 * k + q)] / natoms - mean;
            var += dv * dv / K;
        }
        const double sd = std::sqrt(var);
        vmax = std::max(vmax, sd);
        vmin = std::min(vmin, sd);
        vsq += sd * sd;
    }
    last_written_ = update->ntimestep;
    if (devi_fp_) {
        fprintf(devi_fp_, "%12lld %18.10e %18.10e %18.10e %18.10e %18.10e %18.10e\n", (long long)update->ntimestep,
                vmax, vmin, std::sqrt(vsq / 9.0), global[0], -global[1], global[2] / natoms);
        fflush(devi_fp_);
    }
}

int PairAlip::pack_reverse_comm(int n, int first, double* buf) {
    const int K = model_->n_members();
    const size_t stride = size_t(3 * nall_);
    int m = 0;
    for (int i = first; i < first + n; ++i)
        for (int k = 0; k < K; ++k)
            for (int c = 0; c < 3; ++c) buf[m++] = forces_[size_t(k) * stride + size_t(3 * i + c)];
    return m;
}

void PairAlip::unpack_reverse_comm(int n, int* list, double* buf) {
    const int K = model_->n_members();
    const size_t stride = size_t(3 * nall_);
    int m = 0;
    for (int ii = 0; ii < n; ++ii) {
        const int j = list[ii];
        for (int k = 0; k < K; ++k)
            for (int c = 0; c < 3; ++c) forces_[size_t(k) * stride + size_t(3 * j + c)] += buf[m++];
    }
}

double PairAlip::memory_usage() {
    double bytes = Pair::memory_usage();
    for (const auto* v : {&values_, &energies_, &dE_dG_, &mean_dE_dG_, &forces_, &virials_, &deviation_})
        bytes += double(v->capacity() * sizeof(double));
    bytes += double(candidates_.capacity() + offsets_.capacity()) * sizeof(int64_t);
    return bytes;
}
