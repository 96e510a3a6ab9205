// Featurizes a periodic two-atom Si cell through the installed public headers only.
#include <alip/acsf.hpp>
#include <alip/neighbors.hpp>
#include <alip/structure.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    const double positions[6] = {0.0, 0.0, 0.0, 1.3575, 1.3575, 1.3575};
    const double cell[9] = {0.0, 2.715, 2.715, 2.715, 0.0, 2.715, 2.715, 2.715, 0.0};
    const int32_t species[2] = {0, 0};
    alip::StructureView s;
    s.positions = positions;
    s.n_atoms = 2;
    s.cell = cell;
    s.pbc = {true, true, true};
    s.species = species;
    alip::AcsfSpec spec;
    spec.cutoff = 5.0;
    spec.g2 = {{1.0, 2.35}};
    spec.g4 = {{0.01, 1.0, 1.0}};
    const alip::Acsf acsf(spec);
    const alip::NeighborList nl = alip::build_neighbor_list(s, spec.cutoff, false);
    std::vector<double> g(size_t(2 * acsf.n_features()));
    acsf.values(s, nl, g.data(), false);
    // the two atoms of diamond Si are equivalent: equal, positive features
    for (int64_t f = 0; f < acsf.n_features(); ++f) {
        if (!(g[size_t(f)] > 0.0) || std::abs(g[size_t(f)] - g[size_t(acsf.n_features() + f)]) > 1e-12) {
            std::printf("unexpected features\n");
            return 1;
        }
    }
    try {
        alip::AcsfSpec bad = spec;
        bad.cutoff = -1.0;
        alip::Acsf refused(bad);
        return 1;
    } catch (const alip::InvalidInput&) {}
    std::printf("alip consumer: %lld features, G2 = %.6f\n", (long long)acsf.n_features(), g[0]);
    return 0;
}
