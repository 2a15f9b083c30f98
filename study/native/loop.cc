// The online-prediction run loop of study/engine/loop.py, one block of steps per call, for the CPU.
//
// One call advances every stream of a batch by B steps: the animal-learning task
// (study/tasks/animal.py, from the uniforms its `uniforms` drew), the learner (the staged
// LSTM-column network of learners/staged.py, T-BPTT on the dense LSTM of learners/tbptt.py, or
// SnAp-1 on the dense LSTM of learners/dense.py) and the streaming MSRE
// (study/tasks/metrics.py). The JAX code stays the reference, and the
// path on every other device: this file computes the same numbers in the same order of
// operations where it can, and tests/test_native.py holds the two together.
//
// Arguments, all batched with the same leading dimensions (jax.ffi's "broadcast_all"):
//   0 key u32 [2], the task's random key        1 hp f32: the HParams fields of kHpFloat
//   2 hp i32: those of kHpInt                     3 task f32: kTaskFloat's AnimalParams fields
//   4 task i32: kTaskInt's AnimalParams fields    5 candidates f32 [n, n_cs] (half_patterns)
//   6.. the carry's leaves: t, the task state's (kTaskState), obs, cumulant, the learner's
//       (kStagedFields, kTbpttFields or kSnap1Fields; attribute `learner_leaves` says how
//       many), the MSRE's (kMsreFields)
// Every group is bound by its fields' names: the lists below name them in the order the
// arguments carry them, ccn_layout() hands the lists to Python, which passes each field by
// name in that order and refuses a state whose fields are not these (study/native), and the
// code below reads each by name (FIELD), so a list reordered here or a NamedTuple reordered
// there changes nothing, and a field renamed on one side fails with both sides' names.
// Attribute `steps`: the block's length; `kind`: 0 staged, 1 T-BPTT, 2 SnAp-1. The task's uniforms are drawn here, bit for bit those
// of Animal.uniforms (JAX's threefry2x32), and only the ones a step reads.
// Results: the carry's leaves in the same order, then the block's sq_sum, count, nonfinite,
// ret_sum, ret_sq_sum.
//
// A second handler, ccn_uniforms, returns Animal.uniforms(key, t0, n) for the tests.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kCarryStart = 6;  // first carry leaf among the arguments

// What the kernel reads, by the names of the Python fields it comes from.
constexpr const char* kHpFloat[] = {"alpha", "lambda_", "gamma", "beta2", "eps", "norm_rate",
                                    "norm_floor", "nu_init", "readout_per_feature"};  // HParams
constexpr const char* kHpInt[] = {"steps_per_stage"};
// AnimalParams: the floats, then distractor_probs' d numbers
constexpr const char* kTaskFloat[] = {"p_pattern", "noise", "distractor_probs"};
constexpr const char* kTaskInt[] = {"isi_lo", "isi_hi", "iti_lo", "iti_hi", "cs_len", "us_len",
                                    "distractor_len"};  // AnimalParams
constexpr const char* kTaskState[] = {"tau", "isi", "trial_len", "us", "cs", "distractor_left",
                                      "distractor_pattern", "patterns"};  // AnimalState
constexpr const char* kMsreFields[] = {"pending", "valid", "powers", "pending_zero"};  // MsreState
constexpr const char* kStagedFields[] = {  // learners.staged.StagedState
    "theta", "h", "c", "w", "b", "trace_h", "trace_c", "elig_theta", "elig_w", "elig_b",
    "nu_theta", "nu_w", "nu_b", "corr_theta", "corr_out", "obs_mean", "obs_var", "feat_mean",
    "feat_var", "v_prev", "t", "stage"};
constexpr const char* kTbpttFields[] = {  // learners.tbptt.TbpttState
    "theta", "h", "c", "w", "b", "buf_zeta", "buf_gates", "buf_c", "buf_c_prev", "elig_theta",
    "elig_w", "elig_b", "nu_theta", "nu_w", "nu_b", "corr", "obs_mean", "obs_var", "feat_mean",
    "feat_var", "v_prev", "t"};
constexpr const char* kSnap1Fields[] = {  // learners.dense.DenseState
    "theta", "h", "c", "w", "b", "trace_h", "trace_c", "elig_theta", "elig_w", "elig_b",
    "nu_theta", "nu_w", "nu_b", "corr", "obs_mean", "obs_var", "feat_mean", "feat_var",
    "v_prev"};
constexpr int kTaskLeaves = static_cast<int>(std::size(kTaskState));
constexpr int kMsreLeaves = static_cast<int>(std::size(kMsreFields));
constexpr int kStagedLeaves = static_cast<int>(std::size(kStagedFields));
constexpr int kTbpttLeaves = static_cast<int>(std::size(kTbpttFields));
constexpr int kSnap1Leaves = static_cast<int>(std::size(kSnap1Fields));

constexpr bool same_name(const char* a, const char* b) {
  while (*a != 0 && *a == *b) ++a, ++b;
  return *a == *b;
}
// The position of `name` in `names`; a name not in the list does not compile (FIELD).
template <size_t N>
constexpr int index_of(const char* const (&names)[N], const char* name) {
  for (size_t i = 0; i < N; ++i)
    if (same_name(names[i], name)) return static_cast<int>(i);
  throw "a field the kernel's list does not name";
}
#define FIELD(names, name) std::integral_constant<int, index_of(names, name)>::value

// The fields every LSTM learner's state has (weights, eligibilities, RMSProp's moments, the
// running statistics, v_{t-1}), each bound by its name in the kind's list `Names`; `leaf(i)`
// is the i-th learner leaf of the call.
template <const auto& Names, typename G, typename Leaf>
void bind_lstm(G& g, Leaf leaf) {
#define B(field) g.field = leaf(FIELD(Names, #field))
  B(theta), B(h), B(c), B(w), B(b), B(elig_theta), B(elig_w), B(elig_b);
  B(nu_theta), B(nu_w), B(nu_b), B(obs_mean), B(obs_var), B(feat_mean), B(feat_var);
  B(v_prev);
#undef B
}

inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// exp, tanh and the logistic function without a library call, for one number or 8 lanes at
// once (T = float or v8: the same operations either way), within a few float32 ulps of the
// exact values, as XLA's own. exp: x = n ln 2 + r with |r| <= ln 2 / 2, e^r by its degree-6
// Taylor polynomial, 2^n by the exponent bits. No branch: adding and subtracting 1.5 * 2^23
// rounds to the nearest integer, ties to even, as nearbyint does in the default rounding mode.
template <typename T>
inline T clampf(T x, float lo, float hi) {
  const T l = T{} + lo, h = T{} + hi;
  x = x < l ? l : x;
  return x > h ? h : x;
}

inline float pow2(float n) {
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return scale;
}

inline v8 pow2(v8 n) { return reinterpret_cast<v8>((__builtin_convertvector(n, v8i) + 127) << 23); }

template <typename T>
inline T fast_exp(T x) {
  x = clampf(x, -87.0f, 88.0f);
  constexpr float kRound = 12582912.0f;
  const T n = (x * 1.44269504088896341f + kRound) - kRound;
  const T r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  T p = T{} + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * pow2(n);
}

template <typename T>
inline T sigmoid(T x) {
  return 1.0f / (1.0f + fast_exp(-x));
}

// tanh as Eigen's (and XLA's) rational approximation x P(x^2) / Q(x^2) on |x| <= 7.9.
template <typename T>
inline T fast_tanh(T x) {
  x = clampf(x, -7.90531110763549805f, 7.90531110763549805f);
  const T x2 = x * x;
  T p = T{} + -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  T q = T{} + 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

inline v8 load8(const float* a) {
  v8 x;
  std::memcpy(&x, a, sizeof x);
  return x;
}

inline void store8(float* a, v8 x) { std::memcpy(a, &x, sizeof x); }

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

// -- the staged LSTM-column network (columnar, constructive, CCN) ----------------------

struct Staged {
  // K2 numbers per gate row (inputs, own recurrent weight, bias); rows are R = K2 rounded up
  // to 8 apart in the kernel's working copies (load/store), so that every row loop runs in
  // whole vectors.
  int m, N, P, S, K, K2, R;
  // state (learners.staged.StagedState, in its field order)
  float *theta, *h, *c, *w, *b, *trace_h, *trace_c, *elig_theta, *elig_w, *elig_b, *nu_theta,
      *nu_w, *nu_b, *corr_theta, *corr_out, *obs_mean, *obs_var, *feat_mean, *feat_var, *v_prev;
  int32_t *t, *stage_p;
  // scratch
  std::vector<float> z, h_new, c_new, h_hat, inv2, gi, gf, go, gg, tc, u_pre;
  std::vector<float> scratch_nu, pre, z_in, c_prev, c_out, h_out;
  int P8;  // P rounded up to 8
  // the padded working copies of theta and the learning stage's traces, eligibilities and
  // RMSProp averages, and where the carry keeps them
  std::vector<float> theta_w, trace_h_w, trace_c_w, elig_theta_w, nu_theta_w;
  float *theta_c, *trace_h_c, *trace_c_c, *elig_theta_c, *nu_theta_c;

  // Point at the working copies, filled from the carry's arrays (rows K2 apart).
  void load() {
    theta_c = theta, trace_h_c = trace_h, trace_c_c = trace_c, elig_theta_c = elig_theta;
    nu_theta_c = nu_theta;
    copy_rows(theta_c, theta_w.data(), N * 4, K2, R);
    copy_rows(trace_h_c, trace_h_w.data(), P * 4, K2, R);
    copy_rows(trace_c_c, trace_c_w.data(), P * 4, K2, R);
    copy_rows(elig_theta_c, elig_theta_w.data(), P * 4, K2, R);
    copy_rows(nu_theta_c, nu_theta_w.data(), P * 4, K2, R);
    theta = theta_w.data(), trace_h = trace_h_w.data(), trace_c = trace_c_w.data();
    elig_theta = elig_theta_w.data(), nu_theta = nu_theta_w.data();
  }

  // Write the working copies back into the carry.
  void store() {
    copy_rows(theta, theta_c, N * 4, R, K2);
    copy_rows(trace_h, trace_h_c, P * 4, R, K2);
    copy_rows(trace_c, trace_c_c, P * 4, R, K2);
    copy_rows(elig_theta, elig_theta_c, P * 4, R, K2);
    copy_rows(nu_theta, nu_theta_c, P * 4, R, K2);
  }

  void copy_rows(const float* from, float* to, int rows, int from_stride, int to_stride) {
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < K2; ++j) to[r * to_stride + j] = from[r * from_stride + j];
  }

  void size(int m_, int N_, int P_) {
    m = m_, N = N_, P = P_, S = N / P, K = m + N - P, K2 = K + 2, R = (K2 + 7) / 8 * 8;
    z.resize(K), h_new.resize(N), c_new.resize(N);
    theta_w.assign(static_cast<size_t>(N) * 4 * R, 0.0f);
    for (auto* v : {&trace_h_w, &trace_c_w, &elig_theta_w, &nu_theta_w})
      v->assign(static_cast<size_t>(P) * 4 * R, 0.0f);
    P8 = (P + 7) / 8 * 8;
    h_hat.resize(N), u_pre.resize(4 * P), pre.assign(4 * P8, 0.0f), z_in.assign(R, 0.0f);
    c_prev.assign(P8, 0.0f), c_out.resize(P8), h_out.resize(P8), inv2.resize(N);
    gi.resize(P8), gf.resize(P8), go.resize(P8), gg.resize(P8), tc.resize(P8);
  }

  float step(const float* x, float c_t, const HP& hp) {
    const bool single = S == 1;
    const int stage = single ? 0 : std::min(*t / hp.steps_per_stage, S - 1);
    const int old_stage = *stage_p;
    const bool keep = single || stage == old_stage;
    // (short copies are loops, not library calls: -fno-tree-loop-distribute-patterns)
    for (int j = 0; j < m; ++j) z[j] = (x[j] - obs_mean[j]) * rsqrt(obs_var[j]);

    // Forward pass of the active stages; stage s reads the features of stages < s.
    const int active = (stage + 1) * P;
    for (int s = 0; s <= stage; ++s) {
      const int width = m + s * P;
      // A gate row's whole pre-activation as one dot product in vectors of 8: the row
      // (inputs, own recurrent weight, bias, padding) with (z, h_n, 1, zeros).
      const float* th = theta + static_cast<size_t>(s) * P * 4 * R;
      float* __restrict zin = z_in.data();
      for (int j = 0; j < width; ++j) zin[j] = z[j];
      for (int j = width; j < R; ++j) zin[j] = 0.0f;
      zin[K + 1] = 1.0f;
      for (int p = 0; p < P; ++p) {
        zin[K] = h[s * P + p];
        for (int g = 0; g < 4; ++g) pre[g * P8 + p] = dot(th + (p * 4 + g) * R, zin, R);
      }
      // the gates of all the stage's columns at once, 8 at a time (the scratch is P8 long)
      for (int p = 0; p < P; ++p) c_prev[p] = c[s * P + p];
      for (int p = 0; p < P; p += 8) {
        const float* a = pre.data() + p;
        const v8 i = sigmoid(load8(a)), f = sigmoid(load8(a + P8));
        const v8 o = sigmoid(load8(a + 2 * P8)), g = fast_tanh(load8(a + 3 * P8));
        const v8 cell = f * load8(c_prev.data() + p) + i * g;
        const v8 tch = fast_tanh(cell);
        store8(c_out.data() + p, cell);
        store8(h_out.data() + p, o * tch);
        store8(gi.data() + p, i), store8(gf.data() + p, f), store8(go.data() + p, o);
        store8(gg.data() + p, g), store8(tc.data() + p, tch);
      }
      const float* cn = c_out.data();
      const float* hn = h_out.data();
      for (int p = 0; p < P; ++p) c_new[s * P + p] = cn[p], h_new[s * P + p] = hn[p];
      if (s < S - 1)  // the features later stages read, by the statistics before step t
        for (int p = 0; p < P; ++p) {
          const int n = s * P + p;
          z[m + n] = (h_new[n] - feat_mean[n]) * rsqrt(feat_var[n]);
        }
    }
    for (int n = active; n < N; ++n) h_new[n] = 0.0f, c_new[n] = 0.0f;

    // Running statistics: the observation's, and the learning stage's features'.
    for (int j = 0; j < m; ++j) update_stats(x[j], obs_mean[j], obs_var[j], hp);
    const int first = stage * P;
    for (int n = first; n < first + P; ++n) update_stats(h_new[n], feat_mean[n], feat_var[n], hp);
    for (int n = 0; n < N; ++n) {
      inv2[n] = rsqrt(feat_var[n]);
      h_hat[n] = n < active ? (h_new[n] - feat_mean[n]) * inv2[n] : 0.0f;
    }
    float v = 0.0f;
    for (int n = 0; n < N; ++n) v += w[n] * h_hat[n];
    v += *b;

    // TD(lambda): delta_{t-1} with the eligibilities of step t-1.
    const float delta = c_t + hp.gamma * v - *v_prev;
    const float decay = hp.gamma * hp.lambda;
    const float co = hp.beta2 * *corr_out + (1.0f - hp.beta2);
    const float ct = hp.beta2 * *corr_theta + (1.0f - hp.beta2);
    const float rso = rsqrt(co), rst = rsqrt(ct);
    float w_cur[64];
    std::vector<float> w_big;
    float* wc = w_cur;
    if (P > 64) w_big.resize(P), wc = w_big.data();
    for (int p = 0; p < P; ++p) wc[p] = w[first + p] * inv2[first + p];
    HP hp_out = hp;  // the readout's step size: alpha / n^readout_per_feature, n read at t-1
    if (hp.readout_per_feature != 0.0f)
      hp_out.alpha = hp.alpha * std::pow(static_cast<float>((old_stage + 1) * P),
                                         -hp.readout_per_feature);
    for (int n = 0; n < N; ++n) {
      w[n] = td_update(w[n], elig_w[n], nu_w[n], rso, delta, hp_out);
      elig_w[n] = decay * elig_w[n] + h_hat[n];
    }
    *b = td_update(*b, *elig_b, *nu_b, rso, delta, hp_out);
    *elig_b = decay * *elig_b + 1.0f;
    *corr_out = co;

    const size_t stage_size = static_cast<size_t>(P) * 4 * R;
    // The stage that learned at t-1 takes its update; u (each column's own recurrent
    // weights) is read for the traces before it.
    float* th_stage = theta + stage * stage_size;
    for (int p = 0; p < P; ++p)
      for (int gate = 0; gate < 4; ++gate) u_pre[p * 4 + gate] = th_stage[(p * 4 + gate) * R + K];
    if (keep) {
      td_block(stage_size, theta + old_stage * stage_size, elig_theta, nu_theta, delta, rst, hp);
      *corr_theta = ct;
    } else {  // the stage that learned at t-1 takes its last update; a new one starts afresh
      std::vector<float>& nu_last = scratch_nu;
      nu_last.assign(nu_theta, nu_theta + stage_size);
      td_block(stage_size, theta + old_stage * stage_size, elig_theta, nu_last.data(), delta,
               rst, hp);
      std::fill(trace_h, trace_h + stage_size, 0.0f);
      std::fill(trace_c, trace_c + stage_size, 0.0f);
      std::fill(elig_theta, elig_theta + stage_size, 0.0f);
      std::fill(nu_theta, nu_theta + stage_size, hp.nu_init);
      *corr_theta = hp.nu_init > 0.0f ? 1.0f : 0.0f;
    }

    // Traces of the learning stage (learners.lstm_column.own_trace_step, from the pre-update
    // u) and its new eligibilities. A row runs over all R numbers: past the stage's inputs
    // zeta, traces and eligibilities are all zero and stay zero, exactly. zeta is the forward
    // pass's input row of the learning stage (the last it built), own h set per column.
    float* zeta = z_in.data();
    for (int p = 0; p < P; ++p) {
      const int n = first + p;
      const float* u = u_pre.data() + p * 4;
      const float i = gi[p], f = gf[p], o = go[p], g = gg[p], tch = tc[p], cp = c[n];
      const float di = i * (1 - i), df = f * (1 - f), dout = o * (1 - o), dg = 1 - g * g;
      const float A = cp * df * u[1] + g * di * u[0] + i * dg * u[3];
      const float B = tch * dout * u[2];
      const float oc = o * (1 - tch * tch);
      const float ec[4] = {g * di, cp * df, 0.0f, i * dg};
      const float eh[4] = {0.0f, 0.0f, tch * dout, 0.0f};
      zeta[K] = h[n];
      for (int gate = 0; gate < 4; ++gate) {
        const size_t row = (static_cast<size_t>(p) * 4 + gate) * R;
        trace_row(R, trace_h + row, trace_c + row, elig_theta + row, zeta, f, A, B, oc,
                  ec[gate], eh[gate], wc[p], decay);
      }
    }

    for (int n = 0; n < N; ++n) h[n] = h_new[n], c[n] = c_new[n];
    *v_prev = v;
    *t += 1;
    *stage_p = stage;
    return v;
  }
};

// The dense LSTM's input row at step t (learners.dense.dense_forward): the observation
// normalised by the statistics before t (which then take x), every unit's h_{t-1}, and 1.
inline void dense_input(float* zeta, const float* x, float* obs_mean, float* obs_var,
                        const float* h, int m, int H, const HP& hp) {
  for (int j = 0; j < m; ++j) zeta[j] = (x[j] - obs_mean[j]) * rsqrt(obs_var[j]);
  for (int j = 0; j < m; ++j) update_stats(x[j], obs_mean[j], obs_var[j], hp);
  for (int n = 0; n < H; ++n) zeta[m + n] = h[n];
  zeta[m + H] = 1.0f;
}

// Unit n's four gate pre-activations theta[n, gate] . zeta (rows of J numbers).
inline void dense_preact(const float* theta, const float* zeta, int n, int J, float pre[4]) {
  for (int g = 0; g < 4; ++g) {
    const float* row = theta + (static_cast<size_t>(n) * 4 + g) * J;
    float acc = 0.0f;
    for (int j = 0; j < J; ++j) acc += row[j] * zeta[j];
    pre[g] = acc;
  }
}

// -- T-BPTT on the dense LSTM ----------------------------------------------------------------

struct Tbptt {
  int m, H, k, J;
  float *theta, *h, *c, *w, *b, *buf_zeta, *buf_gates, *buf_c, *buf_c_prev, *elig_theta, *elig_w,
      *elig_b, *nu_theta, *nu_w, *nu_b, *corr, *obs_mean, *obs_var, *feat_mean, *feat_var, *v_prev;
  int32_t* t;
  std::vector<float> zeta, a, h_hat, grad, dh, dc, das, tanh_ring;
  std::vector<int> slots;

  void size(int m_, int H_, int k_) {
    m = m_, H = H_, k = k_, J = m + H + 1;
    zeta.resize(J), a.resize(4 * H), h_hat.resize(H), grad.resize(H * 4 * J);
    dh.resize(H), dc.resize(H), das.resize(k * 4 * H), slots.resize(k);
    tanh_ring.resize(k * H);
  }

  // tanh of the cached cells, kept beside the window for this call (not part of the state).
  void start_block() {
    for (int s = 0; s < k * H; ++s) tanh_ring[s] = fast_tanh(buf_c[s]);
  }

  float step(const float* x, float c_t, const HP& hp) {
    const int32_t now = *t;
    const int slot = now % k;
    dense_input(zeta.data(), x, obs_mean, obs_var, h, m, H, hp);
    float* gates = buf_gates + static_cast<size_t>(slot) * 4 * H;  // [4, H]: i f o g
    for (int n = 0; n < H; ++n) {
      float pre[4];
      dense_preact(theta, zeta.data(), n, J, pre);
      const float i = sigmoid(pre[0]), f = sigmoid(pre[1]), o = sigmoid(pre[2]);
      const float g = fast_tanh(pre[3]);
      const float cn = f * c[n] + i * g;
      const float tch = fast_tanh(cn);
      gates[0 * H + n] = i, gates[1 * H + n] = f, gates[2 * H + n] = o, gates[3 * H + n] = g;
      buf_c_prev[slot * H + n] = c[n];
      buf_c[slot * H + n] = cn;
      tanh_ring[slot * H + n] = tch;
      c[n] = cn;
      h[n] = o * tch;
    }
    float* zslot = buf_zeta + static_cast<size_t>(slot) * J;
    for (int j = 0; j < J; ++j) zslot[j] = zeta[j];
    for (int n = 0; n < H; ++n) update_stats(h[n], feat_mean[n], feat_var[n], hp);
    float v = 0.0f;
    for (int n = 0; n < H; ++n) {
      const float inv = rsqrt(feat_var[n]);
      h_hat[n] = (h[n] - feat_mean[n]) * inv;
      dh[n] = w[n] * inv;  // the backward pass starts from the readout (pre-update w)
      v += w[n] * h_hat[n];
    }
    v += *b;

    // d v_t / d theta through the last min(k, t+1) steps (learners.tbptt.truncated_grad):
    // first the pre-activation gradients of every step back (a short sequential chain through
    // U), then d theta = sum over those steps of da (x) zeta, accumulated a row at a time.
    std::fill(dc.begin(), dc.end(), 0.0f);
    const int depth = static_cast<int>(std::min<int64_t>(k, static_cast<int64_t>(now) + 1));
    for (int back = 0; back < depth; ++back) {
      const int s = ((now - back) % k + k) % k;
      slots[back] = s;
      const float* gs = buf_gates + static_cast<size_t>(s) * 4 * H;
      float* da = das.data() + static_cast<size_t>(back) * 4 * H;  // [n * 4 + gate]
      for (int n = 0; n < H; ++n) {
        const float i = gs[n], f = gs[H + n], o = gs[2 * H + n], g = gs[3 * H + n];
        const float tch = tanh_ring[s * H + n], cp = buf_c_prev[s * H + n];
        const float dcn = dc[n] + dh[n] * o * (1 - tch * tch);
        da[n * 4 + 0] = dcn * g * i * (1 - i);
        da[n * 4 + 1] = dcn * cp * f * (1 - f);
        da[n * 4 + 2] = dh[n] * tch * o * (1 - o);
        da[n * 4 + 3] = dcn * i * (1 - g * g);
        dc[n] = dcn * f;
      }
      if (back + 1 == depth) break;
      std::fill(dh.begin(), dh.end(), 0.0f);
      for (int r = 0; r < 4 * H; ++r) {
        const float* U = theta + static_cast<size_t>(r) * J + m;
        const float d = da[r];
        for (int l = 0; l < H; ++l) dh[l] += d * U[l];
      }
    }
    for (int r = 0; r < 4 * H; ++r) {
      float* __restrict gr = grad.data() + static_cast<size_t>(r) * J;
      std::fill(gr, gr + J, 0.0f);
      for (int back = 0; back < depth; ++back) {
        const float d = das[static_cast<size_t>(back) * 4 * H + r];
        const float* __restrict zs = buf_zeta + static_cast<size_t>(slots[back]) * J;
        for (int j = 0; j < J; ++j) gr[j] += d * zs[j];
      }
    }

    // TD(lambda) (learners.td.td_lambda).
    const float delta = c_t + hp.gamma * v - *v_prev;
    const float decay = hp.gamma * hp.lambda;
    const float co = hp.beta2 * *corr + (1.0f - hp.beta2);
    const float rs = rsqrt(co);
    const size_t n_theta = static_cast<size_t>(H) * 4 * J;
    td_block(n_theta, theta, elig_theta, nu_theta, delta, rs, hp);
    for (size_t j = 0; j < n_theta; ++j) elig_theta[j] = decay * elig_theta[j] + grad[j];
    for (int n = 0; n < H; ++n) {
      w[n] = td_update(w[n], elig_w[n], nu_w[n], rs, delta, hp);
      elig_w[n] = decay * elig_w[n] + h_hat[n];
    }
    *b = td_update(*b, *elig_b, *nu_b, rs, delta, hp);
    *elig_b = decay * *elig_b + 1.0f;
    *corr = co;
    *v_prev = v;
    *t = now + 1;
    return v;
  }
};

// -- SnAp-1 on the dense LSTM (learners.dense.snap1) ------------------------------------------

struct Snap1 {
  int m, H, J;
  float *theta, *h, *c, *w, *b, *trace_h, *trace_c, *elig_theta, *elig_w, *elig_b, *nu_theta,
      *nu_w, *nu_b, *corr, *obs_mean, *obs_var, *feat_mean, *feat_var, *v_prev;
  std::vector<float> zeta, h_hat, seed, gates, c_prev, u_pre;

  void size(int m_, int H_) {
    m = m_, H = H_, J = m + H + 1;
    zeta.resize(J), h_hat.resize(H), seed.resize(H), gates.resize(5 * H), c_prev.resize(H);
    u_pre.resize(4 * H);
  }

  float step(const float* x, float c_t, const HP& hp) {
    // learners.dense.dense_forward: the observation normalised by the statistics before t,
    // the features by those that include it.
    dense_input(zeta.data(), x, obs_mean, obs_var, h, m, H, hp);
    for (int n = 0; n < H; ++n) {
      float pre[4];
      dense_preact(theta, zeta.data(), n, J, pre);
      for (int g = 0; g < 4; ++g)  // the unit's own recurrent weights, before the update
        u_pre[n * 4 + g] = theta[(static_cast<size_t>(n) * 4 + g) * J + m + n];
      const float i = sigmoid(pre[0]), f = sigmoid(pre[1]), o = sigmoid(pre[2]);
      const float g = fast_tanh(pre[3]);
      const float cn = f * c[n] + i * g;
      const float tch = fast_tanh(cn);
      float* gs = gates.data() + 5 * n;
      gs[0] = i, gs[1] = f, gs[2] = o, gs[3] = g, gs[4] = tch;
      c_prev[n] = c[n];
      c[n] = cn;
      h[n] = o * tch;
    }
    for (int n = 0; n < H; ++n) update_stats(h[n], feat_mean[n], feat_var[n], hp);
    float v = 0.0f;
    for (int n = 0; n < H; ++n) {
      const float inv = rsqrt(feat_var[n]);
      h_hat[n] = (h[n] - feat_mean[n]) * inv;
      seed[n] = w[n] * inv;  // d v / d h_n, from the readout before its update
      v += w[n] * h_hat[n];
    }
    v += *b;

    // TD(lambda) (learners.td.td_lambda): delta_{t-1} with the eligibilities of step t-1.
    const float delta = c_t + hp.gamma * v - *v_prev;
    const float decay = hp.gamma * hp.lambda;
    const float co = hp.beta2 * *corr + (1.0f - hp.beta2);
    const float rs = rsqrt(co);
    td_block(static_cast<size_t>(H) * 4 * J, theta, elig_theta, nu_theta, delta, rs, hp);
    for (int n = 0; n < H; ++n) {
      w[n] = td_update(w[n], elig_w[n], nu_w[n], rs, delta, hp);
      elig_w[n] = decay * elig_w[n] + h_hat[n];
    }
    *b = td_update(*b, *elig_b, *nu_b, rs, delta, hp);
    *elig_b = decay * *elig_b + 1.0f;
    *corr = co;

    // SnAp-1 traces (learners.lstm_column.own_trace_step): each unit's own rows, through its
    // own (h, c) and its own recurrent weight; every row multiplies the same zeta.
    for (int n = 0; n < H; ++n) {
      const float* u = u_pre.data() + n * 4;
      const float* gs = gates.data() + 5 * n;
      const float i = gs[0], f = gs[1], o = gs[2], g = gs[3], tch = gs[4], cp = c_prev[n];
      const float di = i * (1 - i), df = f * (1 - f), dout = o * (1 - o), dg = 1 - g * g;
      const float A = cp * df * u[1] + g * di * u[0] + i * dg * u[3];
      const float B = tch * dout * u[2];
      const float oc = o * (1 - tch * tch);
      const float ec[4] = {g * di, cp * df, 0.0f, i * dg};
      const float eh[4] = {0.0f, 0.0f, tch * dout, 0.0f};
      for (int gate = 0; gate < 4; ++gate) {
        const size_t row = (static_cast<size_t>(n) * 4 + gate) * J;
        trace_row(J, trace_h + row, trace_c + row, elig_theta + row, zeta.data(), f, A, B, oc,
                  ec[gate], eh[gate], seed[n], decay);
      }
    }
    *v_prev = v;
    return v;
  }
};

// -- the streaming MSRE as a ring buffer ---------------------------------------------------

struct Msre {
  int H = 0, head = 0;  // logical slot k lives at ring[(head + k) % H]
  std::vector<float> pending, zero, powers;
  std::vector<char> valid;

  void load(const float* p, const bool* v, const float* pw, const float* z, int H_) {
    H = H_, head = 0;
    pending.assign(p, p + H), zero.assign(z, z + H), powers.assign(pw, pw + H);
    valid.assign(v, v + H);
  }

  void store(float* p, bool* v, float* z) const {
    for (int q = 0; q < H; ++q) {
      const int r = (head + q) % H;
      p[q] = pending[r], z[q] = zero[r], v[q] = valid[r];
    }
  }

  // metrics.msre_update: take c_s, then v_s; returns whether an error was scored.
  bool update(float v_s, float c_s, float& sq, float& ret) {
    if (c_s != 0.0f) {  // pending -= powers * c_s (a no-op, exactly, when c_s is 0)
      const int tail = H - head;
      for (int q = 0; q < tail; ++q) {
        pending[head + q] -= powers[q] * c_s;
        zero[head + q] -= powers[q] * c_s;
      }
      for (int q = tail; q < H; ++q) {
        pending[q - tail] -= powers[q] * c_s;
        zero[q - tail] -= powers[q] * c_s;
      }
    }
    const int last = (head + H - 1) % H;
    const bool counted = valid[last];
    const float err = pending[last];
    sq = counted ? err * err : 0.0f;
    ret = counted ? -zero[last] : 0.0f;
    head = last;  // the oldest slot becomes the newest
    pending[head] = v_s, zero[head] = 0.0f, valid[head] = 1;
    return counted;
  }
};

// -- the FFI handler ---------------------------------------------------------------------------

template <typename T>
T* at(ffi::AnyBuffer buf, size_t stream, size_t batch) {
  const size_t per = buf.element_count() / batch;
  return reinterpret_cast<T*>(buf.untyped_data()) + stream * per;
}

ffi::Error RunBlock(ffi::RemainingArgs args, ffi::RemainingRets rets, int64_t kind, int64_t m,
                    int64_t n_features, int64_t per_stage, int64_t truncation, int64_t rmsprop,
                    int64_t n_cs, int64_t n_d, int64_t rule, int64_t per_trial, int64_t steps,
                    int64_t learner_leaves) {
  const int64_t expected[3] = {kStagedLeaves, kTbpttLeaves, kSnap1Leaves};
  if (kind < 0 || kind > 2 || learner_leaves != expected[kind])
    return ffi::Error::InvalidArgument("ccn_run_block: the learner state's leaves do not match "
                                       "its kind");
  const int n_learner = static_cast<int>(learner_leaves);
  const int n_carry = 1 + kTaskLeaves + 2 + n_learner + kMsreLeaves;
  if (static_cast<int>(args.size()) != kCarryStart + n_carry ||
      static_cast<int>(rets.size()) != n_carry + 5)
    return ffi::Error::InvalidArgument("ccn_run_block: wrong number of arguments or results");
  std::vector<ffi::AnyBuffer> in, out;
  for (size_t i = 0; i < args.size(); ++i) {
    auto a = args.get<ffi::AnyBuffer>(i);
    if (!a.has_value()) return a.error();
    in.push_back(*a);
  }
  for (size_t i = 0; i < rets.size(); ++i) {
    auto r = rets.get<ffi::AnyBuffer>(i);
    if (!r.has_value()) return r.error();
    out.push_back(**r);
  }
  // The carry's results start as its arguments (the same buffers when XLA aliased them).
  for (int i = 0; i < n_carry; ++i) {
    const ffi::AnyBuffer& src = in[kCarryStart + i];
    if (src.untyped_data() != out[i].untyped_data())
      std::memcpy(out[i].untyped_data(), src.untyped_data(), src.size_bytes());
  }
  const size_t batch = in[kCarryStart].element_count();  // t is one number per stream
  const int B = static_cast<int>(steps);
  std::vector<float> u_scratch(5 + n_cs + 2 * n_d);

  Staged staged;
  Tbptt tbptt;
  Snap1 snap1;
  if (kind == 0) staged.size(m, n_features, per_stage);
  else if (kind == 1) tbptt.size(m, n_features, truncation);
  else snap1.size(m, n_features);
  Msre msre;
  const int L = 1 + kTaskLeaves + 2;  // first learner leaf among the carry's results

  for (size_t s = 0; s < batch; ++s) {
    const uint32_t* key = at<uint32_t>(in[0], s, batch);
    Uniforms rng{key[0], key[1]};
    rng.U = static_cast<int>(5 + n_cs + 2 * n_d);
    const float* hpf = at<float>(in[1], s, batch);
#define HPF(name) hpf[FIELD(kHpFloat, #name)]
    HP hp{HPF(alpha), HPF(lambda_), HPF(gamma), HPF(beta2), HPF(eps), HPF(norm_rate),
          HPF(norm_floor), HPF(nu_init), HPF(readout_per_feature),
          at<int32_t>(in[2], s, batch)[FIELD(kHpInt, "steps_per_stage")], rmsprop != 0};
#undef HPF
    const float* tf = at<float>(in[3], s, batch);
    const int32_t* ti = at<int32_t>(in[4], s, batch);
    static_assert(FIELD(kTaskFloat, "distractor_probs") + 1 == std::size(kTaskFloat),
                  "distractor_probs' numbers come last");
#define TI(name) ti[FIELD(kTaskInt, #name)]
#define TS(type, name) at<type>(out[1 + FIELD(kTaskState, #name)], s, batch)
    Task task{static_cast<int>(n_cs), static_cast<int>(n_d), 0,
              static_cast<int>(in[5].element_count() / batch / std::max<int64_t>(n_cs, 1)),
              static_cast<int>(rule), static_cast<int>(per_trial),
              TI(isi_lo), TI(isi_hi), TI(iti_lo), TI(iti_hi), TI(cs_len), TI(us_len),
              TI(distractor_len), tf[FIELD(kTaskFloat, "p_pattern")],
              tf[FIELD(kTaskFloat, "noise")], tf + FIELD(kTaskFloat, "distractor_probs"),
              at<float>(in[5], s, batch),
              TS(int32_t, tau), TS(int32_t, isi), TS(int32_t, trial_len), TS(bool, us),
              TS(float, cs), TS(int32_t, distractor_left), TS(float, distractor_pattern),
              TS(float, patterns)};
    task.n_rows = static_cast<int>(out[1 + FIELD(kTaskState, "patterns")].element_count() /
                                   batch / n_cs);
#undef TI
#undef TS
    task.u = u_scratch.data();
    int32_t* t = at<int32_t>(out[0], s, batch);
    float* obs = at<float>(out[9], s, batch);
    float* cumulant = at<float>(out[10], s, batch);
    auto f = [&](int leaf) { return at<float>(out[L + leaf], s, batch); };
    // g.FIELD = the learner leaf of that name in the kind's list
#define BIND(names, field) g.field = f(FIELD(names, #field))
    if (kind == 0) {
      Staged& g = staged;
      bind_lstm<kStagedFields>(g, f);
      BIND(kStagedFields, trace_h), BIND(kStagedFields, trace_c);
      BIND(kStagedFields, corr_theta), BIND(kStagedFields, corr_out);
      g.t = at<int32_t>(out[L + FIELD(kStagedFields, "t")], s, batch);
      g.stage_p = at<int32_t>(out[L + FIELD(kStagedFields, "stage")], s, batch);
      g.load();
    } else if (kind == 2) {
      Snap1& g = snap1;
      bind_lstm<kSnap1Fields>(g, f);
      BIND(kSnap1Fields, trace_h), BIND(kSnap1Fields, trace_c), BIND(kSnap1Fields, corr);
    } else {
      Tbptt& g = tbptt;
      bind_lstm<kTbpttFields>(g, f);
      BIND(kTbpttFields, buf_zeta), BIND(kTbpttFields, buf_gates), BIND(kTbpttFields, buf_c);
      BIND(kTbpttFields, buf_c_prev), BIND(kTbpttFields, corr);
      g.t = at<int32_t>(out[L + FIELD(kTbpttFields, "t")], s, batch);
      g.start_block();
    }
#undef BIND
    const int M = L + n_learner;  // first MSRE leaf
    auto ms = [&](int field) { return M + field; };
    const int H = static_cast<int>(out[ms(FIELD(kMsreFields, "pending"))].element_count() /
                                   batch);
    float* pending = at<float>(out[ms(FIELD(kMsreFields, "pending"))], s, batch);
    bool* valid = at<bool>(out[ms(FIELD(kMsreFields, "valid"))], s, batch);
    float* zero = at<float>(out[ms(FIELD(kMsreFields, "pending_zero"))], s, batch);
    msre.load(pending, valid, at<float>(out[ms(FIELD(kMsreFields, "powers"))], s, batch), zero,
              H);

    double sq_sum = 0.0, ret_sum = 0.0, ret_sq_sum = 0.0;
    int32_t count = 0;
    bool nonfinite = false;
    for (int step = 0; step < B; ++step) {
      const float c_t = *cumulant;
      const float v = kind == 0   ? staged.step(obs, c_t, hp)
                      : kind == 1 ? tbptt.step(obs, c_t, hp)
                                  : snap1.step(obs, c_t, hp);
      nonfinite = nonfinite || !std::isfinite(v);
      float sq, ret;
      if (msre.update(v, c_t, sq, ret)) {
        ++count;
        sq_sum += sq, ret_sum += ret, ret_sq_sum += static_cast<double>(ret) * ret;
      }
      *cumulant = task_step(task, rng, *t, obs);
      *t += 1;
    }
    msre.store(pending, valid, zero);
    if (kind == 0) staged.store();
    const int R = n_carry;
    *at<float>(out[R], s, batch) = static_cast<float>(sq_sum);
    *at<int32_t>(out[R + 1], s, batch) = count;
    *at<bool>(out[R + 2], s, batch) = nonfinite;
    *at<float>(out[R + 3], s, batch) = static_cast<float>(ret_sum);
    *at<float>(out[R + 4], s, batch) = static_cast<float>(ret_sq_sum);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ccn_run_block, RunBlock,
                              ffi::Ffi::Bind()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<int64_t>("kind")
                                  .Attr<int64_t>("m")
                                  .Attr<int64_t>("n_features")
                                  .Attr<int64_t>("per_stage")
                                  .Attr<int64_t>("truncation")
                                  .Attr<int64_t>("rmsprop")
                                  .Attr<int64_t>("n_cs")
                                  .Attr<int64_t>("n_d")
                                  .Attr<int64_t>("rule")
                                  .Attr<int64_t>("per_trial")
                                  .Attr<int64_t>("steps")
                                  .Attr<int64_t>("learner_leaves"));

namespace {

// Animal.uniforms(key, t0, n) of every stream: key u32 [2], t0 i32 [] -> [n, U] f32.
ffi::Error UniformsBlock(ffi::Buffer<ffi::U32> key, ffi::Buffer<ffi::S32> t0,
                    ffi::ResultBuffer<ffi::F32> out) {
  const auto dims = out->dimensions();
  const int U = static_cast<int>(dims[dims.size() - 1]);
  const int n = static_cast<int>(dims[dims.size() - 2]);
  const size_t batch = t0.element_count();
  for (size_t s = 0; s < batch; ++s) {
    Uniforms rng{key.typed_data()[2 * s], key.typed_data()[2 * s + 1]};
    rng.U = U;
    float* u = out->typed_data() + s * static_cast<size_t>(n) * U;
    for (int i = 0; i < n; ++i) rng.draw(t0.typed_data()[s] + i, 0, U, u + i * U);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ccn_uniforms, UniformsBlock,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// The field lists above as text, one group a line ("staged: theta h c ..."), for Python to
// bind its arguments by name (study/native/__init__.py, layout).
extern "C" const char* ccn_layout() {
  static const std::string text = [] {
    std::string out;
    auto line = [&out](const char* group, const auto& names) {
      out += group;
      out += ":";
      for (const char* n : names) out += std::string(" ") + n;
      out += "\n";
    };
    line("hp_float", kHpFloat), line("hp_int", kHpInt), line("task_float", kTaskFloat);
    line("task_int", kTaskInt), line("task_state", kTaskState), line("msre", kMsreFields);
    line("staged", kStagedFields), line("tbptt", kTbpttFields), line("snap1", kSnap1Fields);
    return out;
  }();
  return text.c_str();
}
