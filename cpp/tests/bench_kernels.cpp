// Kernel-only timing of the compiled variants (no Python, no neighbor list in the timed
// calls): Si 512 (diamond 4 x 4 x 4 conventional cells, rattled 0.05 Å), the spec of
// bench/featurize.py (cutoff 6 Å, 8 G2 + 16 G4), one thread, thread CPU time. Rounds
// interleave the variants so that a shared machine's load hits them alike; prints the
// median and best µs per atom of the values and the fused forces/virial kernels, and the
// neighbor-list build. Built with -DALIP_BUILD_TESTS=ON (not a test; not run by ctest):
//   ./alip_bench_kernels [variant ...]        (default: every variant this CPU runs)
//   ROUNDS=9 CALLS=10 ./alip_bench_kernels avx2 avx512
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "acsf.hpp"
#include "dispatch.hpp"
#include "neighbors.hpp"
#include "structure.hpp"

using namespace alip;

namespace {

double thread_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v ? std::max(1, std::atoi(v)) : fallback;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int rep = 4;
    const double a = 5.431;
    const double basis[8][3] = {{0, 0, 0},       {0, .5, .5},     {.5, 0, .5},     {.5, .5, 0},
                                {.25, .25, .25}, {.25, .75, .75}, {.75, .25, .75}, {.75, .75, .25}};
    std::vector<double> pos;
    std::vector<int32_t> species;
    const std::array<double, 9> cell{a * rep, 0, 0, 0, a * rep, 0, 0, 0, a * rep};
    std::mt19937 gen(0);
    std::uniform_real_distribution<double> rattle(-0.05, 0.05);
    for (int x = 0; x < rep; ++x)
        for (int y = 0; y < rep; ++y)
            for (int z = 0; z < rep; ++z)
                for (const auto& b : basis) {
                    pos.push_back((x + b[0]) * a + rattle(gen));
                    pos.push_back((y + b[1]) * a + rattle(gen));
                    pos.push_back((z + b[2]) * a + rattle(gen));
                    species.push_back(0);
                }
    StructureView s;
    s.positions = pos.data();
    s.n_atoms = int64_t(species.size());
    s.cell = cell.data();
    s.pbc = {true, true, true};
    s.species = species.data();
    AcsfSpec spec;
    spec.cutoff = 6.0;
    for (int k = 0; k < 8; ++k) spec.g2.push_back({1.0, 1.0 + 3.5 * k / 7});
    for (double eta : {0.005, 0.05})
        for (double zeta : {1.0, 2.0, 4.0, 16.0})
            for (double lambda : {1.0, -1.0}) spec.g4.push_back({eta, zeta, lambda});
    const Acsf acsf(spec);
    const int64_t n = s.n_atoms, F = acsf.n_features();
    const NeighborList nl = build_neighbor_list(s, spec.cutoff, false, false);
    std::vector<double> w(size_t(n * F)), values(size_t(n * F)), forces(size_t(3 * n)), virial(9);
    std::normal_distribution<double> normal;
    for (double& x : w) x = normal(gen);

    std::vector<std::string> names;
    for (int i = 1; i < argc; ++i) names.emplace_back(argv[i]);
    if (names.empty())
        for (const std::string& name : kernel_variants())
            if (find_kernel(name)->isa <= cpu_isa()) names.push_back(name);
    std::vector<const KernelTable*> tables;
    for (const std::string& name : names) {
        const KernelTable* k = find_kernel(name);
        if (k == nullptr || k->isa > cpu_isa()) {
            std::fprintf(stderr, "variant %s is not compiled in or not supported by this CPU\n", name.c_str());
            return 2;
        }
        tables.push_back(k);
    }
    const int rounds = env_int("ROUNDS", 7), calls = env_int("CALLS", 10);
    const size_t nv = tables.size();
    std::vector<std::vector<double>> tv(nv), tf(nv);
    std::vector<double> tnl;
    for (int r = 0; r < rounds; ++r) {
        double t0 = thread_seconds();
        for (int c = 0; c < calls; ++c) {
            const NeighborList fresh = build_neighbor_list(s, spec.cutoff, false, false);
            if (fresh.n_pairs() != nl.n_pairs()) return 3;
        }
        tnl.push_back((thread_seconds() - t0) / calls / double(n) * 1e6);
        for (size_t k = 0; k < nv; ++k) {
            t0 = thread_seconds();
            for (int c = 0; c < calls; ++c) tables[k]->acsf_values(acsf.tables(), s, nl, values.data(), false);
            const double t1 = thread_seconds();
            for (int c = 0; c < calls; ++c)
                tables[k]->acsf_forces_virial(acsf.tables(), s, nl, w.data(), forces.data(), virial.data(), false,
                                              VjpRhs{});
            const double t2 = thread_seconds();
            tv[k].push_back((t1 - t0) / calls / double(n) * 1e6);
            tf[k].push_back((t2 - t1) / calls / double(n) * 1e6);
        }
    }
    std::printf("Si %lld, %lld pairs, %d rounds x %d calls, one thread, thread CPU time, us/atom: median (best)\n",
                (long long)n, (long long)nl.n_pairs(), rounds, calls);
    std::printf("neighbor list (unsorted)  %7.3f (%.3f)\n", median(tnl), *std::min_element(tnl.begin(), tnl.end()));
    for (size_t k = 0; k < nv; ++k)
        std::printf("%-9s (%s)  values %7.3f (%.3f)  forces/virial %7.3f (%.3f)\n", names[k].c_str(), tables[k]->simd,
                    median(tv[k]), *std::min_element(tv[k].begin(), tv[k].end()), median(tf[k]),
                    *std::min_element(tf[k].begin(), tf[k].end()));
    return 0;
}
