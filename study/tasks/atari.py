"""The Atari prediction benchmark (Javed, Shah, Sutton and White, JMLR 2023): predict the
discounted sum of a game's clipped rewards from its screen while a trained agent plays.

A recorded trace (``R`` resets, ``c`` plays action ``ord(c) - 97`` of the minimal set; the
files ``<Game>NoFrameskip-v4.txt[.gz]`` of ``--traces-dir`` or ``$CCN_ATARI_TRACES``, task
``atari_<game in snake case>``) is replayed once in ale-py with the reference's settings
(seed 1731038949, no sticky actions, frame skip 1) and cached under ``$CCN_ATARI_CACHE``, keyed
by the trace's hash, the emulator's version and the preprocessing's; a cache that does not read
back or match is rebuilt. Each step shows 275 inputs: the clipped reward (the cumulant), the
grayscale screen area-averaged from 210 x 160 to 16 x 16 (rounded, / 256) and a one-hot of
the action played; the target is the return with gamma 0.98 over the whole stream.
``docs/atari.md`` defines every detail.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

TRACES_ENV = "CCN_ATARI_TRACES"
CACHE_ENV = "CCN_ATARI_CACHE"
PREFIX = "atari_"
SEED = 1731038949
GAMMA = 0.98
HEIGHT, WIDTH, SIDE = 210, 160, 16
N_ACTIONS = 18  # the full action set: the one-hot's width for every game
OBS_SIZE = 1 + SIDE * SIDE + N_ACTIONS  # 275
PREPROCESS = "gray16-area-round-v1"  # bump when the stream's definition changes
_FILE = re.compile(r"^(?P<game>[A-Z][A-Za-z0-9]*?)(?:NoFrameskip-v4)?\.txt(?:\.gz)?$")


class AtariError(ValueError):
    """A one-line reason why an Atari task cannot run."""


def snake(game: str) -> str:
    """``MsPacman`` -> ``ms_pacman`` (ALE's ROM id)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def is_atari(task: str) -> bool:
    return task.startswith(PREFIX)


def ale_version() -> str:
    """ale-py's version, or a one-line AtariError naming the extra that installs it."""
    try:
        return importlib.metadata.version("ale-py")
    except importlib.metadata.PackageNotFoundError:
        raise AtariError('the Atari tasks need ale-py: pip install -e ".[atari]"') from None


# -- where the traces are ------------------------------------------------------------------


def traces_folder(data_dir: str | None) -> Path:
    """The folder of traces: ``data_dir`` (``--traces-dir``), else ``$CCN_ATARI_TRACES``."""
    text, flag = (data_dir, "--traces-dir") if data_dir else (
        os.environ.get(TRACES_ENV), TRACES_ENV)  # fmt: skip
    if not text:
        raise AtariError(f"the Atari tasks read recorded traces: give --traces-dir FOLDER or "
                         f"set {TRACES_ENV} (README: the Atari prediction benchmark)")  # fmt: skip
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise AtariError(f"{flag} {text}: not a folder of traces")
    return folder.resolve()


def find_traces(folder: Path) -> dict[str, Path]:
    """Task name -> trace file, for every ``<Game>NoFrameskip-v4.txt[.gz]`` (or
    ``<Game>.txt[.gz]``) in ``folder``."""
    found = {}
    for path in sorted(folder.iterdir()):
        m = _FILE.match(path.name)
        if m and path.is_file():
            found.setdefault(PREFIX + snake(m.group("game")), path)
    return found


def trace_path(task: str, data_dir: str | None) -> Path:
    folder = traces_folder(data_dir)
    found = find_traces(folder)
    if task not in found:
        games = ", ".join(found) or "none"
        raise AtariError(f"--task {task}: no trace for it in {folder}; found: {games}")
    return found[task]


def read_trace(path: Path) -> bytes:
    """The trace's characters, checked: not empty, only ``R`` and ``a``..``r`` (a trailing
    newline is dropped)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise AtariError(f"trace {path}: not a readable gzip file ({e})") from None
    raw = raw.rstrip(b"\r\n")
    if not raw:
        raise AtariError(f"trace {path}: empty; allowed: one character per frame")
    bad = set(raw) - set(b"R") - set(range(97, 97 + N_ACTIONS))
    if bad:
        c = min(bad)
        where = raw.index(bytes([c]))
        raise AtariError(f"trace {path}: character {chr(c)!r} at frame {where:,}; allowed: R "
                         f"(reset) and a..r (actions 0 to 17)")  # fmt: skip
    return raw


# -- the stream ----------------------------------------------------------------------------


class Stream(NamedTuple):
    frames: np.ndarray  # uint8 [T, 16, 16], the shrunk screen
    actions: np.ndarray  # uint8 [T], the action index played (one-hot input)
    rewards: np.ndarray  # float32 [T], clipped to [-1, 1]
    raw_rewards: np.ndarray  # float32 [T], the game's own
    resets: np.ndarray  # bool [T], a reset at that step


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in]: output cell i's mean over the input interval [i s, (i + 1) s), s =
    n_in / n_out, each input cell weighted by the fraction of it inside (rows sum to 1)."""
    s = n_in / n_out
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = i * s, (i + 1) * s
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            w[i, j] = min(hi, j + 1) - max(lo, j)
    return w / s


_ROWS, _COLS = area_weights(HEIGHT, SIDE), area_weights(WIDTH, SIDE)


def shrink(screens: np.ndarray) -> np.ndarray:
    """Grayscale screens [..., 210, 160] -> [..., 16, 16] uint8 (area mean, rounded). BLAS
    runs on one thread: these products are small, and several BLAS threads on a busy
    machine's cores made the replay about 25 times slower (the same numbers either way: a
    thread computes whole output cells)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        out = (_ROWS @ screens.astype(np.float64)) @ _COLS.T  # rows, then columns
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def emulator(task: str, trace: bytes) -> tuple[Any, Any]:
    """ALE on the game of ``task`` with the reference's settings (see the module), and its
    minimal action set; a trace playing an action outside the set is refused in one line."""
    ale_version()
    import ale_py
    import ale_py.roms

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # before the banner
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", SEED)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("frame_skip", 1)
    ale.loadROM(ale_py.roms.get_rom_path(task[len(PREFIX) :]))
    ale.reset_game()  # as the reference does after loading
    actions = ale.getMinimalActionSet()
    top = max((c - 97 for c in trace if c != ord("R")), default=-1)
    if top >= len(actions):
        c = chr(97 + top)
        last = chr(96 + len(actions))
        raise AtariError(f"--task {task}: its trace plays {c!r} (action {top}), outside the "
                         f"game's {len(actions)} actions (a..{last})")  # fmt: skip
    return ale, actions


def replay(trace: bytes, task: str, progress: bool = False) -> Stream:
    """The trace played in ALE (:func:`emulator`): step 0 is the screen after the first
    reset; step t > 0 applies character t."""
    ale, actions = emulator(task, trace)
    n = len(trace)
    out = Stream(np.zeros((n, SIDE, SIDE), np.uint8), np.zeros(n, np.uint8),
                 np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool))  # fmt: skip
    batch = 2000
    screens = np.zeros((batch, HEIGHT, WIDTH), np.uint8)
    last, t0 = 0, time.monotonic()
    for t in range(n):
        c = trace[t]
        if t == 0 and c == ord("R"):
            out.resets[t] = True  # the game was just reset: step 0 is its first screen
        elif c == ord("R"):
            ale.reset_game()
            out.resets[t] = True
        else:
            last = c - 97
            out.raw_rewards[t] = ale.act(actions[last])
        out.actions[t] = last
        ale.getScreenGrayscale(screens[t % batch])
        if t % batch == batch - 1 or t == n - 1:
            first = t - t % batch
            out.frames[first : t + 1] = shrink(screens[: t - first + 1])
            if progress and t % 50_000 == 49_999:
                rate = (t + 1) / (time.monotonic() - t0)
                print(f"  {task}: {t + 1:,}/{n:,} frames, about {(n - t - 1) / rate:.0f} s left",
                      file=sys.stderr, flush=True)  # fmt: skip
    np.clip(out.raw_rewards, -1, 1, out=out.rewards)
    return out


def returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_{t+1} + gamma G_{t+1}`` over the whole stream (``G_{T-1} = 0``), in float64."""
    g = np.zeros(len(rewards))
    acc = 0.0
    for t in range(len(rewards) - 1, 0, -1):
        acc = float(rewards[t]) + gamma * acc
        g[t - 1] = acc
    return g


def episode_scores(stream: Stream) -> tuple[list[float], float]:
    """Each finished episode's score (raw rewards between two resets) and the score of the
    unfinished one at the end."""
    cuts = np.flatnonzero(stream.resets)
    sums = np.add.reduceat(stream.raw_rewards.astype(np.float64), cuts) if len(cuts) else []
    scores = [float(s) for s in sums]
    return scores[:-1], (scores[-1] if scores else float(stream.raw_rewards.sum()))


# -- the cache -----------------------------------------------------------------------------


def cache_folder() -> Path:
    text = os.environ.get(CACHE_ENV)
    return Path(text).expanduser() if text else Path.home() / ".cache" / "ccn-study" / "atari"


def check_cache_folder() -> Path:
    """The cache folder, refused in one line (naming ``$CCN_ATARI_CACHE`` when it set it)
    unless it is a folder this process may create or write into."""
    from study.cli import writable_folder

    given = os.environ.get(CACHE_ENV)
    try:
        return writable_folder(str(cache_folder()), CACHE_ENV if given else "the Atari cache")
    except ValueError as e:
        raise AtariError(f"{e} (the replayed streams' cache: set {CACHE_ENV} to a writable "
                         f"folder)") from None  # fmt: skip


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def cache_key(task: str, trace: bytes) -> dict[str, str]:
    return {"task": task, "trace_sha256": hashlib.sha256(trace).hexdigest(),
            "ale_py": ale_version(), "preprocess": PREPROCESS}  # fmt: skip


def _cache_file(key: dict[str, str]) -> Path:
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_folder() / f"{key['task']}-{tag}.npz"


def _read_cache(path: Path, key: dict[str, str]) -> Stream | str:
    """The cached stream, or why it cannot be trusted."""
    if not path.is_file():
        return "not built yet"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in Stream._fields}
            meta = json.loads(str(z["meta"]))
    except Exception as e:  # a truncated or foreign file: rebuilt
        return f"unreadable ({type(e).__name__})"
    if meta.get("key") != key:
        return "made from another trace, emulator or preprocessing"
    if meta.get("digest") != _digest(arrays):
        return "its arrays do not match their digest"
    return Stream(**arrays)


def load_stream(task: str, data_dir: str | None = None, progress: bool = True) -> Stream:
    """Task ``task``'s stream, from the cache or replayed (and cached)."""
    path = trace_path(task, data_dir)
    trace = read_trace(path)
    key = cache_key(task, trace)
    file = _cache_file(key)
    got = _read_cache(file, key)
    if isinstance(got, Stream):
        return got
    check_cache_folder()
    emulator(task, trace)  # the game and the trace's actions checked before any message
    if progress:
        print(f"{task}: replaying {path.name} ({len(trace):,} frames) in ALE {key['ale_py']} "
              f"(cache {got}: {file})", file=sys.stderr, flush=True)  # fmt: skip
    t0 = time.monotonic()
    stream = replay(trace, task, progress)
    arrays = stream._asdict()
    meta = {"key": key, "digest": _digest(arrays), "seconds": time.monotonic() - t0}
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        f.write(buf.getvalue())
    os.replace(tmp, file)  # whole or not at all, also when two workers build it at once
    if progress:
        print(f"{task}: cached in {meta['seconds']:.0f} s", file=sys.stderr, flush=True)
    return stream


def describe(task: str, data_dir: str | None = None, gamma: float = GAMMA) -> str:
    """What a user checks a replay by: frames, episodes and their scores, rewards, returns."""
    stream = load_stream(task, data_dir)
    scores, unfinished = episode_scores(stream)
    g = returns(stream.rewards, gamma)
    r = stream.rewards
    lines = [
        f"{task}: {len(r):,} frames, {len(scores)} finished episodes "
        f"(+ {unfinished:g} points in the unfinished last)",
        "episode scores: " + (", ".join(f"{s:g}" for s in scores) or "none"),
        (f"score mean {np.mean(scores):.1f}, min {min(scores):g}, max {max(scores):g}"
         if scores else "no finished episode"),
        f"clipped rewards: {int((r > 0).sum()):,} positive, {int((r < 0).sum()):,} negative",
        f"return (gamma {gamma:g}): mean {g.mean():.4f}, variance {g.var():.4f}, "
        f"min {g.min():.3f}, max {g.max():.3f}",
    ]  # fmt: skip
    return "\n".join(lines)
