// The staged LSTM-column network (columnar, constructive, CCN) of learners/staged.py.

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fastmath.h"
#include "td.h"

namespace {

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

  // Copy `rows` rows of K2 numbers; a padded row's tail (to_stride > K2) is set to zero, so
  // that nothing of the previous stream's working copy survives into this one (a diverged
  // stream's update leaves NaN there: NaN times a zero eligibility is NaN).
  void copy_rows(const float* from, float* to, int rows, int from_stride, int to_stride) {
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < K2; ++j) to[r * to_stride + j] = from[r * from_stride + j];
      for (int j = K2; j < to_stride; ++j) to[r * to_stride + j] = 0.0f;
    }
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
      const OwnTrace d = own_trace(i, f, o, g, tch, cp, u);
      zeta[K] = h[n];
      for (int gate = 0; gate < 4; ++gate) {
        const size_t row = (static_cast<size_t>(p) * 4 + gate) * R;
        trace_row(R, trace_h + row, trace_c + row, elig_theta + row, zeta, f, d.A, d.B, d.oc,
                  d.ec[gate], d.eh[gate], wc[p], decay);
      }
    }

    for (int n = 0; n < N; ++n) h[n] = h_new[n], c[n] = c_new[n];
    *v_prev = v;
    *t += 1;
    *stage_p = stage;
    return v;
  }
};

}  // namespace
