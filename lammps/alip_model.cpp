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
    try {
        activation_ = alip::parse_mlp_activation(act);
    } catch (const std::exception&) {
        t.fail("unknown activation '" + act + "'");
    }
    t.expect("layers");
    const long n_layers = t.count("the number of layers", 100);
    if (n_layers < 1) t.fail("at least one layer is required");
    for (long l = 0; l <= n_layers; ++l) sizes_.push_back(int64_t(t.count("a layer size", 1024)));
    if (sizes_.front() != F || sizes_.back() != 1) t.fail("layer sizes must start with n_features and end with 1");
    const int64_t K = n_members_;
    weights_.assign(size_t(ns), std::vector<std::vector<double>>(size_t(n_layers)));
    biases_.assign(size_t(ns), std::vector<std::vector<double>>(size_t(n_layers)));
    for (long s = 0; s < ns; ++s)
        for (long l = 0; l < n_layers; ++l) {
            weights_[size_t(s)][size_t(l)].resize(size_t(K * sizes_[size_t(l)] * sizes_[size_t(l) + 1]));
            biases_[size_t(s)][size_t(l)].resize(size_t(K * sizes_[size_t(l) + 1]));
        }
    std::vector<double> layer;
    for (int k = 0; k < n_members_; ++k)
        for (long s = 0; s < ns; ++s) {
            t.expect("network");
            const long kk = t.integer("a member index"), ss = t.integer("a species index");
            if (kk != k || ss != s)
                t.fail("expected network " + std::to_string(k) + " " + std::to_string(s) + ", found network " +
                       std::to_string(kk) + " " + std::to_string(ss));
            for (long l = 0; l < n_layers; ++l) {  // member k's block of the stacked layer
                const size_t nw = size_t(sizes_[size_t(l)] * sizes_[size_t(l) + 1]), nb = size_t(sizes_[size_t(l) + 1]);
                t.numbers(layer, nw, "weights");
                std::copy(layer.begin(), layer.end(), weights_[size_t(s)][size_t(l)].begin() + k * nw);
                t.numbers(layer, nb, "biases");
                std::copy(layer.begin(), layer.end(), biases_[size_t(s)][size_t(l)].begin() + k * nb);
            }
        }
    for (long s = 0; s < ns; ++s) {
        weight_ptrs_.emplace_back(), bias_ptrs_.emplace_back();
        for (long l = 0; l < n_layers; ++l) {
            weight_ptrs_.back().push_back(weights_[size_t(s)][size_t(l)].data());
            bias_ptrs_.back().push_back(biases_[size_t(s)][size_t(l)].data());
        }
    }
    t.expect("end");
}

void Model::evaluate(const double* G, const int32_t* species, int64_t n, double* energies, double* dE_dG,
                     bool parallel) const {
    const int S = int(symbols_.size());
    const int64_t F = n_features(), K = n_members_, L = int64_t(sizes_.size()) - 1;
    std::vector<std::vector<int64_t>> by_species(static_cast<size_t>(S));
    for (int64_t a = 0; a < n; ++a) {
        if (species[a] < 0 || species[a] >= S) throw std::runtime_error("species index out of range");
        by_species[size_t(species[a])].push_back(a);
    }
    std::vector<double> x, out, grad;
    for (int s = 0; s < S; ++s) {
        const std::vector<int64_t>& atoms = by_species[size_t(s)];
        const int64_t m = int64_t(atoms.size());
        if (m == 0) continue;
        const double* sh = &shift_[size_t(s * F)];
        const double* is = &inv_scale_[size_t(s * F)];
        x.resize(size_t(m * F)), out.resize(size_t(K * m)), grad.resize(size_t(K * m * F));
        for (int64_t a = 0; a < m; ++a)
            for (int64_t f = 0; f < F; ++f) x[size_t(a * F + f)] = (G[atoms[size_t(a)] * F + f] - sh[f]) * is[f];
        const std::vector<const double*>& w = weight_ptrs_[size_t(s)];
        const std::vector<const double*>& b = bias_ptrs_[size_t(s)];
        if (L >= 2) {
            alip::StackedMlp<double> net;
            net.n_members = K, net.n_layers = L, net.sizes = sizes_.data();
            net.weights = w.data(), net.biases = b.data(), net.activation = activation_;
            alip::mlp_value_and_input_gradient(net, x.data(), m, false, out.data(), grad.data(), parallel);
        } else {  // no hidden layer: a linear model, its gradient the weights
            for (int64_t k = 0; k < K; ++k)
                for (int64_t a = 0; a < m; ++a) {
                    double e = b[0][k];
                    for (int64_t f = 0; f < F; ++f) {
                        e += x[size_t(a * F + f)] * w[0][k * F + f];
                        grad[size_t((k * m + a) * F + f)] = w[0][k * F + f];
                    }
                    out[size_t(k * m + a)] = e;
                }
        }
        for (int64_t k = 0; k < K; ++k)
            for (int64_t a = 0; a < m; ++a) {
                const int64_t i = atoms[size_t(a)];
                energies[k * n + i] = energy_ref_[size_t(s)] + energy_scale_ * out[size_t(k * m + a)];
                const double* g = &grad[size_t((k * m + a) * F)];
                double* d = dE_dG + (k * n + i) * F;
                for (int64_t f = 0; f < F; ++f) d[f] = energy_scale_ * g[f] * is[f];
            }
    }
}

}  // namespace alip_lammps
