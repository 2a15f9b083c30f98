"""The run loop's hot path as one compiled CPU kernel, called through JAX's FFI.

On one stream a learner step of a paper-sized network is a few hundred numbers of work, and
XLA's CPU runtime spends more than that dispatching the few dozen small kernels it compiles a
step into. ``loop.cc`` beside this file runs a whole block of steps of every stream (task,
learner, streaming MSRE) in one call, with the numbers of ``study.engine.loop``'s JAX code: the same
uniforms (``Animal.uniforms``' threefry2x32 draws, bit for bit, computed in the kernel and only
those a step reads), the same state, the same formulas. The JAX code stays the reference and
the path on GPUs; ``tests/test_native.py`` holds the two together.

Which path a run takes (``engine``): the kernel where it applies (the staged networks, i.e.
columnar, constructive and hybrid, T-BPTT and SnAp-1, predicting on the animal-learning testbed
in float32 on the CPU) and builds; JAX otherwise. ``CCN_ENGINE=jax`` always takes JAX;
``CCN_ENGINE=native`` fails with the reason where the kernel cannot run.

The kernel is compiled on first use with the machine's C++ compiler (``$CXX`` or ``g++``,
``-O3 -march=native``) against the FFI headers jaxlib ships, into ``$CCN_NATIVE_CACHE``
(default ``~/.cache/ccn-study/native``), one file per source, jaxlib and CPU; a machine without
a compiler runs JAX and says so once (the tests of ``tests/test_native.py`` then skip, except
under ``CI=true``, where they fail).

The kernel's arguments are bound by name: ``loop.cc`` lists the fields it reads of each
NamedTuple (the learner's state, the task's state and parameters, the MSRE's state, the
hyperparameters), ``layout()`` reads those lists from the library, and ``block_fn`` passes each
field by its name in the kernel's order, refusing a state with a field the kernel does not
know or lacking one it reads (``bind``). Reordering a NamedTuple's fields changes nothing;
renaming one fails at once, naming both sides.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = Path(__file__).with_name("loop.cc")
TARGET = "ccn_run_block"
UNIFORMS_TARGET = "ccn_uniforms"
LAYOUT_SYMBOL = "ccn_layout"
# The kernel's learner kinds, by their field lists' names; a family names its own
# (``learners.families.Family.native``).
GROUPS = ("staged", "tbptt", "snap1")
ENGINES = ("auto", "native", "jax")

__all__ = [
    "ENGINES",
    "SOURCE",
    "kernel_kind",
    "bind",
    "block_fn",
    "build",
    "engine",
    "engine_setting",
    "ensure",
    "family_refusal",
    "layout",
    "native_refusal",
    "unbind",
    "uniforms",
    "unsupported",
]
_lock = threading.Lock()
_state: dict[str, Any] = {}  # "ready": bool, "why": reason it is not


def engine_setting() -> str:
    """``$CCN_ENGINE`` (auto, native or jax), checked."""
    value = os.environ.get("CCN_ENGINE", "auto").strip().lower() or "auto"
    if value not in ENGINES:
        raise ValueError(f"CCN_ENGINE={value!r} is not allowed; allowed: {', '.join(ENGINES)}")
    return value


def _cpu_tag() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _library_path() -> tuple[Path, list[str]]:
    import jax
    import jaxlib

    cxx = os.environ.get("CXX") or "g++"
    flags = [
        "-O3",
        "-march=native",
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-fno-math-errno",
        "-fno-tree-loop-distribute-patterns",
    ]
    sources = [SOURCE, *sorted(SOURCE.parent.glob("*.h"))]  # loop.cc includes the headers
    stamp = "\n".join([*(p.read_text() for p in sources), jaxlib.__version__, cxx,
                       " ".join(flags), _cpu_tag()])  # fmt: skip
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("CCN_NATIVE_CACHE", Path.home() / ".cache/ccn-study/native"))
    cmd = [cxx, *flags, "-isystem", jax.ffi.include_dir(), str(SOURCE)]
    return cache / f"ccn_loop_{digest}.so", cmd


def build() -> Path:
    """Compile ``loop.cc`` into the cache (once per source, jaxlib and CPU) and return the
    library's path; a one-line RuntimeError says why it could not."""
    path, cmd = _library_path()
    if path.exists():
        return path
    compiler = shutil.which(cmd[0])
    if compiler is None:
        raise RuntimeError(f"no C++ compiler {cmd[0]!r} on PATH (set $CXX)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several trials may build at once: each writes its own file and renames it into place.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        # posix_spawn, not fork (JAX's threads may be running): a full path, no fd closing
        done = subprocess.run([compiler, *cmd[1:], "-o", tmp], capture_output=True, text=True,
                              close_fds=False)  # fmt: skip
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["(no message)"]
            first = next((ln for ln in lines if "error" in ln), lines[0])
            raise RuntimeError(f"compiling {SOURCE.name} failed: {first}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def ensure() -> str | None:
    """Build, load and register the kernel once per process; None when ready, else why not."""
    with _lock:
        if "ready" not in _state:
            try:
                import jax

                lib = ctypes.CDLL(str(build()))
                for name in (TARGET, UNIFORMS_TARGET):
                    capsule = jax.ffi.pycapsule(getattr(lib, name))
                    jax.ffi.register_ffi_target(name, capsule, platform="cpu")
                _state.update(ready=True, lib=lib)
            except (RuntimeError, OSError) as e:
                _state.update(ready=False, why=str(e))
        return None if _state["ready"] else _state["why"]


def layout() -> dict[str, tuple[str, ...]]:
    """What the kernel reads, by name: each group of its arguments (``hp_float``, ``hp_int``,
    ``task_float``, ``task_int``, ``task_state``, ``msre``, and each learner kind's state:
    ``staged``, ``tbptt``, ``snap1``) and its fields' names in the order it takes them, as
    ``loop.cc`` lists them (``ccn_layout``). The kernel must be ready (``ensure``)."""
    if "layout" not in _state:
        get = getattr(_state["lib"], LAYOUT_SYMBOL)
        get.restype = ctypes.c_char_p
        groups = {}
        for line in get().decode().splitlines():
            group, _, names = line.partition(":")
            groups[group] = tuple(names.split())
        _state["layout"] = groups
    return _state["layout"]


def bind(group: str, value: Any, names: tuple[str, ...], whole: bool = True) -> list[Any]:
    """``value``'s fields (a NamedTuple) in the order the kernel reads ``names``; a
    RuntimeError naming both sides' fields when the kernel reads a field ``value`` lacks, or
    (``whole``: a state the kernel returns) ``value`` has a field the kernel does not know."""
    fields = type(value)._fields
    missing = [n for n in names if n not in fields]
    unknown = [f for f in fields if f not in names] if whole else []
    if missing or unknown:
        where = f"{type(value).__module__}.{type(value).__qualname__}"
        parts = [f"it reads {', '.join(missing)}, which {where} lacks"] if missing else []
        parts += [f"{where} has {', '.join(unknown)}, which it does not read"] if unknown else []
        raise RuntimeError(
            f"the compiled CPU loop's {group} fields ({' '.join(names)}) do not match "
            f"{where}'s ({' '.join(fields)}): {'; '.join(parts)}; update the lists in "
            f"{SOURCE.name} and its code with the fields"
        )
    return [getattr(value, n) for n in names]


def unbind(like: Any, names: tuple[str, ...], values: list[Any]) -> Any:
    """A NamedTuple of ``like``'s type from ``values`` in the kernel's order ``names``."""
    return type(like)(**dict(zip(names, values, strict=True)))


def kernel_kind(name: str) -> int | None:
    """The kernel's kind of learner ``name`` (the index of its ``Family.native`` in
    :data:`GROUPS`), None where the kernel has none."""
    from learners.families import FAMILIES

    fam = FAMILIES.get(name)
    return None if fam is None or fam.native is None else GROUPS.index(fam.native)


def family_refusal(name: str, task_family: str = "testbed") -> str | None:
    """Why the kernel cannot run family ``name`` on a task of ``task_family`` (``testbed``,
    ``atari`` or ``classification``: ``study.tasks.task_family``), from names alone: a
    driver checks it without starting JAX."""
    if task_family == "classification":
        return "the kernel predicts; it does not classify"
    if task_family != "testbed":
        return f"the kernel runs the animal-learning testbed, not the {task_family} tasks"
    if kernel_kind(name) is None:
        return f"the kernel has no {name} learner"
    return None


def native_refusal(why: str) -> str:
    """The one-line refusal of ``CCN_ENGINE=native`` where the kernel cannot run (``why``)."""
    return f"CCN_ENGINE=native: {why}; allowed: auto or jax for it"


def unsupported(learner: Any, env: Any) -> str | None:
    """Why the kernel does not apply to this learner and task (None: it does)."""
    import jax

    from study.tasks.animal import Animal

    if not isinstance(env, Animal):
        return f"the kernel runs the animal-learning testbed, not {type(env).__name__}"
    task = "classification" if learner.settings.get("n_classes") else "testbed"
    why = family_refusal(learner.name, task)
    if why is not None:
        return why
    if jax.config.jax_enable_x64:
        return "the kernel computes in float32 and JAX is in float64"
    if jax.default_backend() != "cpu":
        return f"the kernel runs on the CPU, and JAX's default device is {jax.default_backend()}"
    return None


def engine(learner: Any, env: Any, setting: str | None = None) -> str:
    """``"native"`` or ``"jax"``: the path a run of ``learner`` on ``env`` takes under
    ``setting`` (auto, native or jax; None reads ``$CCN_ENGINE``)."""
    setting = setting or engine_setting()
    if setting == "jax":
        return "jax"
    why = unsupported(learner, env) or ensure()
    if why is None:
        return "native"
    if setting == "native":
        raise ValueError(native_refusal(why))
    if unsupported(learner, env) is None and not _state.get("told"):
        print(f"note: the compiled CPU loop is off ({why}); running JAX's", file=sys.stderr)
        _state["told"] = True
    return "jax"


def uniforms(env: Any, key: Any, t0: Any, n: int):
    """``env.uniforms(key, t0, n)`` as the kernel draws them (for the tests)."""
    import jax
    import jax.numpy as jnp

    out = jax.ShapeDtypeStruct((n, env.n_uniform), jnp.float32)
    call = jax.ffi.ffi_call(UNIFORMS_TARGET, out, vmap_method="broadcast_all")
    return call(jnp.asarray(key, jnp.uint32), jnp.asarray(t0, jnp.int32))


def block_fn(learner: Any, env: Any, steps: int):
    """``block(carry, hp, tp) -> (carry, stats)``: ``study.engine.loop``'s block of ``steps`` steps
    of one stream (vmap it like the rest of the loop), through the kernel."""
    import jax
    import jax.numpy as jnp

    from study.tasks.animal import half_patterns

    s = learner.settings
    attrs = dict(
        kind=np.int64(kernel_kind(learner.name)),
        m=np.int64(s["n_inputs"]),
        n_features=np.int64(s["n_features"]),
        per_stage=np.int64(s.get("per_stage", s["n_features"])),
        truncation=np.int64(s.get("truncation", 1)),
        rmsprop=np.int64(bool(s.get("rmsprop", True))),
        n_cs=np.int64(env.n_cs),
        n_d=np.int64(env.n_distractors),
        rule=np.int64(("conditioning", "patterning", "half_patterns").index(env.rule)),
        per_trial=np.int64(env.distractors == "per_trial"),
        steps=np.int64(steps),
    )
    if env.rule == "half_patterns":
        candidates = half_patterns(env.n_cs)
    else:
        candidates = np.zeros((1, env.n_cs), np.float32)

    names = layout()
    group = GROUPS[kernel_kind(learner.name)]

    def block(carry, hp, tp):
        f32, i32 = jnp.float32, jnp.int32
        # Every argument group in the order the kernel names its fields (``layout``).
        state, env_state, msre = carry.learner_state, carry.env_state, carry.msre
        learner_leaves = bind(group, state, names[group])
        leaves = [carry.t, *bind("task_state", env_state, names["task_state"]), carry.obs,
                  carry.cumulant, *learner_leaves, *bind("msre", msre, names["msre"])]  # fmt: skip
        hpf = jnp.stack(bind("hp_float", hp, names["hp_float"], whole=False)).astype(f32)
        hpi = jnp.stack(bind("hp_int", hp, names["hp_int"], whole=False)).astype(i32)
        floats = bind("task_float", tp, names["task_float"], whole=False)
        # the last (distractor_probs) is a vector
        tpf = jnp.concatenate([jnp.stack(floats[:-1]).astype(f32),
                               jnp.asarray(floats[-1], f32).reshape(-1)])  # fmt: skip
        tpi = jnp.stack(bind("task_int", tp, names["task_int"], whole=False)).astype(i32)
        outs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
        outs += [jax.ShapeDtypeStruct((), d) for d in (f32, i32, jnp.bool_, f32, f32)]
        call = jax.ffi.ffi_call(
            TARGET, outs, vmap_method="broadcast_all",
            input_output_aliases={6 + i: i for i in range(len(leaves))},
        )  # fmt: skip
        res = call(
            carry.key.astype(jnp.uint32),
            hpf,
            hpi,
            tpf,
            tpi,
            jnp.asarray(candidates),
            *leaves,
            learner_leaves=np.int64(len(learner_leaves)),
            **attrs,
        )
        it = iter(res)
        t = next(it)
        env_state = unbind(env_state, names["task_state"],
                           [next(it) for _ in names["task_state"]])  # fmt: skip
        obs, cumulant = next(it), next(it)
        learner_state = unbind(state, names[group], [next(it) for _ in names[group]])
        msre = unbind(msre, names["msre"], [next(it) for _ in names["msre"]])
        stats = tuple(it)
        new = carry._replace(t=t, env_state=env_state, obs=obs, cumulant=cumulant,
                             learner_state=learner_state, msre=msre)  # fmt: skip
        return new, stats

    return block
