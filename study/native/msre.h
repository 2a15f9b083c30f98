// The streaming MSRE of study/tasks/metrics.py as a ring buffer.

#pragma once

#include <cmath>
#include <cstdint>

namespace {

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

}  // namespace
