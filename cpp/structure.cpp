#include "structure.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace alip {

namespace {
double norm3(const double* v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }
}  // namespace

void check_finite(double x, const char* what, size_t index) {
    if (!std::isfinite(x)) {
        std::ostringstream msg;
        msg << what << " parameter " << index << " is not finite";
        throw InvalidInput(msg.str());
    }
}

void validate_cutoff(double cutoff) {
    if (!std::isfinite(cutoff) || cutoff <= 0.0) {
        std::ostringstream msg;
        msg << "cutoff must be a finite positive number, got " << cutoff;
        throw InvalidInput(msg.str());
    }
}

void validate_structure(const StructureView& s, int32_t n_species) {
    if (s.n_atoms <= 0) throw InvalidInput("structure has no atoms");
    for (int64_t i = 0; i < s.n_atoms; ++i) {
        for (int a = 0; a < 3; ++a) {
            if (!std::isfinite(s.positions[3 * i + a])) {
                std::ostringstream msg;
                msg << "position of atom " << i << " is not finite (NaN or inf)";
                throw InvalidInput(msg.str());
            }
        }
        if (s.species != nullptr && (s.species[i] < 0 || s.species[i] >= n_species)) {
            std::ostringstream msg;
            msg << "species index " << s.species[i] << " of atom " << i << " is out of range [0, " << n_species << ")";
            throw InvalidInput(msg.str());
        }
    }
    for (int k = 0; k < 9; ++k) {
        if (!std::isfinite(s.cell[k])) throw InvalidInput("cell contains NaN or inf");
    }
    const double* h = s.cell;
    const int n_periodic = int(s.pbc[0]) + int(s.pbc[1]) + int(s.pbc[2]);
    if (n_periodic == 0) return;
    const double scale = std::max({norm3(h), norm3(h + 3), norm3(h + 6), 1e-300});
    for (int a = 0; a < 3; ++a) {
        if (s.pbc[a] && norm3(h + 3 * a) <= 1e-10 * scale) {
            std::ostringstream msg;
            msg << "cell vector " << a << " is zero but the structure is periodic along it";
            throw InvalidInput(msg.str());
        }
    }
    if (n_periodic == 3) {
        const double det = h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
                           h[2] * (h[3] * h[7] - h[4] * h[6]);
        if (!(det > 1e-10 * scale * scale * scale)) {
            std::ostringstream msg;
            msg << "periodic cell has zero or negative volume (det = " << det << " Å^3)";
            throw InvalidInput(msg.str());
        }
    } else if (n_periodic == 2) {
        int a = s.pbc[0] ? 0 : 1;
        int b = s.pbc[2] ? 2 : 1;
        const double* u = h + 3 * a;
        const double* v = h + 3 * b;
        const double c[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
        if (norm3(c) <= 1e-10 * norm3(u) * norm3(v)) {
            throw InvalidInput("the two periodic cell vectors are parallel (zero area)");
        }
    }
}

}  // namespace alip
