#include "alip_model.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace alip_lammps {

namespace {

/// Whitespace-separated tokens of the file, '#' comment lines skipped.
class Tokens {
public:
    explicit Tokens(const std::string& path) : path_(path) {
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot open model file " + path);
        std::string line;
        while (std::getline(in, line)) {
            const size_t first = line.find_first_not_of(" \t\r");
            if (first == std::string::npos || line[first] == '#') continue;
            std::istringstream words(line);
            std::string w;
            while (words >> w) items_.push_back(w);
        }
    }
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("model file " + path_ + ": " + what);
    }
    std::string next(const std::string& what) {
        if (pos_ >= items_.size()) fail("file ends where " + what + " was expected");
        return items_[pos_++];
    }
    void expect(const std::string& keyword) {
        const std::string got = next("'" + keyword + "'");
        if (got != keyword) fail("expected '" + keyword + "', found '" + got + "'");
    }
    long integer(const std::string& what) {
        const std::string t = next(what);
        char* end = nullptr;
        const long v = std::strtol(t.c_str(), &end, 10);
        if (end == t.c_str() || *end != '\0') fail(what + " must be an integer, found '" + t + "'");
        return v;
    }
    long count(const std::string& what, long max = 1000000) {
        const long v = integer(what);
        if (v < 0 || v > max) fail(what + " out of range: " + std::to_string(v));
        return v;
    }
    double number(const std::string& what) {
        const std::string t = next(what);
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (end == t.c_str() || *end != '\0' || !std::isfinite(v))
            fail(what + " must be a finite number, found '" + t + "'");
        return v;
    }
    void numbers(std::vector<double>& out, size_t n, const std::string& what) {
        out.resize(n);
        for (size_t k = 0; k < n; ++k) out[k] = number(what);
    }

private:
    std::string path_;
    std::vector<std::string> items_;
    size_t pos_ = 0;
};

constexpr int64_t kBlock = 32;  // atoms per MLP block

}  // namespace

Model::Model(const std::string& path) {
    Tokens t(path);
    const std::string magic = t.next("the magic word");
    if (magic != kModelMagic)
        t.fail("not an alip LAMMPS model file (starts with '" + magic + "', expected '" + kModelMagic + "')");
    const long version = t.integer("the format version");
    if (version < 1 || version > kModelVersion)
        t.fail("format version " + std::to_string(version) + " is not supported (this plugin reads versions 1 to " +
               std::to_string(kModelVersion) + "; re-export with the matching alip)");
    t.expect("units");
    const std::string units = t.next("the units");
    if (units != "metal") t.fail("units '" + units + "' are not supported (only metal)");
    t.expect("species");
    const long ns = t.count("the number of species", 118);
    if (ns < 1) t.fail("at least one species is required");
    for (long s = 0; s < ns; ++s) {
        symbols_.push_back(t.next("a species symbol"));
        t.count("an atomic number", 118);
        energy_ref_.push_back(t.number("an energy reference"));
    }
    t.expect("energy_scale");
    energy_scale_ = t.number("energy_scale");
    alip::AcsfSpec spec;
    spec.n_species = int32_t(ns);
    t.expect("cutoff");
    spec.cutoff = t.number("the cutoff");
    t.expect("cutoff_function");
    const std::string fc = t.next("the cutoff function");
    if (fc == "cosine")
        spec.cutoff_function = alip::CutoffFunction::Cosine;
    else if (fc == "polynomial")
        spec.cutoff_function = alip::CutoffFunction::Polynomial;
    else
        t.fail("unknown cutoff function '" + fc + "'");
    t.expect("g2");
    for (long n = t.count("the number of g2 functions"), k = 0; k < n; ++k) {
        const double eta = t.number("g2 eta");
        spec.g2.push_back({eta, t.number("g2 rs")});
    }
    for (const char* name : {"g4", "g5"}) {
        t.expect(name);
        auto& params = std::string(name) == "g4" ? spec.g4 : spec.g5;
        for (long n = t.count(std::string("the number of ") + name + " functions"), k = 0; k < n; ++k) {
            const double eta = t.number(std::string(name) + " eta");
            const double zeta = t.number(std::string(name) + " zeta");
            const double lambda = t.number(std::string(name) + " lambda");
            const double rs = version >= 2 ? t.number(std::string(name) + " rs") : 0.0;   // version 1: no shift
            const double rs2 = version >= 3 ? t.number(std::string(name) + " rs2") : rs;  // before 3: one window
            if (version >= 3 && rs2 < 0)  // alip::Acsf would read it as rs; before 3 the core checks rs
                t.fail(std::string(name) + " rs2 must be >= 0");
            params.push_back({eta, zeta, lambda, rs, rs2});
        }
    }
    try {
        acsf_ = std::make_unique<alip::Acsf>(spec);
    } catch (const std::exception& e) {
        t.fail(std::string("invalid descriptor spec: ") + e.what());
    }
    const int64_t F = acsf_->n_features();
    t.expect("n_features");
    if (t.integer("n_features") != F)
        t.fail("n_features does not match the descriptor spec (" + std::to_string(F) + ")");
    t.expect("feature_shift");
    t.numbers(shift_, size_t(ns * F), "feature_shift");
    t.expect("feature_scale");
    t.numbers(inv_scale_, size_t(ns * F), "feature_scale");
    for (double& v : inv_scale_) {
        if (v == 0.0) t.fail("feature_scale has a zero entry");
        v = 1.0 / v;
    }
    t.expect("members");
    n_members_ = int(t.count("the number of members", 10000));
    if (n_members_ < 1) t.fail("at least one member is required");
    t.expect("activation");
    const std::string act = t.next("the activation");
    if (act == "tanh")
        activation_ = Activation::Tanh;
    else if (act == "silu")
        activation_ = Activation::Silu;
    else if (act == "softplus")
        activation_ = Activation::Softplus;
    else if (act == "celu")
        activation_ = Activation::Celu;
    else
        t.fail("unknown activation '" + act + "'");
    t.expect("layers");
    const long n_layers = t.count("the number of layers", 100);
    if (n_layers < 1) t.fail("at least one layer is required");
    for (long l = 0; l <= n_layers; ++l) sizes_.push_back(int(t.count("a layer size", 1024)));
    if (sizes_.front() != F || sizes_.back() != 1) t.fail("layer sizes must start with n_features and end with 1");
    for (int k = 0; k < n_members_; ++k)
        for (long s = 0; s < ns; ++s) {
            t.expect("network");
            const long kk = t.integer("a member index"), ss = t.integer("a species index");
            if (kk != k || ss != s)
                t.fail("expected network " + std::to_string(k) + " " + std::to_string(s) + ", found network " +
                       std::to_string(kk) + " " + std::to_string(ss));
            Mlp net;
            for (long l = 0; l < n_layers; ++l) {
                net.w.emplace_back();
                net.b.emplace_back();
                t.numbers(net.w.back(), size_t(sizes_[l]) * size_t(sizes_[l + 1]), "weights");
                t.numbers(net.b.back(), size_t(sizes_[l + 1]), "biases");
            }
            nets_.push_back(std::move(net));
        }
    t.expect("end");
}

void Model::evaluate_block(int s, const double* G, const int64_t* atoms, int64_t nb, int64_t n, double* energies,
                           double* dE_dG, std::vector<double>& work) const {
    const int64_t F = n_features();
    const int L = int(sizes_.size()) - 1;
    const int64_t wmax = *std::max_element(sizes_.begin(), sizes_.end());
    // work: x0 (kBlock, wmax), per layer outputs and activation derivatives, two backward buffers
    work.resize(size_t(kBlock * wmax) * size_t(2 * L + 3));
    double* x0 = work.data();
    const double* sh = &shift_[size_t(s * F)];
    const double* is = &inv_scale_[size_t(s * F)];
    for (int64_t a = 0; a < nb; ++a) {
        const double* g = G + atoms[a] * F;
        for (int64_t f = 0; f < F; ++f) x0[a * wmax + f] = (g[f] - sh[f]) * is[f];
    }
    double* acts = x0 + kBlock * wmax;        // (L, kBlock, wmax) layer outputs
    double* ders = acts + L * kBlock * wmax;  // (L, kBlock, wmax) activation derivatives
    double* gb = ders + L * kBlock * wmax;    // (kBlock, wmax) backward
    double* gn = gb + kBlock * wmax;
    for (int k = 0; k < n_members_; ++k) {
        const Mlp& net = nets_[size_t(k) * symbols_.size() + size_t(s)];
        const double* in = x0;
        for (int l = 0; l < L; ++l) {
            double* z = acts + l * kBlock * wmax;
            dense_forward(in, wmax, net.w[l].data(), net.b[l].data(), sizes_[l], sizes_[l + 1], nb, z, wmax);
            if (l < L - 1) activate(activation_, z, ders + l * kBlock * wmax, sizes_[l + 1], nb, wmax);
            in = z;
        }
        const double* out = acts + (L - 1) * kBlock * wmax;
        for (int64_t a = 0; a < nb; ++a)
            energies[k * n + atoms[a]] = energy_ref_[size_t(s)] + energy_scale_ * out[a * wmax];
        // backward: g = W_L[:, 0], then g <- (g * act'_l) @ W_l^T down to the input
        for (int64_t a = 0; a < nb; ++a)
            for (int i = 0; i < sizes_[L - 1]; ++i) gb[a * wmax + i] = net.w[L - 1][size_t(i)];
        for (int l = L - 2; l >= 0; --l) {
            dense_backward(gb, ders + l * kBlock * wmax, net.w[l].data(), sizes_[l], sizes_[l + 1], nb, gn, wmax);
            std::swap(gb, gn);
        }
        for (int64_t a = 0; a < nb; ++a) {
            double* d = dE_dG + (k * n + atoms[a]) * F;
            for (int64_t f = 0; f < F; ++f) d[f] = energy_scale_ * gb[a * wmax + f] * is[f];
        }
    }
}

void Model::evaluate(const double* G, const int32_t* species, int64_t n, double* energies, double* dE_dG,
                     bool parallel) const {
    const int S = int(symbols_.size());
    std::vector<std::vector<int64_t>> by_species(static_cast<size_t>(S));
    for (int64_t a = 0; a < n; ++a) {
        if (species[a] < 0 || species[a] >= S) throw std::runtime_error("species index out of range");
        by_species[size_t(species[a])].push_back(a);
    }
    struct Task {
        int s;
        int64_t first, count;
    };
    std::vector<Task> tasks;
    for (int s = 0; s < S; ++s)
        for (int64_t a = 0; a < int64_t(by_species[size_t(s)].size()); a += kBlock)
            tasks.push_back({s, a, std::min<int64_t>(kBlock, int64_t(by_species[size_t(s)].size()) - a)});
    const int64_t nt = int64_t(tasks.size());
#pragma omp parallel if (parallel && n >= 128)
    {
        std::vector<double> work;
#pragma omp for schedule(static)
        for (int64_t t = 0; t < nt; ++t) {
            const Task& task = tasks[size_t(t)];
            evaluate_block(task.s, G, by_species[size_t(task.s)].data() + task.first, task.count, n, energies, dE_dG,
                           work);
        }
    }
}

}  // namespace alip_lammps
