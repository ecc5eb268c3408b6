#pragma once
// Reference flows: numerical solutions of dtheta/dt = f(theta) on flat
// parameter vectors, for the trajectory-deviation estimator (paper Eq. 4,
// appendix H.5).
//
// Flows of an objective F with gradient g and Hessian H (objective.hpp):
//   gradient flow   f(theta) = -g(theta)
//   modified flow   f(theta) = -g(theta) - (eta/2) H(theta) g(theta)
//                            = -grad (F + (eta/4) ||g||^2)
// The modified flow is Barrett & Dherin's: one GD step theta' = theta - eta g
// follows it to O(eta^3) per step, where it leaves the gradient flow at
// O(eta^2) per step (see trajectory.hpp for the expansion).
//
// Integrators over [0, T] with k equal substeps h = T/k:
//   rk4    classical fourth-order Runge-Kutta: global error O(h^4)
//          (halving h divides it by ~16; tests/training/flow_test.cpp checks
//          this against the exact linear-regression flow
//          theta(t) = theta* + exp(-2 S t)(theta_0 - theta*)).
//   euler  explicit Euler, kept for comparison only: over T = eta its
//          displacement is -eta g + (eta^2/2)(1 - 1/k) H g + O(eta^3), so as a
//          reference for one GD step it builds the very term being estimated
//          into the reference: lambda-hat ~ (1 - 1/k) eta p / 4 instead of
//          eta p / 4 (k = 1 is GD itself: lambda-hat = 0).
// The state integrated is the displacement d(t) = theta(t) - theta_0 (theta =
// theta_0 + d at every stage), so the small displacement is accumulated
// directly instead of as a difference of two large vectors.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "training/objective.hpp"

namespace gradmatch::training {

enum class Integrator { rk4, euler };
/// "rk4" or "euler"; InputError otherwise.
Integrator parse_integrator(std::string_view text);
std::string to_string(Integrator integrator);

/// A vector field f(theta) = dtheta/dt on flat parameter vectors.
using VectorField = std::function<at::Tensor(const at::Tensor& theta)>;

/// phi_T(theta0) - theta0 for the flow of `field`, integrated with `substeps`
/// steps of h = duration / substeps. `field_at_start`, when defined, is
/// f(theta0) already computed (it saves the first stage's evaluation).
/// InputError for substeps < 1 or a negative or non-finite duration.
at::Tensor flow_displacement(const VectorField& field, const at::Tensor& theta0, double duration,
                             std::int64_t substeps, Integrator integrator = Integrator::rk4,
                             const at::Tensor& field_at_start = {});

/// The fields of an objective (see the top). Each evaluation sets the point
/// into `scope`'s model: the caller keeps one ParameterScope for a whole
/// integration, and the model is restored when the scope ends. The objective
/// and scope must outlive the field.
VectorField gradient_flow_field(const Objective& objective, ParameterScope& scope);
VectorField modified_flow_field(const Objective& objective, ParameterScope& scope, double eta);

/// Convenience: the gradient flow (eta_modified == 0) or the modified flow
/// with step eta_modified (> 0) of `objective` from theta0 over `duration`.
at::Tensor objective_flow_displacement(const Objective& objective, const at::Tensor& theta0, double duration,
                                       std::int64_t substeps, Integrator integrator = Integrator::rk4,
                                       double eta_modified = 0.0);

}  // namespace gradmatch::training
