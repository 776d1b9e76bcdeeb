"""edgecall: the call-centre edge appliance daemon."""

import os

# One BLAS thread per process, set before anything imports numpy. The box's cores are
# shared out by process (SIP, analysis and voice workers); OpenBLAS's own helper thread
# spins after every small matrix product (the turn model's log-mel, the emotion features)
# and cost a quarter of an analysed call's CPU (tests/bench/bench_analysis.py).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
