#include "batch.hpp"

#include <algorithm>
#include <array>
#include <sstream>
#include <vector>

#include "parallel.hpp"

namespace alip {

StructureView Batch::structure(int64_t k) const {
    StructureView s;
    s.positions = positions + 3 * offsets[k];
    s.n_atoms = offsets[k + 1] - offsets[k];
    s.cell = cells + 9 * k;
    s.pbc = {pbc[3 * k] != 0, pbc[3 * k + 1] != 0, pbc[3 * k + 2] != 0};
    s.species = species + offsets[k];
    return s;
}

namespace {

/// Parallel over structures when there are enough of them to keep every thread
/// busy; otherwise structures run one after another, each using all threads.
bool parallel_over_structures(const Batch& batch) {
    const int threads = get_num_threads();
    return threads > 1 && batch.n_structures >= 2 * threads;
}

template <class F>
void for_each_structure(const Batch& batch, F&& work) {
    const bool outer = parallel_over_structures(batch);
    ExceptionCollector errors;
    if (outer) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t k = 0; k < batch.n_structures; ++k) {
            if (errors.failed()) continue;
            errors.run([&] { work(k, /*inner_parallel=*/false); });
        }
        errors.rethrow();
    } else {
        for (int64_t k = 0; k < batch.n_structures; ++k) work(k, /*inner_parallel=*/true);
    }
}

/// Prefixes an error with the index of the structure it comes from.
template <class F>
void in_structure(const Batch& batch, int64_t k, F&& f) {
    try {
        f();
    } catch (const InvalidInput& e) {
        if (batch.n_structures == 1) throw;
        std::ostringstream msg;
        msg << "structure " << k << ": " << e.what();
        throw InvalidInput(msg.str());
    }
}

}  // namespace

void validate_batch(const Batch& batch, int32_t n_species, double cutoff) {
    validate_cutoff(cutoff);
    if (batch.n_structures < 1) throw InvalidInput("no structures given");
    if (batch.offsets[0] != 0) throw InvalidInput("offsets must start at 0");
    for (int64_t k = 0; k < batch.n_structures; ++k) {
        if (batch.offsets[k + 1] < batch.offsets[k]) throw InvalidInput("offsets must be non-decreasing");
        in_structure(batch, k, [&] { validate_structure(batch.structure(k), n_species); });
    }
}

std::vector<NeighborList> batch_neighbor_lists(const Batch& batch, double cutoff) {
    std::vector<NeighborList> lists(batch.n_structures);
    for_each_structure(batch, [&](int64_t k, bool inner) {
        in_structure(batch, k, [&] { lists[k] = build_neighbor_list(batch.structure(k), cutoff, inner); });
    });
    return lists;
}

namespace {

/// The neighbor list of the values and forces calls, one per thread, kept between calls:
///  * a call on exactly the same positions, cell, pbc and cutoff as this thread's previous
///    one (forces right after values, as a calculator or an MD step does) reuses the list;
///  * otherwise it is rebuilt in place, reusing its arrays (about 50 bytes per pair)
///    instead of mapping fresh pages each call, whose page faults cost ~7 % of a 512-atom
///    values + forces call.
/// Lists over kKeptPairs pairs are freed after use.
class KeptNeighborList {
public:
    const NeighborList& get(const StructureView& s, double cutoff, bool parallel) {
        const size_t n3 = size_t(3 * s.n_atoms);
        const bool same = valid_ && cutoff == cutoff_ && s.pbc == pbc_ && positions_.size() == n3 &&
                          std::equal(s.cell, s.cell + 9, cell_.begin()) &&
                          std::equal(s.positions, s.positions + n3, positions_.begin());
        if (same) return nl_;
        valid_ = false;  // stays so if the build throws
        build_neighbor_list(s, cutoff, parallel, /*sorted=*/false, nl_);
        positions_.assign(s.positions, s.positions + n3);
        std::copy(s.cell, s.cell + 9, cell_.begin());
        pbc_ = s.pbc;
        cutoff_ = cutoff;
        valid_ = true;
        return nl_;
    }
    void release_if_large() {
        constexpr size_t kKeptPairs = size_t(1) << 20;  // ~52 MiB (~23 k atoms of Si at 6 Å)
        if (nl_.neighbor.capacity() > kKeptPairs) *this = KeptNeighborList();
    }

private:
    NeighborList nl_;
    std::vector<double> positions_;
    std::array<double, 9> cell_{};
    std::array<bool, 3> pbc_{};
    double cutoff_ = 0.0;
    bool valid_ = false;
};

KeptNeighborList& kept_neighbor_list() {
    thread_local KeptNeighborList kept;
    return kept;
}

}  // namespace

void batch_values(const Acsf& acsf, const Batch& batch, double* out) {
    const int64_t F = acsf.n_features();
    for_each_structure(batch, [&](int64_t k, bool inner) {
        const StructureView s = batch.structure(k);
        KeptNeighborList& kept = kept_neighbor_list();
        const NeighborList* nl = nullptr;
        in_structure(batch, k, [&] { nl = &kept.get(s, acsf.spec().cutoff, inner); });
        acsf.values(s, *nl, out + batch.offsets[k] * F, inner);
        kept.release_if_large();
    });
}

GradientPlan plan_gradients(const Acsf& acsf, const Batch& batch) {
    GradientPlan plan;
    plan.lists = batch_neighbor_lists(batch, acsf.spec().cutoff);
    plan.rows.resize(batch.n_structures);
    plan.row_start.assign(batch.n_structures + 1, 0);
    for (int64_t k = 0; k < batch.n_structures; ++k) {
        plan.rows[k] = acsf.gradient_rows(plan.lists[k]);
        plan.row_start[k + 1] = plan.row_start[k] + plan.rows[k].back();
    }
    return plan;
}

void batch_gradients(const Acsf& acsf, const Batch& batch, const GradientPlan& plan, double* values, double* grad,
                     int64_t* centers, int64_t* neighbors, double* strain) {
    const int64_t F = acsf.n_features();
    for_each_structure(batch, [&](int64_t k, bool inner) {
        const int64_t a0 = batch.offsets[k], r0 = plan.row_start[k];
        GradientOutput out{values + a0 * F, grad + r0 * 3 * F, centers + r0, neighbors + r0, strain + a0 * 9 * F, a0};
        acsf.gradients(batch.structure(k), plan.lists[k], plan.rows[k], out, inner);
    });
}

void batch_forces_virial(const Acsf& acsf, const Batch& batch, const double* dE_dG, double* forces, double* virials,
                         int64_t n_rhs) {
    const int64_t F = acsf.n_features(), N = batch.n_atoms();
    const VjpRhs rhs{n_rhs, N * F, 3 * N, 9 * batch.n_structures};
    for_each_structure(batch, [&](int64_t k, bool inner) {
        const StructureView s = batch.structure(k);
        KeptNeighborList& kept = kept_neighbor_list();
        const NeighborList* nl = nullptr;
        in_structure(batch, k, [&] { nl = &kept.get(s, acsf.spec().cutoff, inner); });
        const int64_t a0 = batch.offsets[k];
        acsf.forces_virial(s, *nl, dE_dG + a0 * F, forces + 3 * a0, virials + 9 * k, inner, rhs);
        kept.release_if_large();
    });
}

}  // namespace alip
