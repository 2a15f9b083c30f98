// Float helpers of the kernel: 8-lane vectors, rsqrt, exp, tanh and the logistic function
// without a library call.

#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

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

}  // namespace
