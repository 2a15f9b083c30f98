// The kernel's arguments bound by the names of the Python fields they come from (see
// loop.cc): the field lists, FIELD and the LSTM learners' common fields.

#pragma once

#include <cstddef>
#include <iterator>
#include <type_traits>

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

}  // namespace
