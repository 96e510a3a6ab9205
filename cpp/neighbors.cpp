#include "neighbors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <sstream>

#include "cell_geometry.hpp"
#include "parallel.hpp"

namespace alip {

namespace {

using geometry::cross;
using geometry::det3;
using geometry::dot;
using geometry::inverse3;
using geometry::Mat3;
using geometry::norm3;

Mat3 binning_cell(const StructureView& s) {
    const bool pbc[3] = {s.pbc[0], s.pbc[1], s.pbc[2]};
    return geometry::binning_cell(s.cell, pbc);
}

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

constexpr double kSubdivision = 2.0;

struct Pair {
    int64_t j;
    int32_t s[3];
    double d2;
};
using PairBuffer = FillLaterVector<Pair>;  ///< grows without initializing (candidates are written, then kept or not)

/// Atoms sorted into bins of the binning cell, and everything a center's search reads.
struct CellList {
    Mat3 h{};  ///< binning cell (rows), hinv its inverse
    Mat3 hinv{};
    double vol = 0.0;
    std::vector<double> frac;                        ///< (n, 3) fractional coordinates, wrapped along periodic axes
    std::vector<int64_t> wrap;                       ///< (n, 3) the cell shifts the wrapping removed
    std::array<double, 3> spacing{}, lo{}, width{};  ///< lattice-plane distance, bin origin and width per axis
    std::array<int64_t, 3> nbins{}, reach{};         ///< bins per axis, bins a search spans each side
    struct Row {
        int64_t dx, dy, dz_lo, dz_hi;  ///< bins (dx, dy, dz) for dz in [dz_lo, dz_hi]
    };
    std::vector<Row> rows;                          ///< bin offsets a center visits, as rows along z
    std::vector<std::array<int64_t, 3>> atom_bin3;  ///< (n,) bin of each atom
    std::vector<int64_t> bin_start, bin_atoms;      ///< atoms per bin (compressed rows)
    std::vector<double> wrapped, binned;            ///< wrapped positions, by atom and in bin order
    /// periodic image of bin coordinate t in [-reach, nbins + reach): image_of[a][t + reach[a]]
    /// (no integer division in the search)
    std::array<std::vector<int64_t>, 3> image_of;
};
using Row = CellList::Row;

/// Fractional coordinates, wrapped into [0, 1) along periodic axes (the wrap remembered).
void fractional_coordinates(const StructureView& s, CellList& c) {
    const int64_t n = s.n_atoms;
    const Mat3& hinv = c.hinv;
    // fractional coordinates; wrap along periodic axes and remember the wrap
    std::vector<double>& frac = c.frac;
    std::vector<int64_t>& wrap = c.wrap;
    frac.assign(3 * n, 0.0);
    wrap.assign(3 * n, 0);
    for (int64_t i = 0; i < n; ++i) {
        const double* r = s.positions + 3 * i;
        for (int a = 0; a < 3; ++a) {
            double f = r[0] * hinv[a] + r[1] * hinv[3 + a] + r[2] * hinv[6 + a];
            if (s.pbc[a]) {
                double fl = std::floor(f);
                f -= fl;
                if (f >= 1.0) f -= 1.0, fl += 1.0;
                wrap[3 * i + a] = static_cast<int64_t>(fl);
            }
            frac[3 * i + a] = f;
        }
    }
}

/// Bins per axis of at least cutoff / kSubdivision (at most ~2 per atom), their width and
/// how many bins a search must reach along each axis.
void choose_bins(const StructureView& s, double cutoff, CellList& c) {
    const int64_t n = s.n_atoms;
    const Mat3& h = c.h;
    const double vol = c.vol;
    const std::vector<double>& frac = c.frac;
    // bins: per axis, width (in Å between bin planes) of at least the cutoff
    std::array<double, 3>& spacing = c.spacing;
    std::array<double, 3>& lo = c.lo;
    std::array<double, 3>& width = c.width;
    std::array<int64_t, 3>& nbins = c.nbins;
    std::array<int64_t, 3>& reach = c.reach;
    for (int a = 0; a < 3; ++a) {
        double normal[3];
        cross(&h[3 * ((a + 1) % 3)], &h[3 * ((a + 2) % 3)], normal);
        spacing[a] = vol / norm3(normal);  // distance between lattice planes along a
        double extent = 1.0;
        lo[a] = 0.0;
        if (!s.pbc[a]) {
            double mn = frac[a], mx = frac[a];
            for (int64_t i = 1; i < n; ++i) mn = std::min(mn, frac[3 * i + a]), mx = std::max(mx, frac[3 * i + a]);
            lo[a] = mn;
            extent = mx - mn;
        }
        double len = extent * spacing[a];
        // bins of at least cutoff / kSubdivision: a center visits (2 kSubdivision + 1)^3
        // bins of ~ (cutoff / kSubdivision)^3 instead of 27 of >= cutoff^3, several times
        // fewer candidates (corner bins out of reach are skipped below)
        double nb = std::floor(len * kSubdivision / cutoff);
        nbins[a] = static_cast<int64_t>(std::max(1.0, std::min(nb, 1e6)));
    }
    // never more bins than ~2 per atom (sparse systems would waste memory)
    const int64_t max_bins = std::max<int64_t>(8, 2 * n);
    while (nbins[0] * nbins[1] * nbins[2] > max_bins) {
        int a = int(std::max_element(nbins.begin(), nbins.end()) - nbins.begin());
        nbins[a] = std::max<int64_t>(1, nbins[a] / 2);
    }
    for (int a = 0; a < 3; ++a) {
        double extent = s.pbc[a] ? 1.0 : 0.0;
        if (!s.pbc[a]) {
            double mx = lo[a];
            for (int64_t i = 0; i < n; ++i) mx = std::max(mx, frac[3 * i + a]);
            extent = mx - lo[a];
        }
        width[a] = extent > 0 ? extent / double(nbins[a]) : 1.0;
        const double width_len = width[a] * spacing[a];
        if (s.pbc[a]) {
            double r = std::ceil(cutoff / width_len);
            if (r > 1e6) throw InvalidInput("cutoff is too large compared to the periodic cell (more than 1e6 images)");
            reach[a] = static_cast<int64_t>(r);
        } else {
            reach[a] = extent > 0 ? std::min<int64_t>(nbins[a] - 1, int64_t(std::ceil(cutoff / width_len))) : 0;
        }
    }
}

/// The bin offsets a center visits (CellList::rows).
void bin_offsets_within_reach(double cutoff, CellList& c) {
    const Mat3& h = c.h;
    const std::array<double, 3>& spacing = c.spacing;
    const std::array<double, 3>& width = c.width;
    const std::array<int64_t, 3>& reach = c.reach;
    // bin offsets to visit, as rows along z; when the binning cell is orthogonal (to
    // 1e-12 in the cosines), bins whose closest points are surely (margin 1e-9 on the
    // squared cutoff, far above the skew error) at least a cutoff apart are dropped
    bool orthogonal = true;
    for (int a = 0; a < 3; ++a)
        for (int b = a + 1; b < 3; ++b)
            if (std::abs(dot(&h[3 * a], &h[3 * b])) > 1e-12 * norm3(&h[3 * a]) * norm3(&h[3 * b])) orthogonal = false;
    std::vector<Row>& rows = c.rows;
    rows.clear();
    for (int64_t dx = -reach[0]; dx <= reach[0]; ++dx)
        for (int64_t dy = -reach[1]; dy <= reach[1]; ++dy) {
            Row row{dx, dy, 0, -1};
            for (int64_t dz = -reach[2]; dz <= reach[2]; ++dz) {
                if (orthogonal) {
                    const int64_t d[3] = {dx, dy, dz};
                    double gap2 = 0.0;
                    for (int a = 0; a < 3; ++a) {
                        const double gap = double(std::max<int64_t>(0, std::abs(d[a]) - 1)) * width[a] * spacing[a];
                        gap2 += gap * gap;
                    }
                    if (gap2 >= cutoff * cutoff * (1.0 + 1e-9)) continue;  // surely out of reach
                }
                if (row.dz_hi < row.dz_lo) row.dz_lo = dz;  // kept dz form one interval
                row.dz_hi = dz;
            }
            if (row.dz_hi >= row.dz_lo) rows.push_back(row);
        }
}

/// Sorts the atoms into bins (counting sort), wraps their positions and tabulates the
/// periodic images of bin coordinates.
void sort_atoms_into_bins(const StructureView& s, CellList& c) {
    const int64_t n = s.n_atoms;
    const Mat3& h = c.h;
    const std::vector<double>& frac = c.frac;
    const std::vector<int64_t>& wrap = c.wrap;
    const std::array<double, 3>& lo = c.lo;
    const std::array<double, 3>& width = c.width;
    const std::array<int64_t, 3>& nbins = c.nbins;
    const std::array<int64_t, 3>& reach = c.reach;
    auto bin_of = [&](int64_t i, int a) {
        int64_t b = static_cast<int64_t>(std::floor((frac[3 * i + a] - lo[a]) / width[a]));
        return std::min(std::max<int64_t>(b, 0), nbins[a] - 1);
    };
    const int64_t total_bins = nbins[0] * nbins[1] * nbins[2];
    std::vector<int64_t> atom_bin(n);
    std::vector<int64_t>& bin_start = c.bin_start;
    std::vector<int64_t>& bin_atoms = c.bin_atoms;
    std::vector<std::array<int64_t, 3>>& atom_bin3 = c.atom_bin3;
    bin_start.assign(total_bins + 1, 0);
    bin_atoms.assign(n, 0);
    atom_bin3.resize(n);
    for (int64_t i = 0; i < n; ++i) {
        atom_bin3[i] = {bin_of(i, 0), bin_of(i, 1), bin_of(i, 2)};
        atom_bin[i] = (atom_bin3[i][0] * nbins[1] + atom_bin3[i][1]) * nbins[2] + atom_bin3[i][2];
        ++bin_start[atom_bin[i] + 1];
    }
    std::partial_sum(bin_start.begin(), bin_start.end(), bin_start.begin());
    {
        std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
        for (int64_t i = 0; i < n; ++i) bin_atoms[fill[atom_bin[i]]++] = i;
    }

    // wrapped Cartesian positions
    std::vector<double>& wrapped = c.wrapped;
    wrapped.resize(3 * n);
    for (int64_t i = 0; i < n; ++i)
        for (int k = 0; k < 3; ++k) {
            double r = s.positions[3 * i + k];
            for (int a = 0; a < 3; ++a) r -= double(wrap[3 * i + a]) * h[3 * a + k];
            wrapped[3 * i + k] = r;
        }

    std::vector<double>& binned = c.binned;  // wrapped positions in bin order
    binned.resize(3 * n);
    for (int64_t q = 0; q < n; ++q)
        for (int k = 0; k < 3; ++k) binned[3 * q + k] = wrapped[3 * bin_atoms[q] + k];

    std::array<std::vector<int64_t>, 3>& image_of = c.image_of;
    for (int a = 0; a < 3; ++a) {
        image_of[a].resize(size_t(nbins[a] + 2 * reach[a]));
        for (int64_t t = -reach[a]; t < nbins[a] + reach[a]; ++t)
            image_of[a][size_t(t + reach[a])] = floor_div(t, nbins[a]);
    }
}

/// Appends the pairs of center i within the cutoff to `out` (sorted by (j, shift) when
/// `sorted`); throws InvalidInput for overlapping atoms. Branch-free over the candidates:
/// each is written at the end of `out` and kept by advancing the count when within the
/// cutoff (a data-dependent branch per candidate mispredicts about a third of the time).
void search_center(const CellList& c, const std::array<bool, 3>& pbc, int64_t i, double cutoff, bool sorted,
                   PairBuffer& out) {
    const Mat3& h = c.h;
    const std::vector<int64_t>& wrap = c.wrap;
    const std::array<int64_t, 3>& nbins = c.nbins;
    const std::array<int64_t, 3>& reach = c.reach;
    const std::vector<Row>& rows = c.rows;
    const std::vector<std::array<int64_t, 3>>& atom_bin3 = c.atom_bin3;
    const std::vector<int64_t>& bin_start = c.bin_start;
    const int64_t* const bin_atoms = c.bin_atoms.data();
    const std::vector<double>& wrapped = c.wrapped;
    const std::array<std::vector<int64_t>, 3>& image_of = c.image_of;
    const double cutoff2 = cutoff * cutoff;
    const double overlap2 = kOverlapDistance * kOverlapDistance;
    const size_t start = out.size();
    size_t count = start;
    const double* ri = &wrapped[3 * i];
    const double* bp = c.binned.data();
    for (const Row& row : rows) {
        const int64_t tx = atom_bin3[i][0] + row.dx, ty = atom_bin3[i][1] + row.dy;
        int64_t bx = tx, by = ty, sx = 0, sy = 0;
        if (pbc[0])
            sx = image_of[0][size_t(tx + reach[0])], bx = tx - sx * nbins[0];
        else if (tx < 0 || tx >= nbins[0])
            continue;
        if (pbc[1])
            sy = image_of[1][size_t(ty + reach[1])], by = ty - sy * nbins[1];
        else if (ty < 0 || ty >= nbins[1])
            continue;
        int64_t tz = atom_bin3[i][2] + row.dz_lo, tz_end = atom_bin3[i][2] + row.dz_hi + 1;
        if (!pbc[2]) tz = std::max<int64_t>(tz, 0), tz_end = std::min(tz_end, nbins[2]);
        const int64_t row_base = (bx * nbins[1] + by) * nbins[2];
        // runs of consecutive z bins of one periodic image: their atoms are contiguous
        while (tz < tz_end) {
            const int64_t sz = pbc[2] ? image_of[2][size_t(tz + reach[2])] : 0;
            const int64_t bz = tz - sz * nbins[2];
            const int64_t bz_end = std::min(nbins[2], bz + (tz_end - tz));
            tz += bz_end - bz;
            const double off[3] = {sx * h[0] + sy * h[3] + sz * h[6] - ri[0], sx * h[1] + sy * h[4] + sz * h[7] - ri[1],
                                   sx * h[2] + sy * h[5] + sz * h[8] - ri[2]};
            const int64_t self = (sx == 0 && sy == 0 && sz == 0) ? i : -1;  // i itself is no neighbor
            const int64_t q_begin = bin_start[row_base + bz], q_end = bin_start[row_base + bz_end];
            out.resize(count + size_t(q_end - q_begin));  // room for every candidate (not initialized)
            Pair* const o = out.data();
            const int32_t image[3] = {int32_t(sx), int32_t(sy), int32_t(sz)};
            for (int64_t q = q_begin; q < q_end; ++q) {
                const double* rj = bp + 3 * q;
                const double dx = rj[0] + off[0], dy = rj[1] + off[1], dz = rj[2] + off[2];
                const double d2 = dx * dx + dy * dy + dz * dz;
                const int64_t j = bin_atoms[q];
                Pair& p = o[count];
                p.j = j;
                p.s[0] = image[0], p.s[1] = image[1], p.s[2] = image[2];  // the image; made a shift below
                p.d2 = d2;
                count += size_t((d2 < cutoff2) & (j != self));
            }
        }
    }
    out.resize(count);
    const int64_t* const w = wrap.data();
    for (size_t k = start; k < count; ++k) {
        Pair& p = out[k];
        if (p.d2 < overlap2) {
            std::ostringstream msg;
            msg << "atoms " << i << " and " << p.j << " overlap (distance " << std::sqrt(p.d2) << " Å < "
                << kOverlapDistance << " Å)";
            throw InvalidInput(msg.str());
        }
        for (int a = 0; a < 3; ++a) p.s[a] = int32_t(p.s[a] - w[3 * p.j + a] + w[3 * i + a]);
    }
    if (sorted)
        std::sort(out.begin() + start, out.end(), [](const Pair& x, const Pair& y) {
            if (x.j != y.j) return x.j < y.j;
            if (x.s[0] != y.s[0]) return x.s[0] < y.s[0];
            if (x.s[1] != y.s[1]) return x.s[1] < y.s[1];
            return x.s[2] < y.s[2];
        });
}

}  // namespace

NeighborList build_neighbor_list(const StructureView& s, double cutoff, bool parallel, bool sorted) {
    NeighborList nl;
    build_neighbor_list(s, cutoff, parallel, sorted, nl);
    return nl;
}

void build_neighbor_list(const StructureView& s, double cutoff, bool parallel, bool sorted, NeighborList& nl) {
    validate_cutoff(cutoff);
    if (s.positions == nullptr || s.cell == nullptr)
        throw InvalidInput("the structure needs positions and a cell (a null pointer was given)");
    StructureView geometry = s;  // species are not the neighbor list's business
    geometry.species = nullptr;
    validate_structure(geometry, 0);
    const int64_t n = s.n_atoms;
    const double cutoff2 = cutoff * cutoff;
    CellList cells;
    cells.h = binning_cell(s);
    cells.hinv = inverse3(cells.h);
    cells.vol = std::abs(det3(cells.h.data()));
    fractional_coordinates(s, cells);
    choose_bins(s, cutoff, cells);
    bin_offsets_within_reach(cutoff, cells);
    sort_atoms_into_bins(s, cells);

    // search the centers in n_chunks contiguous ranges (one per thread), then write the
    // pairs into the compressed rows; the pair buffers are this thread's, kept between
    // calls up to kKeptPairs pairs
    nl.n_atoms = n;
    nl.offsets.assign(n + 1, 0);
    thread_local std::vector<PairBuffer> kept;  // the calling thread's (the loops below share it)
    std::vector<PairBuffer>& chunks = kept;
    constexpr size_t kKeptPairs = size_t(1) << 20;  // 32 MiB of Pair (32 bytes each)
    std::vector<int64_t> chunk_begin;
    ExceptionCollector errors;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    const int n_chunks = int(std::min<int64_t>(n, std::max(1, n_threads)));
    chunks.resize(n_chunks);
    for (PairBuffer& c : chunks) c.clear();
    chunk_begin.resize(n_chunks + 1);
    for (int c = 0; c <= n_chunks; ++c) chunk_begin[c] = n * c / n_chunks;
    if (s.pbc[0] && s.pbc[1] && s.pbc[2]) {  // room for the expected pairs: no regrowth
        const double per_atom = double(n) / cells.vol * 4.18879020478639 * cutoff2 * cutoff;
        for (int c = 0; c < n_chunks; ++c)
            chunks[c].reserve(
                size_t(std::min(1e8, 1.15 * per_atom * double(chunk_begin[c + 1] - chunk_begin[c]) + 64)));
    }

#pragma omp parallel for schedule(static, 1) if (n_chunks > 1)
    for (int c = 0; c < n_chunks; ++c) {
        errors.run([&] {
            for (int64_t i = chunk_begin[c]; i < chunk_begin[c + 1]; ++i) {
                const size_t before = chunks[c].size();
                search_center(cells, s.pbc, i, cutoff, sorted, chunks[c]);
                nl.offsets[i + 1] = int64_t(chunks[c].size() - before);
            }
        });
    }
    errors.rethrow();
    std::partial_sum(nl.offsets.begin(), nl.offsets.end(), nl.offsets.begin());
    const int64_t n_pairs = nl.offsets[n];
    nl.neighbor.resize(n_pairs);
    nl.shift.resize(3 * n_pairs);
    nl.vector.resize(3 * n_pairs);
    nl.distance.resize(n_pairs);

    // per center, through restrict pointers (the output arrays cannot alias the positions
    // or the pairs: without that the compiler reloads every input after every store)
    const double* const pos = s.positions;
    const double* const cell = s.cell;
    int64_t* __restrict const out_j = nl.neighbor.data();
    int32_t* __restrict const out_s = nl.shift.data();
    double* __restrict const out_v = nl.vector.data();
    double* __restrict const out_d = nl.distance.data();
#pragma omp parallel for schedule(static, 1) if (n_chunks > 1)
    for (int c = 0; c < n_chunks; ++c) {
        const Pair* __restrict pr = chunks[c].data();
        for (int64_t i = chunk_begin[c]; i < chunk_begin[c + 1]; ++i) {
            const double ri0 = pos[3 * i], ri1 = pos[3 * i + 1], ri2 = pos[3 * i + 2];
            for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p, ++pr) {
                const double* rj = pos + 3 * pr->j;
                const double s0 = pr->s[0], s1 = pr->s[1], s2 = pr->s[2];
                const double v0 = rj[0] - ri0 + s0 * cell[0] + s1 * cell[3] + s2 * cell[6];
                const double v1 = rj[1] - ri1 + s0 * cell[1] + s1 * cell[4] + s2 * cell[7];
                const double v2 = rj[2] - ri2 + s0 * cell[2] + s1 * cell[5] + s2 * cell[8];
                out_j[p] = pr->j;
                out_s[3 * p] = pr->s[0], out_s[3 * p + 1] = pr->s[1], out_s[3 * p + 2] = pr->s[2];
                out_v[3 * p] = v0, out_v[3 * p + 1] = v1, out_v[3 * p + 2] = v2;
                out_d[p] = std::sqrt(v0 * v0 + v1 * v1 + v2 * v2);
            }
        }
        if (chunks[c].capacity() > kKeptPairs) PairBuffer().swap(chunks[c]);
    }
}

}  // namespace alip
