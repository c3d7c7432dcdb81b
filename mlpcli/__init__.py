"""mlpcli: a command-line MNIST trainer whose multilayer perceptron is NumPy alone."""

__version__ = "0.1.0"
