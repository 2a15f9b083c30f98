"""The compute ledger: parameters, floating-point operations per step and bytes of state per
stream of every learner configuration, computed from its sizes alone.

Counting convention (one stream, one step): a multiply or an add is one flop, and so is each
sigmoid, tanh or square root; per-unit bookkeeping (gates, cell update) is counted, per-step
scalars (the TD error, the stage index) are not. Per learnable parameter the TD(lambda)
machinery costs 2 flops for the eligibility (``gamma lambda e + grad``) and 3 for the update
(``alpha delta e``), plus 7 with RMSProp (second moment 4, square root, divide, add).

``size_for_budget`` inverts the ledger: the largest network of a family whose flops per step fit
a budget, which is how the paper compares learners at matched compute.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES = 4  # float32 state; int32 counters count the same

UNIT = 4 * 3 + 3 + 2 + 3  # per LSTM unit: 4 biases/recurrent adds, cell 3, h 2, 3 activations
TD = 2 + 3  # eligibility and update, per learnable parameter
RMSPROP = 7


@dataclass(frozen=True)
class Cost:
    params: int  # learnable parameters (readout included)
    flops: int  # floating-point operations per step per stream
    state_bytes: int  # bytes of learner state per stream


def _td(n: int, rmsprop: bool) -> int:
    return n * (TD + (RMSPROP if rmsprop else 0))


def linear_cost(m: int, rmsprop: bool = True) -> Cost:
    n = m + 1
    flops = 2 * m + 1 + _td(n, rmsprop)
    # w, b, elig, nu, corr, obs mean/var, v_prev
    state = 3 * n + 1 + 2 * m + 1
    return Cost(n, flops, state * BYTES)


def staged_cost(m: int, n_features: int, per_stage: int, rmsprop: bool = True) -> Cost:
    """Cost in the most expensive stage (the last: the learning stage reads every feature)."""
    N, P = n_features, per_stage
    S = N // P
    K = m + N - P
    params = sum(P * 4 * (m + s * P + 2) for s in range(S)) + N + 1
    forward = sum(P * (4 * 2 * (m + s * P) + UNIT) for s in range(S)) + 2 * N
    learning = P * 4 * (K + 2)  # parameters of the learning stage as stored (padded)
    traces = learning * 10 + learning  # TC and TH updates, then the readout-scaled gradient
    flops = forward + traces + _td(learning + N + 1, rmsprop)
    state = (
        S * P * 4 * (K + 2)  # parameters of every stage (as stored, padded)
        + 4 * learning  # trace_h, trace_c, elig, nu of the learning stage
        + 2 * N  # h, c
        + 3 * (N + 1)  # readout w, b with their elig and nu
        + 2 * m  # observation statistics
        + 2 * N  # feature statistics
        + 5  # corr_theta, corr_out, v_prev, t, stage
    )
    return Cost(params, flops, state * BYTES)


def dense_params(m: int, hidden: int) -> int:
    return hidden * 4 * (m + hidden + 1)


def snap1_cost(m: int, hidden: int, rmsprop: bool = True) -> Cost:
    rec = dense_params(m, hidden)
    flops = 2 * rec + hidden * UNIT + 2 * hidden + rec * 11 + _td(rec + hidden + 1, rmsprop)
    # theta, trace_h, trace_c, elig, nu; h, c; readout with elig, nu; input and feature
    # statistics; corr, v_prev
    state = rec * 5 + 2 * hidden + 3 * (hidden + 1) + 2 * m + 2 * hidden + 2
    return Cost(rec + hidden + 1, flops, state * BYTES)


def rtrl_cost(m: int, hidden: int, rmsprop: bool = True) -> Cost:
    rec = dense_params(m, hidden)
    H = hidden
    flops = (
        2 * rec + H * UNIT + 2 * H
        + 8 * H * H * rec  # d a = U . TH over all units and parameters
        + 15 * H * rec  # gate derivatives, TC and TH
        + 2 * H * rec  # readout-weighted sum of the traces
        + _td(rec + H + 1, rmsprop)
    )  # fmt: skip
    state = rec * (2 * H + 3) + 2 * H + 3 * (H + 1) + 2 * m + 2 * H + 2
    return Cost(rec + H + 1, flops, state * BYTES)


def tbptt_cost(m: int, hidden: int, truncation: int, rmsprop: bool = True) -> Cost:
    rec = dense_params(m, hidden)
    H, k = hidden, truncation
    J = m + H + 1
    backward_step = 2 * rec + 8 * H * H + 16 * H  # outer product, U^T da, gate derivatives
    flops = 2 * rec + H * UNIT + 2 * H + k * backward_step + _td(rec + H + 1, rmsprop)
    window = k * (J + 4 * H + 2 * H)  # zeta, gates, c, c_prev of the last k steps
    state = rec * 3 + window + 2 * H + 3 * (H + 1) + 2 * m + 2 * H + 3
    return Cost(rec + H + 1, flops, state * BYTES)


def uoro_cost(m: int, hidden: int, rmsprop: bool = True) -> Cost:
    """UORO on a dense LSTM (``learners.uoro``): the forward pass, a forward-mode and a
    reverse-mode product of the cell (about 2 and 3 forward passes), the two factors' norms
    and updates, and the rank-one gradient."""
    rec = dense_params(m, hidden)
    H = hidden
    cell = 2 * rec + H * UNIT
    flops = (
        cell + 2 * H  # forward and feature normalisation
        + 2 * cell  # F_s s~ (jvp)
        + 3 * cell  # v^T F_theta (vjp: the forward again and its transpose)
        + 2 * (rec + 2 * H) + 3 * rec + 6 * H  # norms, then theta~ and s~
        + rec + 2 * H  # (seed . s~) theta~
        + _td(rec + H + 1, rmsprop)
    )  # fmt: skip
    # theta, theta~, elig, nu; s~; h, c; readout with elig, nu; statistics; corr, v_prev, key
    state = rec * 4 + 2 * H + 2 * H + 3 * (H + 1) + 2 * m + 2 * H + 4
    return Cost(rec + H + 1, flops, state * BYTES)


def lru_cost(m: int, units: int, rmsprop: bool = True, layers: int = 1) -> Cost:
    """``layers`` online LRU layers and their GLUs (``learners.lru``); the first reads the
    ``m`` observations, the others the ``units`` outputs below."""
    N = units
    params = flops = state = 0
    for i in range(layers):
        J = (m if i == 0 else N) + 1
        rec = N * (2 * J + 3)
        p = rec + 2 * N * N + N * J + 2 * N * N + 2 * N  # + C, D, W1, W2, b1, b2
        head_flops = 4 * N * N + 2 * N * J + 4 * N * N + 8 * N  # y, the GLU's layers and gate
        params += p
        flops += (
            28 * N  # lambda, gamma; R x
            + 4 * N * J + 2 * 2 * N * J  # B u, gamma (B u)
            + 10 * 2 * N * J + 3 * 14 * N  # the traces of B, then of nu, phi, g
            + 3 * head_flops  # the head and its reverse-mode product
            + 8 * N * J + 12 * N  # dv/dx contracted with the traces
        )  # fmt: skip
        # parameters with elig and nu (x3); B traces (x2), the others' (x2); x
        state += 3 * p + 2 * 2 * N * J + 3 * 2 * N + 2 * N
    params += N + 1
    flops += 2 * m + 3 * 2 * N + _td(params, rmsprop)  # normalisations and the readout
    state += 3 * (N + 1) + 2 * m + 2 * N + 2  # readout with elig, nu; statistics; corr, v_prev
    return Cost(params, flops, state * BYTES)


def rtu_cost(m: int, units: int, rmsprop: bool = True) -> Cost:
    """A layer of RTUs (``learners.rtu``; the linear and non-linear units cost the same)."""
    H, J = units, m + 1
    params = H * (2 * J + 2) + 2 * H + 1
    flops = (
        2 * m  # the observation's normalisation
        + 2 * 2 * H * J  # W z
        + 10 * 2 * H * J  # the input weights' traces: rotation 6, direct term 2, D 2
        + 2 * 2 * 2 * H * J  # their readout-weighted sum
        + H * (12 + 2 + 2 + 4)  # r, theta, a, b; R c; the additions; tanh and its derivative
        + 2 * (10 + 4 + 4) * H  # the traces of nu and phi, their direct terms and sums
        + 3 * 2 * H  # feature normalisation and the readout
        + _td(params, rmsprop)
    )  # fmt: skip
    # W with trace (x2), elig, nu; nu and phi with trace (x2), elig, nu; c; readout with elig,
    # nu; input and feature statistics; corr, v_prev
    state = 2 * H * J * 5 + 2 * H * 5 + 2 * H + 3 * (2 * H + 1) + 2 * m + 4 * H + 2
    return Cost(params, flops, state * BYTES)


def tbptt_reference_flops(m: int, hidden: int, truncation: int) -> int:
    """The reference's cost model of T-BPTT, ``k (4h^2 + 4hm)``: one multiply-add per
    recurrent-layer weight per unrolled step. The paper's matched (truncation, hidden) pairs
    (2:13, 3:10, 5:8, 8:5, 10:5, 15:4, 20:3, 30:2) are equal-cost under this model; the full
    ledger above also counts the forward pass, the gradient outer products and the update."""
    h = hidden
    return truncation * (4 * h * h + 4 * h * m)


def classifier_cost(entry: Cost, features: int, elig: int, n_classes: int, rmsprop: bool) -> Cost:
    """A prediction learner's entry turned into its ``n_classes``-way classifier's: the
    readout grows from ``features + 1`` to ``C (features + 1)`` parameters (forward, the
    gradient ``W^T dL/dlogits``, the outer product and the update: about 6 flops each, plus
    RMSProp), softmax cross-entropy costs ``5 C``, and the ``elig`` recurrent eligibilities
    and the readout's are gone. The traces are unchanged."""
    C, F = n_classes, features
    readout = C * (F + 1)
    flops = (
        entry.flops - _td(F + 1, rmsprop) - 2 * elig - 2 * F  # the scalar readout and TD
        + 2 * C * F + 2 * C * F + C * F + 5 * C  # logits, W^T dlogits, outer product, CE
        + readout * (3 + (RMSPROP if rmsprop else 0))  # the readout's descent
    )  # fmt: skip
    # w, b, nu_w, nu_b at [C, F] and [C] replace w, b and their elig and nu; no elig_theta.
    state = entry.state_bytes // BYTES - 3 * (F + 1) + 2 * readout - elig
    return Cost(entry.params - (F + 1) + readout, flops, state * BYTES)
