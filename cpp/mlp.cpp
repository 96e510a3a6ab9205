// mlp.hpp's entry points: validate, then run the selected kernel variant.
#include "include/alip/mlp.hpp"

#include <string>

#include "dispatch.hpp"
#include "structure.hpp"

namespace alip {
namespace {

/// InvalidInput unless the network and the buffers fit together.
template <class T>
void validate(const StackedMlp<T>& net, int64_t n, const void* x, const void* a, const void* b) {
    if (net.n_members < 1 || net.n_layers < 2 || net.sizes == nullptr || net.weights == nullptr ||
        net.biases == nullptr)
        throw InvalidInput("mlp: K >= 1 members and at least one hidden layer required");
    for (int64_t l = 0; l <= net.n_layers; ++l)
        if (net.sizes[l] < 1)
            throw InvalidInput("mlp: layer width " + std::to_string(net.sizes[l]) + " (must be >= 1)");
    if (net.sizes[net.n_layers] != 1)
        throw InvalidInput("mlp: the last layer must have one output, not " + std::to_string(net.sizes[net.n_layers]));
    for (int64_t l = 0; l < net.n_layers; ++l)
        if (net.weights[l] == nullptr || net.biases[l] == nullptr) throw InvalidInput("mlp: null weights or biases");
    const int act = static_cast<int>(net.activation);
    if (act < 0 || act > 3) throw InvalidInput("mlp: unknown activation " + std::to_string(act));
    if (n < 0) throw InvalidInput("mlp: n >= 0 required");
    if (n > 0 && (x == nullptr || a == nullptr || b == nullptr)) throw InvalidInput("mlp: null pointer");
}

/// validate, and InvalidInput unless every layer has its gradient buffers.
template <class T>
void validate_vjp(const StackedMlp<T>& net, int64_t n, const T* x, T* const* grad_weights, T* const* grad_biases) {
    validate(net, n, x, grad_weights, grad_biases);
    for (int64_t l = 0; l < net.n_layers; ++l)
        if (grad_weights[l] == nullptr || grad_biases[l] == nullptr) throw InvalidInput("mlp: null gradient buffer");
}

}  // namespace

MlpActivation parse_mlp_activation(const std::string& name) {
    if (name == "tanh") return MlpActivation::tanh;
    if (name == "silu") return MlpActivation::silu;
    if (name == "softplus") return MlpActivation::softplus;
    if (name == "celu") return MlpActivation::celu;
    throw InvalidInput("mlp: unknown activation " + name);
}

void mlp_value_and_input_gradient(const StackedMlp<float>& net, const float* x, int64_t n, bool x_per_member,
                                  float* out, float* grad, bool parallel) {
    validate(net, n, x, out, grad);
    kernels().mlp_f32(net, x, n, x_per_member, out, grad, parallel);
}

void mlp_value_and_input_gradient(const StackedMlp<double>& net, const double* x, int64_t n, bool x_per_member,
                                  double* out, double* grad, bool parallel) {
    validate(net, n, x, out, grad);
    kernels().mlp_f64(net, x, n, x_per_member, out, grad, parallel);
}

void mlp_value_and_input_gradient_vjp(const StackedMlp<float>& net, const float* x, int64_t n, bool x_per_member,
                                      const float* g_out, const float* g_grad, float* const* grad_weights,
                                      float* const* grad_biases, bool parallel) {
    validate_vjp(net, n, x, grad_weights, grad_biases);
    kernels().mlp_vjp_f32(net, x, n, x_per_member, g_out, g_grad, grad_weights, grad_biases, parallel);
}

void mlp_value_and_input_gradient_vjp(const StackedMlp<double>& net, const double* x, int64_t n, bool x_per_member,
                                      const double* g_out, const double* g_grad, double* const* grad_weights,
                                      double* const* grad_biases, bool parallel) {
    validate_vjp(net, n, x, grad_weights, grad_biases);
    kernels().mlp_vjp_f64(net, x, n, x_per_member, g_out, g_grad, grad_weights, grad_biases, parallel);
}

}  // namespace alip
