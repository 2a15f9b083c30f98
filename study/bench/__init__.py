"""``python -m study.bench``: learner throughput, printed as a table and written as CSV.

For every learner and size it times ``steps`` steps of the learner alone (a compiled
``lax.scan`` of ``learner.step`` over recorded testbed observations, ``vmap``-ed over
``streams`` independent streams) and reports steps per second per stream and parameter-steps
per second (steps x parameters, summed over streams). Compilation is excluded; each figure is
the median of ``--repeats`` timed calls. The fitted exponent ``b`` of ``time per step ~
params^b`` over the sizes of one learner says whether cost grows linearly with parameters.
"""

from study.bench.cli import main
from study.bench.crossover import CROSSOVER_MIN_STEPS, CROSSOVER_STREAMS, overtakes
from study.bench.timing import SIZES, build, machine, platforms, size_label

__all__ = [
    "CROSSOVER_MIN_STEPS",
    "CROSSOVER_STREAMS",
    "SIZES",
    "build",
    "machine",
    "main",
    "overtakes",
    "platforms",
    "size_label",
]
