// The animal-learning task of study/tasks/animal.py and its random numbers, bit for bit.

#pragma once

#include <cmath>
#include <cstdint>

#include "fastmath.h"

namespace {

// -- the task's random numbers (jax.random, threefry2x32, "partitionable" bits) -------------

constexpr int kUniformChunk = 100;  // study.tasks.animal.UNIFORM_CHUNK

inline uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

// threefry2x32 of the counter (x0, x1) under the key (k0, k1): 20 rounds, as jax's
// _threefry2x32_lowering.
inline void threefry(uint32_t k0, uint32_t k1, uint32_t x0, uint32_t x1, uint32_t& y0,
                     uint32_t& y1) {
  const uint32_t k2 = k0 ^ k1 ^ 0x1BD11BDAu;
  const uint32_t ks[3] = {k0, k1, k2};
  static constexpr int kRot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  x0 += k0, x1 += k1;
  for (int i = 0; i < 5; ++i) {
    for (int r = 0; r < 4; ++r) {
      x0 += x1;
      x1 = rotl(x1, kRot[i & 1][r]);
      x1 ^= x0;
    }
    x0 += ks[(i + 1) % 3];
    x1 += ks[(i + 2) % 3] + static_cast<uint32_t>(i + 1);
  }
  y0 = x0, y1 = x1;
}

// The uniforms of one stream: step t reads row t % 100 of
// uniform(fold_in(key, t // 100), (100, U)) (Animal.uniforms). fold_in(key, c) is threefry
// of the counter (0, c); element i of a uniform draw is threefry of (0, i) under the chunk's
// key, its two words xor-ed, the top 23 bits made the mantissa of a float in [1, 2), minus 1.
struct Uniforms {
  uint32_t k0, k1;    // the stream's key
  int chunk = -1;     // the chunk whose key is cached
  uint32_t c0, c1;    // its key
  int U;

  // u[0 .. n) = the numbers j0 .. j0 + n - 1 of step t's row.
  void draw(int32_t t, int j0, int n, float* __restrict u) {
    const int c = t / kUniformChunk;
    if (c != chunk) threefry(k0, k1, 0u, static_cast<uint32_t>(c), c0, c1), chunk = c;
    const uint32_t base = static_cast<uint32_t>((t % kUniformChunk) * U + j0);
    const uint32_t a = c0, b = c1;
    for (int j = 0; j < n; ++j) {
      uint32_t y0, y1;
      threefry(a, b, 0u, base + static_cast<uint32_t>(j), y0, y1);
      const uint32_t bits = ((y0 ^ y1) >> 9) | 0x3F800000u;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      u[j] = f - 1.0f;
    }
  }
};

// -- the task ----------------------------------------------------------------------------

struct Task {
  int n_cs, n_d, n_rows, n_cand, rule, per_trial;  // rule: 0 conditioning 1 patterning 2 half
  int isi_lo, isi_hi, iti_lo, iti_hi, cs_len, us_len, d_len;
  float p_pattern, noise;
  const float* probs;
  const float* cand;
  // state
  int32_t *tau, *isi, *trial_len;
  bool* us;
  float* cs;
  int32_t* left;
  float* dpat;
  const float* patterns;
  float* u;  // scratch: a step's uniforms, 5 + n_cs + 2 n_d
};

inline int pick(float x, int lo, int n) {
  int k = static_cast<int>(std::floor(x * static_cast<float>(n)));
  return lo + std::clamp(k, 0, n - 1);
}

void observe(const Task& k, float* obs) {
  const int tau = *k.tau;
  const bool us_on = *k.us && tau >= *k.isi && tau < *k.isi + k.us_len;
  const float cs_on = tau < k.cs_len ? 1.0f : 0.0f;
  obs[0] = us_on ? 1.0f : 0.0f;
  for (int j = 0; j < k.n_cs; ++j) obs[1 + j] = k.cs[j] * cs_on;
  float* dist = obs + 1 + k.n_cs;
  if (k.per_trial) {
    const float on = tau < k.d_len ? 1.0f : 0.0f;
    for (int j = 0; j < k.n_d; ++j) dist[j] = k.dpat[j] * on;
  } else {
    for (int j = 0; j < k.n_d; ++j) dist[j] = k.left[j] > 0 ? 1.0f : 0.0f;
  }
}

// Animal.step_u on step t's uniforms: returns the cumulant (the US bit) and writes the
// observation. A new trial's numbers are drawn only when one starts.
float task_step(Task& k, Uniforms& rng, int32_t t, float* obs) {
  const int tau = *k.tau + 1;
  const int n_trial = 5 + k.n_cs + k.n_d;
  float* u = k.u;
  if (tau >= *k.trial_len) {
    rng.draw(t, 0, n_trial, u);
    const int isi = pick(u[0], k.isi_lo, k.isi_hi - k.isi_lo + 1);
    const int iti = pick(u[1], k.iti_lo, k.iti_hi - k.iti_lo + 1);
    if (k.rule == 0) {
      for (int j = 0; j < k.n_cs; ++j) k.cs[j] = 1.0f;
    } else if (k.rule == 2) {
      const float* row = k.cand + pick(u[2], 0, k.n_cand) * k.n_cs;
      for (int j = 0; j < k.n_cs; ++j) k.cs[j] = row[j];
    } else if (u[3] < k.p_pattern) {
      const float* row = k.patterns + pick(u[2], 0, k.n_rows) * k.n_cs;
      for (int j = 0; j < k.n_cs; ++j) k.cs[j] = row[j];
    } else {
      for (int j = 0; j < k.n_cs; ++j) k.cs[j] = u[5 + j] < 0.5f ? 1.0f : 0.0f;
    }
    bool positive = false;
    for (int r = 0; r < k.n_rows && !positive; ++r) {
      bool same = true;
      for (int j = 0; j < k.n_cs; ++j) same = same && k.cs[j] == k.patterns[r * k.n_cs + j];
      positive = same;
    }
    *k.us = positive != (u[4] < k.noise);
    for (int j = 0; j < k.n_d; ++j) k.dpat[j] = u[5 + k.n_cs + j] < 0.5f ? 1.0f : 0.0f;
    *k.tau = 0;
    *k.isi = isi;
    *k.trial_len = isi + iti;
  } else {
    *k.tau = tau;
  }
  float* us = u + n_trial;
  rng.draw(t, n_trial, k.n_d, us);
  for (int j = 0; j < k.n_d; ++j)
    k.left[j] = k.left[j] > 0 ? k.left[j] - 1 : (us[j] < k.probs[j] ? k.d_len : 0);
  observe(k, obs);
  return obs[0];
}

}  // namespace
