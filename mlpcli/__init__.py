"""mlpcli: a command-line MNIST trainer whose multilayer perceptron is NumPy alone, and its Python
API for notebooks and scripts (mlpcli/api.py):

    import mlpcli
    run = mlpcli.load_run("runs/mnist")          # a trained run: network, config, history, metrics
    run.predict(["seven.png"])                   # probabilities, the images prepared as mlp predict does
    run.evaluate()                               # what mlp eval reports, as a dict
    mlpcli.train_run("configs/mnist.yaml", out="runs/mine", overrides=["train.epochs=3"])
"""

__version__ = "0.1.0"
DISTRIBUTION = "mlpcli-mnist"  # pip's name for mlpcli: "mlpcli" on PyPI is another project
__all__ = ["Run", "load_run", "train_run"]  # not `train`: mlpcli.train is the training loop


def __getattr__(name: str):
    """The API, imported when first asked for: the command line starts without NumPy's import."""
    if name in __all__:
        from mlpcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
