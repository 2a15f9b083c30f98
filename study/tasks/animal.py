"""The animal-learning prediction testbed (Rafiee et al., 2022) as pure JAX functions.

Observation at every step: the binary vector ``[US, CS_1..CS_n, D_1..D_d]``; the cumulant is
the US bit. Time is organised in trials: at trial onset a CS vector is shown for ``cs_len``
steps, the US (when the trial is positive) comes on ``isi`` steps after onset for ``us_len``
steps, and the next trial starts ``isi + iti`` steps after onset. ``isi`` and ``iti`` are drawn
uniformly from inclusive integer ranges at every onset.

Three trial rules (``Animal.rule``, static):

- ``"conditioning"``: trace conditioning. One CS (all CSs on), every trial positive.
- ``"patterning"``: the testbed's trace patterning. ``n_patterns`` of the ``n/2``-of-``n`` CS
  vectors are stored per seed; at onset a stored one is shown with probability ``p_pattern``,
  otherwise a uniformly random binary vector; the trial is positive iff the shown vector is
  stored.
- ``"half_patterns"``: the JMLR paper's variant. The shown vector is uniform over all
  ``n/2``-of-``n`` vectors, of which ``n_patterns`` (per seed) are positive.

In every rule the outcome is flipped with probability ``noise``.

Distractors (``Animal.distractors``, static):

- ``"per_step"``: distractor j, while inactive, switches on with probability
  ``distractor_probs[j]`` per step and then stays on for ``distractor_len`` steps; it is off for
  at least one step between activations.
- ``"per_trial"``: a uniformly random binary distractor vector is drawn at onset and shown for
  ``distractor_len`` steps.

Everything that sets a shape (numbers of CSs, distractors, stored patterns, the rules) lives on
the :class:`Animal` object; every number a study might sweep lives in :class:`AnimalParams`, so
``reset`` and ``step`` vmap over keys and over parameters.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

RULES = ("conditioning", "patterning", "half_patterns")
UNIFORM_CHUNK = 100  # steps whose random numbers one generator call draws (``uniforms``)
DISTRACTOR_MODES = ("per_step", "per_trial")


class AnimalParams(NamedTuple):
    isi_lo: jax.Array  # int32 [], steps from CS onset to US onset, inclusive range
    isi_hi: jax.Array  # int32 []
    iti_lo: jax.Array  # int32 [], steps from US onset to the next CS onset
    iti_hi: jax.Array  # int32 []
    cs_len: jax.Array  # int32 [], steps a CS vector stays on
    us_len: jax.Array  # int32 []
    distractor_len: jax.Array  # int32 []
    distractor_probs: jax.Array  # float32 [d], per-step switch-on probability ("per_step")
    p_pattern: jax.Array  # float32 [], probability of showing a stored pattern ("patterning")
    noise: jax.Array  # float32 [], probability that a trial's outcome is flipped
    gamma: jax.Array  # float32 [], discount of the return to predict


class AnimalState(NamedTuple):
    tau: jax.Array  # int32 [], steps since the current trial's onset
    isi: jax.Array  # int32 [], this trial's ISI
    trial_len: jax.Array  # int32 [], this trial's ISI + ITI
    us: jax.Array  # bool [], whether this trial's US comes
    cs: jax.Array  # float32 [n_cs], CS vector shown at this trial's onset
    distractor_left: jax.Array  # int32 [d], steps each distractor stays on ("per_step")
    distractor_pattern: jax.Array  # float32 [d], distractor vector of this trial ("per_trial")
    patterns: jax.Array  # float32 [n_patterns, n_cs], stored positive CS vectors of this seed


def half_patterns(n_cs: int) -> np.ndarray:
    """All binary vectors of length ``n_cs`` with exactly ``n_cs // 2`` ones, in a fixed order."""
    rows = []
    for on in itertools.combinations(range(n_cs), n_cs // 2):
        row = np.zeros(n_cs, np.float32)
        row[list(on)] = 1.0
        rows.append(row)
    return np.stack(rows)


def pattern_probability(n_cs: int, n_patterns: int) -> float:
    """The testbed's ``p = (2^n/2 - k) / (2^n - k)``, which makes half the trials positive."""
    return (2**n_cs * 0.5 - n_patterns) / (2**n_cs - n_patterns)


def isi_range(setting: int) -> tuple[int, int]:
    """The testbed's ISI range for an ISI setting s: ``[s - floor(s/3), s + floor(s/3)]``."""
    return setting - setting // 3, setting + setting // 3


@dataclass(frozen=True)
class Animal:
    """Static settings of one testbed problem; ``reset`` and ``step`` are pure."""

    n_cs: int = 6
    n_distractors: int = 5
    n_patterns: int = 10
    rule: str = "half_patterns"
    distractors: str = "per_step"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r} is unknown; allowed: {', '.join(RULES)}")
        if self.distractors not in DISTRACTOR_MODES:
            raise ValueError(
                f"distractors={self.distractors!r} is unknown; allowed: "
                f"{', '.join(DISTRACTOR_MODES)}"
            )
        if self.n_cs < 1:
            raise ValueError(f"n_cs={self.n_cs} must be >= 1")
        if self.n_distractors < 0:
            raise ValueError(f"n_distractors={self.n_distractors} must be >= 0")
        if self.rule != "conditioning":
            if self.n_cs < 2 or self.n_cs % 2:
                raise ValueError(f"n_cs={self.n_cs} must be even and >= 2 for rule {self.rule}")
            n_max = math.comb(self.n_cs, self.n_cs // 2)
            if not 1 <= self.n_patterns <= n_max:
                raise ValueError(
                    f"n_patterns={self.n_patterns} must be in 1..{n_max} "
                    f"(the number of {self.n_cs // 2}-of-{self.n_cs} CS vectors)"
                )

    @property
    def obs_size(self) -> int:
        return 1 + self.n_cs + self.n_distractors

    def make_params(
        self,
        *,
        isi: tuple[int, int],
        iti: tuple[int, int] = (80, 120),
        cs_len: int = 4,
        us_len: int = 2,
        distractor_len: int = 4,
        distractor_probs: list[float] | None = None,
        p_pattern: float | None = None,
        noise: float = 0.0,
        gamma: float = 0.9,
    ) -> AnimalParams:
        """Checked parameters; defaults are the testbed's. Raises a one-line ValueError."""
        for name, (lo, hi) in (("isi", isi), ("iti", iti)):
            if lo < 1 or lo > hi:
                raise ValueError(f"{name} range lo={lo}, hi={hi} is invalid; need 1 <= lo <= hi")
        for name, value in (("cs_len", cs_len), ("us_len", us_len)):
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        if distractor_len < 1:
            raise ValueError(f"distractor_len={distractor_len} must be >= 1")
        if iti[0] < us_len:
            raise ValueError(f"iti lo={iti[0]} must be >= us_len={us_len} so trials do not overlap")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma={gamma} is outside the allowed range [0, 1)")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise={noise} is outside the allowed range [0, 1]")
        if distractor_probs is None:
            distractor_probs = [1.0 / (10 * j) for j in range(1, self.n_distractors + 1)]
        if len(distractor_probs) != self.n_distractors:
            raise ValueError(
                f"distractor_probs has {len(distractor_probs)} entries; need n_distractors="
                f"{self.n_distractors}"
            )
        for p in distractor_probs:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"distractor probability {p} is outside [0, 1]")
        if p_pattern is None:
            p_pattern = (
                pattern_probability(self.n_cs, self.n_patterns)
                if self.rule == "patterning"
                else 0.0
            )
        if not 0.0 <= p_pattern <= 1.0:
            raise ValueError(f"p_pattern={p_pattern} is outside [0, 1]")
        i32 = jnp.int32
        return AnimalParams(
            isi_lo=jnp.asarray(isi[0], i32),
            isi_hi=jnp.asarray(isi[1], i32),
            iti_lo=jnp.asarray(iti[0], i32),
            iti_hi=jnp.asarray(iti[1], i32),
            cs_len=jnp.asarray(cs_len, i32),
            us_len=jnp.asarray(us_len, i32),
            distractor_len=jnp.asarray(distractor_len, i32),
            distractor_probs=jnp.asarray(distractor_probs, jnp.float32).reshape(self.n_distractors),
            p_pattern=jnp.asarray(p_pattern, jnp.float32),
            noise=jnp.asarray(noise, jnp.float32),
            gamma=jnp.asarray(gamma, jnp.float32),
        )

    # -- dynamics -------------------------------------------------------------------------

    def _draw_patterns(self, key: jax.Array) -> jax.Array:
        if self.rule == "conditioning":
            return jnp.ones((1, self.n_cs), jnp.float32)
        candidates = jnp.asarray(half_patterns(self.n_cs))
        order = jax.random.permutation(key, candidates.shape[0])
        return candidates[order[: self.n_patterns]]

    @property
    def n_uniform(self) -> int:
        """Uniform numbers one step reads: a new trial's 5 + CS + distractors, and one per
        distractor for the per-step switch-on."""
        return 5 + self.n_cs + 2 * self.n_distractors

    def uniforms(self, key: jax.Array, t0: jax.Array, n: int) -> jax.Array:
        """The uniforms [n, n_uniform] of steps ``t0 .. t0 + n - 1`` of the stream ``key``.

        Step t reads row ``t % UNIFORM_CHUNK`` of ``uniform(fold_in(key, t // UNIFORM_CHUNK))``:
        numbers are drawn a chunk of steps at a time (one generator call per chunk, vectorised,
        instead of a key split and a small draw every step, which made the task cost more than
        the learners it feeds), yet every step's numbers are a pure function of the key and the
        step's index, whatever the block size or chunking of a run and across a checkpoint.
        """
        R, U = UNIFORM_CHUNK, self.n_uniform
        first = t0 // R
        n_chunks = -(-n // R) + 1  # the chunks that can overlap n rows starting anywhere

        def chunk(i):
            return jax.random.uniform(jax.random.fold_in(key, first + i), (R, U))

        rows = jax.vmap(chunk)(jnp.arange(n_chunks)).reshape(n_chunks * R, U)
        return jax.lax.dynamic_slice_in_dim(rows, t0 % R, n)

    def _new_trial(self, u: jax.Array, state: AnimalState, params: AnimalParams) -> AnimalState:
        """The next trial from uniforms ``u`` in [0, 1) (``5 + n_cs + n_distractors`` of
        them). All of a step's randomness comes from one draw of uniforms: one call of the
        generator per step, not one per quantity, which made the task cost more than the
        learners it feeds."""
        n_cs, n_d = self.n_cs, self.n_distractors

        def pick(x: jax.Array, lo: jax.Array, n: jax.Array) -> jax.Array:
            # lo + floor(x n), clipped: uniform over lo..lo+n-1 (float32 bias below 1e-6)
            k = jnp.floor(x * n.astype(jnp.float32)).astype(jnp.int32)
            return lo + jnp.clip(k, 0, n - 1)

        isi = pick(u[0], params.isi_lo, params.isi_hi - params.isi_lo + 1)
        iti = pick(u[1], params.iti_lo, params.iti_hi - params.iti_lo + 1)
        patterns = state.patterns
        if self.rule == "conditioning":
            cs = jnp.ones(n_cs, jnp.float32)
        elif self.rule == "half_patterns":
            candidates = jnp.asarray(half_patterns(n_cs))
            cs = candidates[pick(u[2], 0, jnp.asarray(candidates.shape[0]))]
        else:
            stored = patterns[pick(u[2], 0, jnp.asarray(self.n_patterns))]
            random = (u[5 : 5 + n_cs] < 0.5).astype(jnp.float32)
            cs = jnp.where(u[3] < params.p_pattern, stored, random)
        positive = jnp.any(jnp.all(cs[None, :] == patterns, axis=1))
        us = jnp.logical_xor(positive, u[4] < params.noise)
        distractor_pattern = (u[5 + n_cs : 5 + n_cs + n_d] < 0.5).astype(jnp.float32)
        return state._replace(
            tau=jnp.zeros((), jnp.int32),
            isi=isi,
            trial_len=isi + iti,
            us=us,
            cs=cs,
            distractor_pattern=distractor_pattern,
        )

    def _update_distractors(self, u: jax.Array, left: jax.Array, params: AnimalParams) -> jax.Array:
        """Per-step distractors from uniforms ``u`` [n_distractors]."""
        switch_on = u < params.distractor_probs
        return jnp.where(left > 0, left - 1, jnp.where(switch_on, params.distractor_len, 0))

    def observe(self, state: AnimalState, params: AnimalParams) -> jax.Array:
        """The observation ``[US, CS..., distractors...]`` (float32 [obs_size]) of ``state``."""
        us_on = state.us & (state.tau >= state.isi) & (state.tau < state.isi + params.us_len)
        cs_on = state.tau < params.cs_len
        if self.distractors == "per_step":
            dist = (state.distractor_left > 0).astype(jnp.float32)
        else:
            dist = state.distractor_pattern * (state.tau < params.distractor_len)
        return jnp.concatenate(
            [us_on.astype(jnp.float32)[None], state.cs * cs_on.astype(jnp.float32), dist]
        )

    def reset(self, key: jax.Array, params: AnimalParams) -> tuple[jax.Array, AnimalState]:
        """Draw this seed's stored patterns and the first trial; returns ``(obs_0, state)``."""
        k_pat, k_step = jax.random.split(key)
        u = jax.random.uniform(k_step, (self.n_uniform,))
        n_trial = self.n_uniform - self.n_distractors
        d = self.n_distractors
        state = AnimalState(
            tau=jnp.zeros((), jnp.int32),
            isi=jnp.zeros((), jnp.int32),
            trial_len=jnp.ones((), jnp.int32),
            us=jnp.zeros((), bool),
            cs=jnp.zeros(self.n_cs, jnp.float32),
            distractor_left=jnp.zeros(d, jnp.int32),
            distractor_pattern=jnp.zeros(d, jnp.float32),
            patterns=self._draw_patterns(k_pat),
        )
        state = self._new_trial(u[:n_trial], state, params)
        state = state._replace(
            distractor_left=self._update_distractors(u[n_trial:], state.distractor_left, params)
        )
        return self.observe(state, params), state

    def step(
        self, key: jax.Array, state: AnimalState, params: AnimalParams
    ) -> tuple[jax.Array, AnimalState, jax.Array]:
        """Advance one step drawing its own uniforms from ``key``; see :meth:`step_u`."""
        return self.step_u(jax.random.uniform(key, (self.n_uniform,)), state, params)

    def step_u(
        self, u: jax.Array, state: AnimalState, params: AnimalParams
    ) -> tuple[jax.Array, AnimalState, jax.Array]:
        """Advance one step with the uniforms ``u`` [n_uniform] (a row of :meth:`uniforms`);
        returns ``(obs, state, cumulant)`` with cumulant = the US bit."""
        n_trial = self.n_uniform - self.n_distractors
        tau = state.tau + 1
        advanced = state._replace(tau=tau)
        fresh = self._new_trial(u[:n_trial], state, params)
        state = jax.tree.map(
            lambda new, old: jnp.where(tau >= state.trial_len, new, old), fresh, advanced
        )
        state = state._replace(
            distractor_left=self._update_distractors(u[n_trial:], state.distractor_left, params)
        )
        obs = self.observe(state, params)
        return obs, state, obs[0]
