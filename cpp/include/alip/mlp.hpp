// The committee's networks in one pass: K stacked MLPs n_in → hidden… → 1 (the members of a
// committee, weights with a leading member axis), their outputs and input gradients dE/dG
// (the force path's right-hand side) and the vector–Jacobian product of both in the weights
// and biases (a training step's backward, second derivatives of the activation included).
// What the Python reference alip.models.input_gradient computes with about fifty PyTorch
// operations per layer and step, each a pass over (K, n, width) in memory, here per atom in
// cache, the hidden quantities recomputed in the backward instead of stored.
#pragma once

#include <cstdint>
#include <string>

namespace alip {

/// The activations of alip's networks (smooth: forces need C¹, a force loss C²). Softplus
/// is PyTorch's (linear above 20), CELU has α = 1.
enum class MlpActivation : int { tanh = 0, silu = 1, softplus = 2, celu = 3 };

/// The activation called `name` ("tanh", "silu", "softplus", "celu", as alip's networks and
/// model files name them); InvalidInput for any other name.
MlpActivation parse_mlp_activation(const std::string& name);

/// K stacked MLPs, borrowed: layer l maps sizes[l] → sizes[l + 1] with weights[l] (K,
/// sizes[l], sizes[l + 1]) and biases[l] (K, sizes[l + 1]), the activation after every layer
/// but the last; n_layers >= 2 (at least one hidden layer) and sizes[n_layers] == 1.
template <class T>
struct StackedMlp {
    int64_t n_members = 0, n_layers = 0;
    const int64_t* sizes = nullptr;  // n_layers + 1
    const T* const* weights = nullptr;
    const T* const* biases = nullptr;
    MlpActivation activation = MlpActivation::silu;
};

/// out (K, n) and grad (K, n, sizes[0]) = d out / d x of every member on x, which is (n,
/// sizes[0]) shared by the members or, with x_per_member, (K, n, sizes[0]).
void mlp_value_and_input_gradient(const StackedMlp<float>& net, const float* x, int64_t n, bool x_per_member,
                                  float* out, float* grad, bool parallel = true);
void mlp_value_and_input_gradient(const StackedMlp<double>& net, const double* x, int64_t n, bool x_per_member,
                                  double* out, double* grad, bool parallel = true);

/// The VJP of mlp_value_and_input_gradient in the weights and biases: grad_weights[l] (K,
/// sizes[l], sizes[l + 1]) and grad_biases[l] (K, sizes[l + 1]) are overwritten with
/// Σ g_out · d out / dθ + Σ g_grad · d grad / dθ; g_out (K, n) or g_grad (K, n, sizes[0]) may
/// be null (that output unused).
void mlp_value_and_input_gradient_vjp(const StackedMlp<float>& net, const float* x, int64_t n, bool x_per_member,
                                      const float* g_out, const float* g_grad, float* const* grad_weights,
                                      float* const* grad_biases, bool parallel = true);
void mlp_value_and_input_gradient_vjp(const StackedMlp<double>& net, const double* x, int64_t n, bool x_per_member,
                                      const double* g_out, const double* g_grad, double* const* grad_weights,
                                      double* const* grad_biases, bool parallel = true);

}  // namespace alip
