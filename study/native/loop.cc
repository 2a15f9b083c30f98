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
// Attribute `steps`: the block's length; `kind`: 0 staged, 1 T-BPTT, 2 SnAp-1. The task's
// uniforms are drawn here, bit for bit those of Animal.uniforms (JAX's threefry2x32), and only
// the ones a step reads.
// The parts live in headers this file includes, one per concern: fields.h (the binding by
// name), fastmath.h, task.h, td.h (TD, RMSProp and an LSTM unit's own traces), staged.h,
// dense.h (T-BPTT and SnAp-1) and msre.h; this file holds the FFI handlers.
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

#include "fields.h"
#include "fastmath.h"
#include "task.h"
#include "td.h"
#include "staged.h"
#include "dense.h"
#include "msre.h"

namespace {

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
