// Hyperparameters, TD(lambda) updates with RMSProp, and the rows of an LSTM unit's own
// traces (learners.td, learners.lstm_column), shared by every learner of the kernel.

#pragma once

#include <cmath>
#include <cstddef>

#include "fastmath.h"

namespace {

// -- hyperparameters and TD ----------------------------------------------------------------

struct HP {
  float alpha, lambda, gamma, beta2, eps, norm_rate, norm_floor;
  float nu_init, readout_per_feature;  // the update rule (learners.td.rms_start, readout_alpha)
  int32_t steps_per_stage;
  bool rmsprop;
};

// learners.td.td_update for one number; `rs` is rsqrt(corr).
inline float td_update(float param, float elig, float& nu, float rs, float delta, const HP& hp) {
  const float g = delta * elig;
  if (!hp.rmsprop) return param + hp.alpha * g;
  nu = hp.beta2 * nu + (1.0f - hp.beta2) * g * g;
  return param + hp.alpha * g / (std::sqrt(nu) * rs + hp.eps);
}

inline void update_stats(float x, float& mean, float& var, const HP& hp) {
  const float r = 1.0f - hp.norm_rate;
  mean = r * mean + hp.norm_rate * x;
  const float d = x - mean;
  var = std::max(r * var + hp.norm_rate * d * d, hp.norm_floor);
}

// The TD update of `n` contiguous parameters with their eligibilities of step t-1
// (learners.td.td_update); one flat loop, so that it vectorises across rows.
template <bool kRms>
void td_block_impl(size_t n, float* __restrict W, const float* __restrict E,
                   float* __restrict NU, float delta, float rs, const HP& hp) {
  const float alpha = hp.alpha, beta2 = hp.beta2, eps = hp.eps, one_b = 1.0f - hp.beta2;
  for (size_t j = 0; j < n; ++j) {
    const float g = delta * E[j];
    if (kRms) {
      const float nu = beta2 * NU[j] + one_b * g * g;
      NU[j] = nu;
      W[j] = W[j] + alpha * g / (std::sqrt(nu) * rs + eps);
    } else {
      W[j] = W[j] + alpha * g;
    }
  }
}

inline void td_block(size_t n, float* W, const float* E, float* NU, float delta, float rs,
                     const HP& hp) {
  if (hp.rmsprop) td_block_impl<true>(n, W, E, NU, delta, rs, hp);
  else td_block_impl<false>(n, W, E, NU, delta, rs, hp);
}

// sum_j a[j] b[j] over n (a multiple of 8) numbers, in 8 lanes.
inline float dot(const float* a, const float* b, int n) {
  v8 acc = {};
  for (int j = 0; j < n; j += 8) acc += load8(a + j) * load8(b + j);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// One row of a learning column's traces (lstm_column.own_trace_step) and the new
// eligibilities, E <- decay E + wc TH.
inline void trace_row(int n, float* __restrict TH, float* __restrict TC, float* __restrict E,
                      const float* __restrict zeta, float f, float A, float B, float oc,
                      float e_c, float e_h, float wc, float decay) {
  for (int j = 0; j < n; ++j) {
    const float tcn = f * TC[j] + A * TH[j] + e_c * zeta[j];
    const float thn = oc * tcn + B * TH[j] + e_h * zeta[j];
    E[j] = decay * E[j] + wc * thn;
    TC[j] = tcn;
    TH[j] = thn;
  }
}

// One LSTM unit's own-trace coefficients (learners.lstm_column.own_trace_step) from its gates
// i, f, o, g, tanh(c_t) and c_{t-1}, and u, the derivatives of its four gate pre-activations
// in its own h_{t-1}: the one place the kernel differentiates an LSTM cell for RTRL (the
// staged columns and SnAp-1 both ask it).
struct OwnTrace {
  float A, B, oc;
  float ec[4], eh[4];
};

inline OwnTrace own_trace(float i, float f, float o, float g, float tch, float cp,
                          const float* u) {
  const float di = i * (1 - i), df = f * (1 - f), dout = o * (1 - o), dg = 1 - g * g;
  return {cp * df * u[1] + g * di * u[0] + i * dg * u[3],
          tch * dout * u[2],
          o * (1 - tch * tch),
          {g * di, cp * df, 0.0f, i * dg},
          {0.0f, 0.0f, tch * dout, 0.0f}};
}

}  // namespace
