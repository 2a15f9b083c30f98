// The dense LSTM of learners/dense.py under T-BPTT (learners/tbptt.py) and SnAp-1.

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fastmath.h"
#include "td.h"

namespace {

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
      const OwnTrace d = own_trace(i, f, o, g, tch, cp, u);
      for (int gate = 0; gate < 4; ++gate) {
        const size_t row = (static_cast<size_t>(n) * 4 + gate) * J;
        trace_row(J, trace_h + row, trace_c + row, elig_theta + row, zeta.data(), f, d.A, d.B,
                  d.oc, d.ec[gate], d.eh[gate], seed[n], decay);
      }
    }
    *v_prev = v;
    return v;
  }
};

}  // namespace
