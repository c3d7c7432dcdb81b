"""mlpcli: a command-line MNIST trainer whose multilayer perceptron is NumPy alone."""

__version__ = "0.1.0"
DISTRIBUTION = "mlpcli-mnist"  # pip's name for mlpcli: "mlpcli" on PyPI is another project
