"""mlpcli: a command-line MNIST trainer whose multilayer perceptron is NumPy alone."""

import os

__version__ = "0.1.0"
DISTRIBUTION = "mlpcli-mnist"  # pip's name for mlpcli: "mlpcli" on PyPI is another project

# OpenBLAS's idle threads spin for 2^28 CPU cycles (~0.1 s) after each matrix product before
# they sleep, holding the core that the optimizer's second thread needs (mlpcli.parallel);
# 2^16 cycles (~25 µs) outlasts the gaps between one batch's products and no more. OpenBLAS
# reads this once, when NumPy loads it, so it is set here, before any part of mlpcli imports
# NumPy. A value already in the environment is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
