"""Planted bugs: do the tests catch them? Each bug is one small change to the code, of the kind
a person makes: an index off by one, a sign, a forgotten step, a copy of the wrong array. The
runner copies the project, plants each bug in turn, runs the test suite against the copy
(stopping at the first failure) and reports which bugs the tests caught ("killed") and which
they let through ("survived").

    python tests/planted_bugs.py                 every bug, against this checkout
    python tests/planted_bugs.py --only no-shuffle adam-no-bias-correction
    python tests/planted_bugs.py --check         that every bug still applies (seconds; .ci/run)
    python tests/planted_bugs.py --root ../old   another checkout (a bug whose code is not there: n/a, a failure)

It takes about ten minutes on two cores: a killed bug costs seconds, a surviving one the
whole suite. It is not a test itself (pytest does not collect it); run it when the tests or the
code they guard change. A bug that no test could tell from the real code (an equivalent
change) says why in `equivalent`.

A bug whose code has moved or gone ("n/a") fails the run, as a surviving one does: against this
checkout every bug must apply, or the test of the tests has stopped without a word. `--check`
looks at that alone, and that docs/testing.md counts the bugs there are.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Bug:
    id: str
    file: str  # under mlpcli/
    before: str  # text found exactly once in the file
    after: str
    equivalent: str = ""  # why no test can catch it, if none can


T, O, A, N, D, I, E, P, R = (
    "train.py",
    "optim.py",
    "augment.py",
    "nn/mlp.py",
    "data.py",
    "images.py",
    "evaluate.py",
    "predict.py",
    "training.py",
)
BUGS = [
    # --- the training loop ------------------------------------------------------------------
    Bug(
        "no-shuffle",
        T,
        "p.order = self.shuffle_rng.permutation(len(self.train.labels))",
        "p.order = np.arange(len(self.train.labels))",
    ),
    Bug(
        "shuffle-once",
        T,
        "p.order = self.shuffle_rng.permutation(len(self.train.labels))",
        "p.order = np.random.default_rng(0).permutation(len(self.train.labels))",
    ),
    Bug(
        "optimizer-ignores-schedule",
        T,
        "self.optimizer.step(model.params, model.grads, lr)",
        "self.optimizer.step(model.params, model.grads, self.config.lr)",
    ),
    Bug(
        "only-last-layer-learns",
        T,
        "self.optimizer.step(model.params, model.grads, lr)",
        "model.grads[: model.n_weights - model.layers[-1].W.size] = 0\n"
        "            self.optimizer.step(model.params, model.grads, lr)",
    ),
    Bug(
        "schedule-off-by-one",
        T,
        "learning_rate(self.config, self.position.epoch, self.schedule)",
        "learning_rate(self.config, self.position.epoch + 1, self.schedule)",
    ),
    Bug(
        "batch-drops-an-example",
        T,
        "index = p.order[start : start + batch_size]",
        "index = p.order[start : start + batch_size - 1]",
    ),
    Bug(
        "resume-restarts-the-epoch",
        T,
        "starts = range(p.batch * batch_size, len(p.order), batch_size)",
        "starts = range(0, len(p.order), batch_size)",
    ),
    Bug("train-loss-unweighted", T, "p.loss_sum += loss * len(index)", "p.loss_sum += loss * batch_size"),
    Bug(
        "train-accuracy-counts-wrong",
        T,
        "correct = int(np.count_nonzero(Z.argmax(axis=1) == self.train.labels[index]))",
        "correct = int(np.count_nonzero(Z.argmax(axis=1) == self.train.labels[np.sort(index)]))",
    ),
    Bug(
        "targets-out-of-step",
        T,
        "np.take(self.targets, index, axis=0, out=Y)",
        "np.take(self.targets, np.sort(index), axis=0, out=Y)",
    ),
    Bug("augmentation-never-applied", T, "pixels = self.augmenter(pixels)", "pixels = pixels"),
    Bug("kept-weights-never-copied", T, "np.copyto(self.kept_params, self.model.params)", "pass"),
    Bug(
        "last-weights-not-kept-ones",
        T,
        "        np.copyto(self.model.params, self.kept_params)\n        return True",
        "        return True",
    ),
    Bug(
        "patience-ignored",
        T,
        "history.stopped_early = history.patience_ran_out(self.config.patience)",
        "history.stopped_early = False",
    ),
    Bug(
        "checkpoint-off-schedule",
        T,
        "if self.position.epoch % self.config.checkpoint_every == 0 or self.finished:",
        "if self.finished:",
    ),
    Bug(
        "blow-up-never-seen",
        T,
        "if max(losses) > BLOWN_UP * start:",
        "if max(losses) > BLOWN_UP * start * 1e6:",
    ),
    Bug(
        "chance-alone-is-divergence",
        T,
        "if accuracy <= self.chance + CHANCE_MARGIN and train_loss > WORSE * start:",
        "if accuracy <= self.chance + CHANCE_MARGIN or train_loss > WORSE * start:",
    ),
    Bug("resume-loses-the-order", T, 'order=arrays.get("order"))', "order=None)"),
    Bug(
        "resume-forgets-early-stop",
        T,
        "        self.history.stopped_early = self.history.patience_ran_out(self.config.patience)  # this config's",
        "        pass",
    ),
    # --- the keep rule ------------------------------------------------------------------------
    Bug(
        "ties-to-the-higher-loss",
        T,
        "return (record.val_accuracy, -record.val_loss) > (kept.val_accuracy, -kept.val_loss)",
        "return (record.val_accuracy, record.val_loss) > (kept.val_accuracy, kept.val_loss)",
    ),
    Bug(
        "best-loss-is-the-highest",
        T,
        "return record.val_loss < kept.val_loss",
        "return record.val_loss > kept.val_loss",
    ),
    Bug(
        "patience-one-late",
        T,
        "len(self.epochs) - self.kept_epoch >= patience",
        "len(self.epochs) - self.kept_epoch > patience",
    ),
    # --- schedules and optimizers ---------------------------------------------------------------
    Bug(
        "cosine-upside-down",
        O,
        "0.5 * (1 + math.cos(math.pi * (epoch - start)",
        "0.5 * (1 - math.cos(math.pi * (epoch - start)",
    ),
    Bug(
        "step-schedule-cycles",
        O,
        "config.gamma ** (epoch // config.step_size)",
        "config.gamma ** (epoch % config.step_size)",
    ),
    Bug("resumed-curve-jumps", O, "new = Schedule(epoch, reached)", "new = Schedule(0, 1.0)"),
    Bug("finished-curve-stays-at-zero", O, "if reached > 0:", "if reached >= 0:"),
    Bug(
        "adam-no-bias-correction",
        O,
        "lr_step = lr * (1 - b1) / (1 - b1**self.t) * root",
        "lr_step = lr * (1 - b1) * root",
    ),
    Bug("adam-second-moment-of-g", O, "np.multiply(grads, grads, out=grads)", "np.abs(grads, out=grads)"),
    Bug("adam-forgets-t-on-resume", O, 'self.t = int(state["t"])', "self.t = 0"),
    Bug(
        "sgd-forgets-velocity-on-resume",
        O,
        "        if self.velocity is not None:\n            np.copyto(self.velocity, state",
        "        if self.velocity is None:\n            np.copyto(self.velocity, state",
    ),
    Bug(
        "sgd-never-flushes",
        O,
        "        for buffer in (params, *self.state().values()):",
        "        for buffer in ():",
    ),
    Bug(
        "weights-never-flushed",
        O,
        "        for buffer in (params, self.u, self.w):",
        "        for buffer in (self.u, self.w):",
    ),
    Bug("momentum-never-decays", O, "    velocity *= mu\n", "    velocity *= 1.0\n"),
    Bug("nesterov-is-plain-momentum", O, "    if nesterov:\n", "    if False:\n"),
    # --- dropout --------------------------------------------------------------------------------
    Bug(
        "dropout-keeps-the-dropped",
        "nn/layers.py",
        "mask = np.less(uniform, keep,",
        "mask = np.greater_equal(uniform, keep,",
    ),
    Bug(
        "dropout-not-inverted",
        "nn/layers.py",
        "mask *= A.dtype.type(1.0 / keep)",
        "mask *= A.dtype.type(1.0)",
    ),
    Bug(
        "dropout-not-back-propagated",
        N,
        "                delta *= self.masks[l - 1]  # through the dropout of a^l",
        "                pass",
    ),
    Bug(
        "weight-decay-doubled",
        "nn/base.py",
        "self.grads[: self.n_weights] += decay",
        "self.grads[: self.n_weights] += 2 * decay",
    ),
    # --- splits and data --------------------------------------------------------------------------
    Bug("validation-leaks-into-training", D, "np.sort(order[config.validation :])", "np.sort(order)"),
    Bug(
        "validation-ignores-the-seed",
        D,
        "order = np.random.default_rng(seed).permutation(len(full))",
        "order = np.random.default_rng(0).permutation(len(full))",
    ),
    Bug("normalisation-multiplies", D, "out *= scalar(1.0 / self.std)", "out *= scalar(self.std / 255)"),
    Bug(
        "labels-of-10-allowed",
        D,
        "if labels.size and labels.max() >= N_CLASSES:",
        "if labels.size and labels.max() > N_CLASSES:",
    ),
    Bug(
        "shipped-copy-unchecked",
        D,
        'if self.kind == "shipped" and KNOWN_SPLITS.get(fingerprint(dataset)) != (self.name, split):',
        "if False:",
    ),
    Bug(
        "no-fallback-offline",
        D,
        '        if config.name not in SHIPPED:\n            raise DataError(f"{e} to download',
        '        if True:\n            raise DataError(f"{e} to download',
    ),
    # --- augmentation ----------------------------------------------------------------------------
    Bug(
        "scale-inverted",
        A,
        "cos, sin = np.cos(angle) / scale, np.sin(angle) / scale",
        "cos, sin = np.cos(angle) * scale, np.sin(angle) * scale",
    ),
    Bug(
        "rotation-sheared",
        A,
        "source_y = np.rint(cos * y - sin * x + centre[0])",
        "source_y = np.rint(cos * y + sin * x + centre[0])",
    ),
    Bug("mirror-ignored", A, "    x = x * mirror\n", "    x = x\n"),
    Bug(
        "shift-one-sided",
        A,
        "self.rng.integers(-self.shift, self.shift + 1, size=(2, n))",
        "self.rng.integers(-self.shift, self.shift, size=(2, n))",
    ),
    Bug("outside-reads-the-edge", A, "    outside = shift + 1\n", "    outside = shift\n"),
    # --- elastic distortions ---
    Bug(
        "elastic-alpha-dropped",
        A,
        "config.alpha * gaussian_smoother(rows, config.sigma)",
        "gaussian_smoother(rows, config.sigma)",
    ),
    Bug("elastic-noise-not-centred", A, "        noise -= 1.0  # U[-1, 1)\n", "\n"),
    Bug(
        "elastic-smoothed-along-one-axis",
        A,
        "np.matmul(half.reshape(-1, cols), smooth_cols.T, out=out.reshape(-1, cols))",
        "np.copyto(out, half)",
    ),
    Bug("gaussian-unnormalised", A, ") / taps.sum()", ")"),
    Bug("gaussian-untruncated", A, "np.where(offsets <= radius,", "np.where(offsets >= 0,"),
    Bug(
        "bilinear-rows-weighted-by-columns",
        A,
        "        _between(upper, lower, y)\n",
        "        _between(upper, lower, x)\n",
    ),
    Bug(
        "bilinear-edge-repeated",
        A,
        "np.clip(np.add(self.grid[0], field[:, 0], out=y), -1, rows, out=y)",
        "np.clip(np.add(self.grid[0], field[:, 0], out=y), 0, rows - 1, out=y)",
    ),
    Bug(
        "bilinear-columns-unclipped",
        A,
        "np.clip(np.add(self.grid[1], field[:, 1], out=x), -1, cols, out=x)",
        "np.add(self.grid[1], field[:, 1], out=x)",
    ),
    Bug("bilinear-margin-too-thin", A, "    MARGIN = 2  # of zeros", "    MARGIN = 1  # of zeros"),
    Bug(
        "predict-images-before-runs",
        "cli.py",
        "    late = [str(path) for path in images if is_run(path)]",
        "    late = []",
    ),
    Bug(
        "elastic-unseeded",
        A,
        "        self.rng = rng\n        # α folded",
        "        self.rng = np.random.default_rng()\n        # α folded",
    ),
    Bug("elastic-alpha-unbounded", "config.py", "Check(lambda v: 0 <= v <= 1000,", "Check(lambda v: 0 <= v,"),
    Bug("elastic-alone-is-off", A, " or config.flip or config.elastic.alpha)", " or config.flip)"),
    # --- image preparation and predict ---------------------------------------------------------
    Bug(
        "ink-the-wrong-way",
        I,
        "deviation = background - grey if darker >= lighter else grey - background",
        "deviation = background - grey if darker < lighter else grey - background",
    ),
    Bug(
        "centre-of-mass-mirrored",
        I,
        "top, left = round(FIELD / 2 - centre_row), round(FIELD / 2 - centre_col)",
        "top, left = round(FIELD / 2 - centre_col), round(FIELD / 2 - centre_row)",
    ),
    Bug(
        "fitted-to-the-shorter-side",
        I,
        "scale, strokes = BOX / max(ink.shape), ink >= 0.5",
        "scale, strokes = BOX / min(ink.shape), ink >= 0.5",
    ),
    Bug("noise-taken-for-ink", I, "noise = NOISE * 1.4826 *", "noise = 0 * 1.4826 *"),
    Bug("thin-strokes-kept-thin", I, "    if width * scale < THIN:\n", "    if width * scale < 0:\n"),
    Bug(
        "predict-least-probable-first",
        P,
        'ranked = np.argsort(-scores, kind="stable")[:top]',
        'ranked = np.argsort(scores, kind="stable")[:top]',
    ),
    Bug(
        "predict-unnormalised",
        "committee.py",
        "m.saved.model.scores(m.saved.norm.apply(pixels))",
        "m.saved.model.scores(pixels.astype(np.float32))",
    ),
    Bug("predict-top-fixed", P, "[:top]", "[:3]"),
    # --- evaluation -----------------------------------------------------------------------------
    Bug(
        "top-k-needs-all",
        E,
        "(self.ranked == self.labels[:, None]).any(axis=1)",
        "(self.ranked == self.labels[:, None]).all(axis=1)",
    ),
    Bug(
        "confusion-transposed",
        E,
        "np.add.at(confusion, (self.labels, self.predicted), 1)",
        "np.add.at(confusion, (self.predicted, self.labels), 1)",
    ),
    Bug(
        "precision-is-recall", E, "precision = _share(right, predicted)", "precision = _share(right, support)"
    ),
    Bug(
        "chunk-loss-unweighted",
        E,
        "one_hot(labels[rows], Z.shape[1], Z.dtype)) * len(Z)",
        "one_hot(labels[rows], Z.shape[1], Z.dtype)) * CHUNK",
    ),
    Bug(
        "mistakes-least-confident-first",
        E,
        'return wrong[np.argsort(-self.confidence[wrong], kind="stable")]',
        'return wrong[np.argsort(self.confidence[wrong], kind="stable")]',
    ),
    # --- resume -----------------------------------------------------------------------------------
    Bug("resume-lets-batch-size-change", R, '    "train.batch_size",\n', ""),
    Bug("resume-lets-beta1-change", R, '    "train.beta1",  # Adam', '    # "train.beta1",  # Adam'),
    Bug(
        "resume-never-reschedules",
        R,
        "            note = trainer.reschedule(before.train)",
        '            note = ""',
    ),
    # --- the RNN ----------------------------------------------------------------------------------
    Bug(
        "rnn-delta-garbled",
        "nn/rnn.py",
        "return self.V.T @ error + self.W.T @ r_next",
        "return 7 * self.V.T @ error + self.W.T @ (r_next + 1)",
    ),
    Bug(
        "rnn-tanh-derivative",
        "nn/rnn.py",
        "r = (1 - self.hs[t] ** 2) * delta",
        "r = (1 - self.hs[t]) * delta",
    ),
    Bug(
        "rnn-W-against-h-t",
        "nn/rnn.py",
        'grad["W"] += np.outer(r, self.hs[t - 1])',
        'grad["W"] += np.outer(r, self.hs[t])',
    ),
    # --- the batched many-to-one RNN (model.kind: rnn) and clipping -----------------------------
    Bug(
        "batched-rnn-wrong-tanh-derivative",
        "nn/activations.py",
        "np.subtract(1, out, out=out)  # σ' = 1 - a²",
        "np.subtract(1, a, out=out)  # σ' = 1 - a",
    ),
    Bug(
        "batched-rnn-W-against-h-t",
        "nn/rnn.py",
        "h_before = self.hs[1:T].reshape((T - 1) * B, H)",
        "h_before = self.hs[2 : T + 1].reshape((T - 1) * B, H)",
    ),
    Bug(
        "batched-rnn-no-recurrent-term",
        "nn/rnn.py",
        "np.matmul(rs[t], self.W, out=rs[t - 1])  # ∂C/∂h^(t) = Wᵀ r^(t+1), row-wise",
        "rs[t - 1][...] = 0",
    ),
    Bug(
        "batched-rnn-slope-of-the-next-step",
        "nn/rnn.py",
        "rs[t - 1] *= slopes[t - 1]  # r^(t) = ∂C/∂h^(t) ⊙ σ'(z^(t))",
        "rs[t - 1] *= slopes[t]",
    ),
    Bug(
        "batched-rnn-slopes-one-step-early",
        "nn/rnn.py",
        "self.activation.derivative(self.hs[1:], out=slopes)",
        "self.activation.derivative(self.hs[:-1], out=slopes)",
    ),
    Bug(
        "batched-rnn-W-not-transposed-back",
        "nn/rnn.py",
        "np.matmul(rs[t], self.W, out=rs[t - 1])",
        "np.matmul(rs[t], self.W.T, out=rs[t - 1])",
    ),
    Bug(
        "batched-rnn-forward-with-W-transposed",
        "nn/rnn.py",
        "hs[t] += np.matmul(hs[t - 1], self.W.T, out=carried)",
        "hs[t] += np.matmul(hs[t - 1], self.W, out=carried)",
    ),
    Bug(
        "batched-rnn-no-dropout-backward",
        "nn/rnn.py",
        "rs[T - 1] *= self.mask  # through the dropout of h^(T)",
        "pass",
    ),
    Bug(
        "clip-inverted", T, "grads *= grads.dtype.type(clip / norm)", "grads *= grads.dtype.type(norm / clip)"
    ),
    Bug("clip-never", T, "if not norm > clip:", "if True:"),
    Bug("clip-not-counted", T, "p.clipped += clipped", "p.clipped += 0"),
    Bug(
        "old-history-unreadable",
        "runs.py",
        "if any(row.get(column) is None for column in REQUIRED_COLUMNS):",
        "if any(row.get(column) is None for column in HISTORY_COLUMNS):",
    ),
    Bug("old-weights-of-no-kind", "artifacts.py", '"kind": "mlp",  # files', '"kind": "rnn",  # files'),
    # --- mlp sweep ----------------------------------------------------------------------------
    Bug(
        "sweep-objective-is-test",
        "sweep.py",
        'return metrics["kept_val_accuracy"]',
        'return metrics["test_accuracy"]',
    ),
    Bug(
        "sweep-never-prunes",
        "sweep.py",
        "            if not trial.should_prune():",
        "            if True:",
    ),
    Bug(
        "sweep-no-retry",
        "sweep.py",
        "heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),",
        "",
    ),
    Bug("sweep-best-is-worst", "sweep.py", "best = max(done, key=", "best = min(done, key="),
    Bug("sweep-space-unchecked", "sweep.py", "        _check_value(key, candidate, base)", "        pass"),
    Bug("sweep-ignores-fixed", "sweep.py", "    if key in fixed:", "    if False:"),
    Bug(
        "sweep-no-waiting",
        "sweep.py",
        "        time.sleep(heartbeat)  # the last trials",
        "        return True  # the last trials",
    ),
    Bug(
        "sweep-seed-past-the-range",
        "sweep.py",
        "return (spec.seed + held) % (MAX_SEED + 1)",
        "return spec.seed + held",
    ),
    Bug("sweep-stopped-trials-are-failures", "sweep.py", 'and not t.user_attrs.get("stopped")', ""),
    Bug(
        "sweep-password-shown",
        "sweep.py",
        'credentials = credentials[:start] + user + (":***" if colon else "")',
        "credentials = credentials",
    ),
    Bug("sweep-password-in-query-shown", "sweep.py", 'PASSWORD_QUERY.sub(r"\\1***", rest)', "rest"),
    Bug(
        "sweep-models-unchecked",
        "sweep.py",
        "            check_config(from_dict(with_values(base, chosen)), MNIST_SHAPE, N_CLASSES)",
        "            from_dict(with_values(base, chosen))",
    ),
    Bug(
        "sweep-storage-lost-unsaid",
        "sweep.py",
        "failure = lost[0] if lost else _storage_failure(e)",
        "failure = None",
    ),
    Bug(
        "sweep-data-found-by-every-trial",
        "sweep.py",
        "    if not source.note:\n        return spec",
        "    return spec",
    ),
    Bug(
        "sweep-prunes-silently",
        "sweep.py",
        '        echo(\n            f"trial {trial.number} pruned after epoch',
        '        (lambda line: None)(\n            f"trial {trial.number} pruned after epoch',
    ),
    Bug("sweep-step-unbounded", "sweep.py", "(high - low) / step > MAX_STEPS", "False"),
    # --- what a person sees -------------------------------------------------------------------
    Bug(
        "stderr-buffered",
        "output.py",
        "line_buffering=line_buffered or stream.line_buffering,",
        "line_buffering=stream.line_buffering,",
    ),
    Bug("epoch-line-unaligned", R, "cells = [value(r).rjust(width)", "cells = [value(r).ljust(width)"),
    Bug(
        "training-time-of-last-epoch",
        R,
        "return sum(record.seconds for record in records)",
        "return records[-1].seconds",
    ),
    Bug(
        "messages-not-wrapped", "cli.py", "    if len(line) <= width:\n        return line", "    return line"
    ),
    Bug(
        "tables-never-in-blocks",
        "tables.py",
        "if width is not None and len(blocks[-1]) > 1 and used + widths[i] > width:",
        "if False:",
    ),
    Bug(
        "help-loads-numpy",
        "cli.py",
        "from mlpcli import DISTRIBUTION, __version__, output",
        "from mlpcli import DISTRIBUTION, __version__, output, run  # noqa: F401",
    ),
    Bug(
        "runs-elsewhere-unsaid",
        "runs.py",
        "    return [(path, count) for path, count in counted if count]",
        "    return []",
    ),
    Bug(
        "misspelt-run-unhelped",
        "artifacts.py",
        'hint = f"; did you mean {target.parent / nearby}?" if nearby else ""',
        'hint = ""',
    ),
    Bug("model-size-unchecked", "models.py", "if memory is not None and needed > memory:", "if False:"),
    Bug(
        "eval-tries-the-network-again",
        E,
        'and read_from.get("source") == "shipped"',
        "and False",
    ),
    Bug(
        "curves-title-repeats-the-dataset",
        R,
        'said = name.partition("-")[0] == dataset',
        "said = False",
    ),
    Bug(
        "predict-top-unclamped",
        "cli.py",
        '"--top",\n    type=click.IntRange(min=1),',
        '"--top",\n    type=click.IntRange(min=1, max=10),',
    ),
    Bug(
        "predict-takes-any-rnn",
        "nn/base.py",
        "return self.input_shape in ((rows * columns,), (rows, columns))",
        "return math.prod(self.input_shape) == rows * columns",
    ),
    # --- run folders read as untrusted data -----------------------------------------------------
    Bug(
        "run-file-follows-links",
        "artifacts.py",
        "    status = os.lstat(path)\n",
        "    status = os.stat(path)\n",
    ),
    Bug(
        "run-file-links-only-beside",
        "artifacts.py",
        "        if path.parent.resolve() not in target.parents:",
        "        if target.parent != path.parent.resolve():",
    ),
    Bug(
        "run-file-only-refuses-folders",
        "artifacts.py",
        "    if not stat.S_ISREG(status.st_mode):",
        "    if stat.S_ISDIR(status.st_mode):",
    ),
    Bug(
        "blocking-open",
        "artifacts.py",
        'os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)',
        'os.O_RDONLY | getattr(os, "O_BINARY", 0)',
    ),
    Bug(
        "opened-file-identity-unchecked",
        "artifacts.py",
        "!= (checked.st_dev, checked.st_ino):",
        "!= (status.st_dev, status.st_ino):",
    ),
    Bug(
        "opened-file-not-rechecked",
        "artifacts.py",
        "        _check_status(path.name, status, limit)\n        yield f",
        "        yield f",
    ),
    Bug(
        "json-read-with-weights-cap",
        "artifacts.py",
        "    value = _parsed(path, json.loads, read_run_text(path, JSON_LIMIT))",
        "    value = _parsed(path, json.loads, read_run_text(path, WEIGHTS_LIMIT))",
    ),
    Bug(
        "deep-json-unguarded",
        "artifacts.py",
        "    value = _parsed(path, json.loads, read_run_text(path, JSON_LIMIT))",
        "    value = json.loads(read_run_text(path, JSON_LIMIT))",
    ),
    Bug(
        "deep-run-yaml-unguarded",
        "artifacts.py",
        "    return _parsed(path, yaml_mapping, read_run_text(path, CONFIG_LIMIT), path)",
        "    return yaml_mapping(read_run_text(path, CONFIG_LIMIT), path)",
    ),
    Bug(
        "weights-read-with-checkpoint-cap",
        "artifacts.py",
        "weights = _npz(path, WEIGHTS_LIMIT, WeightsError,",
        "weights = _npz(path, CHECKPOINT_LIMIT, WeightsError,",
    ),
    Bug(
        "declared-total-counts-compressed",
        "artifacts.py",
        "declared = sum(entry.size for entry in entries.values())",
        "declared = sum(entry.info.compress_size for entry in entries.values())",
    ),
    Bug(
        "header-lie-checked-one-way",
        "artifacts.py",
        "        if header + entry.nbytes != info.file_size:",
        "        if header + entry.nbytes < info.file_size:",
    ),
    Bug(
        "any-dtype-read",
        "artifacts.py",
        "        if dtype.kind not in NUMBERS_OR_TEXT:",
        '        if dtype.kind == "O":',
    ),
    Bug(
        "small-entries-not-capped",
        "artifacts.py",
        "        if entries[name].size > SMALL_ENTRY_LIMIT:",
        "        if entries[name].size > WEIGHTS_LIMIT:",
    ),
    Bug(
        "unknown-weights-entries-allowed",
        "artifacts.py",
        "    unknown = sorted(entries.keys() - layout.keys() - set(small))",
        "    unknown = sorted(layout.keys() - entries.keys())",
    ),
    Bug(
        "unknown-checkpoint-entries-allowed",
        "artifacts.py",
        'name for name in entries if name not in CHECKPOINT_ENTRIES and not name.startswith("optimizer_")',
        'name for name in entries if name not in CHECKPOINT_ENTRIES and name.startswith("optimizer_")',
    ),
    Bug(
        "checkpoint-copies-compared-by-count",
        "artifacts.py",
        'if name not in ("meta", "order") and entry.nbytes > entries["params"].nbytes:',
        'if name not in ("meta", "order") and math.prod(entry.shape) > entries["params"].nbytes:',
    ),
    Bug(
        "checkpoint-meta-uncapped",
        "artifacts.py",
        '    if entries["meta"].nbytes > JSON_LIMIT:',
        '    if entries["meta"].nbytes > CHECKPOINT_LIMIT:',
    ),
    Bug(
        "user-yaml-read-whole",
        "config.py",
        "            data = f.read(YAML_LIMIT + 1)",
        "            data = f.read()",
    ),
    Bug(
        "deep-user-yaml-unguarded",
        "config.py",
        "    except (RecursionError, MemoryError) as e:\n        raise ConfigError",
        "    except MemoryError as e:\n        raise ConfigError",
    ),
    Bug(
        "runs-hides-why-a-file-is-refused",
        "runs.py",
        "            run.problems.append(str(e))",
        '            run.problems.append(f"{name} unreadable ({type(e).__name__})")',
    ),
    Bug(
        "served-file-follows-links",
        "serve.py",
        "artifacts.read_run_bytes(catalogue.path(name) / file, limit), media_type=media_type",
        "(catalogue.path(name) / file).read_bytes(), media_type=media_type",
    ),
    Bug(
        "served-json-nests-without-end",
        "artifacts.py",
        "    if _deeper_than(value, MAX_NESTING):",
        "    if _deeper_than(value, 10**6):",
    ),
    # --- mlp serve against slow and hostile clients, and phone photos ---------------------------
    Bug(
        "evicts-the-newest-connection",
        "connections.py",
        "longest = min(waiting, key=lambda c: c.waiting_since)",
        "longest = max(waiting, key=lambda c: c.waiting_since)",
    ),
    Bug(
        "evicted-counted-until-gone",
        "connections.py",
        "            self.connections.discard(longest)",
        "            pass",
    ),
    Bug(
        "head-cap-checked-after-the-head",
        "connections.py",
        "if self.in_head and self.head_bytes > MAX_HEAD",
        "if not self.in_head and self.head_bytes > MAX_HEAD",
    ),
    Bug(
        "body-waits-without-end",
        "connections.py",
        "        self._expect(REQUEST_SECONDS)\n        super().on_headers_complete()",
        "        self._stop_expecting()\n        super().on_headers_complete()",
    ),
    Bug(
        "shutdown-waits-for-idle-connections",
        "connections.py",
        "        if self.waiting_since is not None:\n            self.transport.abort()",
        "        if self.waiting_since is None:\n            self.transport.abort()",
    ),
    Bug(
        "large-body-refused-unread",
        "serve.py",
        "int(declared) > (MAX_BODY if waits else DRAINED)",
        "int(declared) > MAX_BODY",
    ),
    Bug("form-sent-whole", "serve.py", "    return await uploads[0].read()", "    return body"),
    Bug(
        "decoding-without-a-clock",
        "serve.py",
        '"the image", MAX_PIXELS, FORMATS, DECODE_SECONDS)',
        '"the image", MAX_PIXELS, FORMATS)',
    ),
    Bug(
        "large-images-kept-whole",
        I,
        "    return image.reduce(factor) if factor > 1 else image",
        "    return image",
    ),
    Bug(
        "infinite-pixels-stretched",
        I,
        "        if not np.isfinite(values).all():",
        "        if np.isnan(values).all():",
    ),
    Bug(
        "serve-answers-nan",
        "serve.py",
        "        if not np.isfinite(scores).all():\n            raise HTTPException(409",
        "        if np.isnan(scores).all():\n            raise HTTPException(409",
    ),
    Bug(
        "predict-prints-nan",
        P,
        '            if not np.isfinite(scores).all():\n                raise WeightsError(f"{member.path}: {NOT_FINITE}")\n',
        "            pass\n",
    ),
    Bug(
        "failed-loads-tried-again",
        "serve.py",
        "                except MlpError as e:\n                    loaded = str(e)",
        "                except MlpError as e:\n                    raise HTTPException(409, str(e)) from None",
    ),
    Bug(
        "stalled-reader-kept",
        "connections.py",
        "self.stalled = self.loop.call_later(REQUEST_SECONDS, self.transport.abort)",
        "self.stalled = None",
    ),
    Bug(
        "head-measured-by-reads-only",
        "connections.py",
        "for name, value in self.headers) > MAX_HEAD:",
        "for name, value in self.headers) > 16 * MAX_HEAD:",
    ),
    Bug(
        "hup-restarts-workers",
        "serve.py",
        "uvicorn's own restarts the workers\n            self.should_exit.set()",
        "uvicorn's own restarts the workers\n            super().handle_hup()",
    ),
    Bug(
        "runs-linked-from-outside-served",
        "serve.py",
        "if path.resolve().is_relative_to(self.target)",
        "if path.is_relative_to(self.target)",
    ),
    Bug("serve-on-one-core", "cli.py", '"--workers",\n    default=2,', '"--workers",\n    default=1,'),
    Bug(
        "ctrl-c-not-told",
        "serve.py",
        "            self.interrupted = True",
        "            self.interrupted = False",
    ),
    Bug(
        "host-check-on-three-names-only",
        "serve.py",
        "names if is_loopback(bound) else None",
        'names if bound in ("127.0.0.1", "::1") else None',
    ),
    # --- mlp export, run in onnxruntime (test_export.py) -------------------------------------
    Bug(
        "export-without-normalisation",
        "export.py",
        '    x = graph.node("Mul", x, graph.constant("inverse_std", np.float32(1.0 / saved.norm.std)))\n',
        "",
    ),
    Bug(
        "export-weight-transposed",
        N,
        '            z = graph.node("Gemm", a, W, b, transB=1)',
        '            z = graph.node("Gemm", a, W, b, transB=int(W != "W2"))',
    ),
    Bug(
        "export-rnn-rows-as-columns",
        "nn/rnn.py",
        '        rows = graph.node("Transpose", x, perm=[1, 0, 2])',
        '        rows = graph.node("Transpose", x, perm=[2, 0, 1])',
    ),
    Bug(
        "export-rnn-bias-twice",
        "nn/rnn.py",
        "        bias = np.concatenate([self.b, np.zeros(H, self.b.dtype)])[None]",
        "        bias = np.concatenate([self.b, self.b])[None]",
    ),
    Bug(
        "export-softmax-over-the-batch",
        "nn/losses.py",
        '        return graph.node("Softmax", z, axis=1)',
        '        return graph.node("Softmax", z, axis=0)',
    ),
    Bug(
        "export-mse-scores-unclipped",
        "nn/losses.py",
        '        a = graph.node("Relu", self.onnx_predict(graph, z))',
        "        a = self.onnx_predict(graph, z)",
    ),
    Bug("export-overwrites", "export.py", "    if out.exists() and not overwrite:", "    if False:"),
    Bug(
        "export-accuracy-unsaid",
        "export.py",
        '        "test_accuracy": f"{accuracy:.4f}" if isinstance(accuracy, float) and math.isfinite(accuracy) else "",',
        '        "test_accuracy": "",',
    ),
    Bug(
        "api-inputs-unnormalised",
        "api.py",
        "        return self.normalisation.apply(batch.reshape(len(batch), FIELD * FIELD))",
        "        return batch.reshape(len(batch), -1).astype(np.float32)",
    ),
    Bug(
        "api-evaluates-validation",
        "api.py",
        '    def evaluate(self, split: str = "test", progress: bool = False) -> dict:',
        '    def evaluate(self, split: str = "validation", progress: bool = False) -> dict:',
    ),
    Bug(
        "api-files-unprepared",
        "api.py",
        "        return to_mnist(read_image(image), str(image))",
        "        from PIL import Image as I; return np.asarray(I.open(image).convert('L').resize((28, 28)))",
    ),
    Bug(
        "eval-json-mixed-with-the-report",
        "cli.py",
        "functools.partial(say, err=True) if as_json else say",
        "say",
    ),
    # --- the backward pass on the page (test_backprop.py) -----------------------------------
    Bug(
        "page-step-button-dead",
        "web/app.js",
        '$("bp-step").addEventListener("click", () => takeStep().catch(panelError));',
        "",
    ),
    Bug(
        "page-backprop-without-session",
        "web/app.js",
        '(blob) => posted("/api/backprop", { top: "10", session: SESSION, ...(label',
        '(blob) => posted("/api/backprop", { top: "10", ...(label',
    ),
    Bug("page-requests-pile-up", "web/app.js", "    if (inFlight) {", "    if (false) {"),
    Bug(
        "delta-without-hadamard",
        N,
        "            self.activation.backward(delta, self.hidden_outputs[l - 1])  # ⊙ σ'(z^l)\n",
        "",
    ),
    Bug(
        "deltas-kept-before-hadamard",
        N,
        "            self.activation.backward(delta, self.hidden_outputs[l - 1])  # ⊙ σ'(z^l)\n            self.deltas.insert(0, delta)",
        "            self.deltas.insert(0, delta.copy())\n            self.activation.backward(delta, self.hidden_outputs[l - 1])  # ⊙ σ'(z^l)",
    ),
    Bug(
        "step-deltas-reversed",
        "nn/rnn.py",
        "self.deltas, self.step_deltas = [delta], rs",
        "self.deltas, self.step_deltas = [delta], rs[::-1]",
    ),
    Bug(
        "step-writes-the-run",
        "serve.py",
        "            twin = network.copy(params)",
        "            twin = network if kept is None else network.copy(params)",
    ),
    Bug(
        "copies-in-the-served-folder",
        "serve.py",
        "*backprop_routes(catalogue, backprop.Copies(copies), workers)",
        "*backprop_routes(catalogue, backprop.Copies(next(target.iterdir())), workers)",
    ),
    Bug(
        "step-ascends",
        "backprop.py",
        "    network.params -= network.grads  # θ ← θ − η ∇C(θ)",
        "    network.params += network.grads  # θ ← θ − η ∇C(θ)",
    ),
    Bug(
        "step-lr-ignored",
        "backprop.py",
        "    network.grads *= network.grads.dtype.type(lr)",
        "    network.grads *= network.grads.dtype.type(0.001)",
    ),
    Bug(
        "step-label-ignored",
        "backprop.py",
        "    Y = _target(network, label, x.dtype)\n    before",
        "    Y = _target(network, 0, x.dtype)\n    before",
    ),
    Bug(
        "copies-uncapped",
        "backprop.py",
        "        for old in kept[COPIES:]:",
        "        for old in kept[COPIES * 10 :]:",
    ),
    Bug(
        "reset-keeps-the-copy",
        "backprop.py",
        "            self._path(session).unlink()",
        "            self._path(session).stat()",
    ),
    Bug(
        "units-least-first",
        "backprop.py",
        'largest = np.argsort(-np.abs(first_deltas), kind="stable")',
        'largest = np.argsort(np.abs(first_deltas), kind="stable")',
    ),
    Bug(
        "unit-gradient-of-another",
        "backprop.py",
        '"gradient": gradient[j].reshape(shape).copy()',
        '"gradient": gradient[largest[0]].reshape(shape).copy()',
    ),
    Bug("input-gradient-not-per-pixel", "backprop.py", "(grad_x[0] / norm.std)", "(grad_x[0] * 1.0)"),
    Bug(
        "slopes-of-another-layer",
        "backprop.py",
        "for a in activations[: max(len(deltas) - 1, 0)]]",
        "for a in activations[::-1][: max(len(deltas) - 1, 0)]]",
    ),
    Bug(
        "copies-per-worker",
        "serve.py",
        "functools.partial(make_app, target, names if is_loopback(bound) else None, copies)",
        "functools.partial(make_app, target, names if is_loopback(bound) else None)",
    ),
    Bug(
        "copies-left-behind",
        "serve.py",
        '    with tempfile.TemporaryDirectory(prefix="mlpcli-copies-") as copies:',
        '    if copies := tempfile.mkdtemp(prefix="mlpcli-copies-"):',
    ),
    Bug(
        "lr-floor-open",
        "backprop.py",
        "MIN_LR = 1e-8",
        "MIN_LR = 0.0",
    ),
    Bug(
        "steps-unlocked-across-workers",
        "backprop.py",
        '        with self.lock, locks.waited(self._existing() / ".lock"):',
        "        with self.lock:",
    ),
    Bug(
        "steps-from-any-site",
        "serve.py",
        "    async def step_image(request: Request) -> Response:\n        _same_site(request)\n",
        "    async def step_image(request: Request) -> Response:\n",
    ),
    Bug(
        "origin-unread",
        "serve.py",
        '        origin is not None and origin.partition("://")[2] != request.headers.get("host")',
        "        False",
    ),
    Bug(
        "damaged-copy-a-500",
        "backprop.py",
        "except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):",
        "except (OSError, ValueError, KeyError):",
    ),
    Bug(
        "lost-copies-folder-not-remade",
        "backprop.py",
        "            self.folder.mkdir(mode=0o700, exist_ok=True)",
        "            pass",
    ),
    Bug(
        "overflowed-deltas-answered",
        "backprop.py",
        "    return all(np.isfinite(a).all() for a in arrays if a is not None)",
        "    return True",
    ),
    Bug(
        "lr-any-float",
        "serve.py",
        "    if number is None or not backprop.MIN_LR",
        "    if not backprop.MIN_LR",
    ),
    # --- committees ---
    Bug(
        "committee-of-its-first",
        "committee.py",
        "    return total / len(member_scores)\n",
        "    return member_scores[0].astype(float)\n",
    ),
    Bug(
        "committee-dataset-unchecked",
        "committee.py",
        '        ("learnt", member.saved.dataset),',
        '        ("learnt", "MNIST"),',
    ),
    Bug(
        "committee-of-mse-scores",
        "committee.py",
        '        if member.saved.model.output.score_name != "probability":',
        "        if False:",
    ),
    Bug(
        "committee-of-one-mse-refused",
        "committee.py",
        "    for member in members if len(members) > 1 else ():",
        "    for member in members:",
    ),
    Bug(
        "run-in-its-first-epoch-not-a-run",
        "artifacts.py",
        "RUN_FILES = (WEIGHTS, CHECKPOINT, METRICS, CONFIG)",
        "RUN_FILES = (WEIGHTS, CHECKPOINT, METRICS)",
    ),
    Bug(
        "committee-member-named-twice",
        "committee.py",
        "        if resolved in named:",
        "        if False:",
    ),
    Bug(
        "committee-folder-not-claimed",
        E,
        "            found.mkdir(parents=True)",
        "            found.mkdir(parents=True, exist_ok=True)",
    ),
    Bug(
        "predict-committee-header-on-stdout",
        "cli.py",
        "{', '.join(map(str, members))}\", err=True)",
        "{', '.join(map(str, members))}\")",
    ),
    Bug(
        "eval-of-an-image-unsaid",
        "cli.py",
        "    if images:\n        raise click.UsageError(",
        "    if False:\n        raise click.UsageError(",
    ),
    Bug(
        "committee-over-a-run",
        E,
        "    if held and not (held <= set(COMMITTEE_FILES) and",
        "    if False and not (held <= set(COMMITTEE_FILES) and",
    ),
    Bug(
        "committee-loss-of-the-first-member",
        E,
        "    of_label = np.take_along_axis(scores, labels[:, None], axis=1)[:, 0]",
        "    of_label = np.take_along_axis(member_scores[0], labels[:, None], axis=1)[:, 0]",
    ),
    Bug(
        "predict-committee-of-its-first",
        P,
        "        scores = mean_scores(member_scores)[0]\n",
        "        scores = member_scores[0][0]\n",
    ),
    Bug(
        "predict-any-folder-a-run",
        P,
        "        return any((path / name).exists() for name in artifacts.RUN_FILES)",
        "        return True",
    ),
    Bug(
        "committee-on-a-run-s-own-split",
        "cli.py",
        '    if len(targets) > 1 and split != "test":',
        "    if False:",
    ),
    Bug(
        "session-copy-not-shown",
        "serve.py",
        "        kept = None if session is None else copies.load(session, model.key)",
        "        kept = None",
    ),
    # --- data.validation = 0: every training image, no validation figures ---
    Bug(
        "no-validation-keeps-best", T, '    if n_validation == 0 and config.keep != "last":', "    if False:"
    ),
    Bug(
        "no-validation-validated",
        T,
        "        if not self.validated:\n            return math.nan, math.nan\n",
        "",
    ),
    Bug(
        "no-validation-start-loss-on-nothing",
        T,
        "            X, labels = self.norm.apply(self.train.images[:START_SAMPLE]), self.train.labels[:START_SAMPLE]",
        "            pass",
    ),
    Bug(
        "no-validation-diverges-on-nan",
        T,
        "losses = (train_loss, val_loss) if validated else (train_loss,)",
        "losses = (train_loss, val_loss)",
    ),
    Bug(
        "no-validation-nan-in-metrics",
        R,
        "validated = kept is not None and trainer.validated",
        "validated = kept is not None",
    ),
    Bug("no-validation-nan-in-epoch-lines", R, 'return "-" if math.isnan(value) else', "return"),
    Bug(
        "no-validation-nan-in-runs",
        "runs.py",
        '"val_acc": None if val is None or math.isnan(val) else val,',
        '"val_acc": val,',
    ),
    Bug(
        "no-validation-curves-drawn",
        "plots.py",
        'return not all(np.isnan(_column(rows, "val_loss")))',
        "return True",
    ),
    Bug(
        "no-validation-split-evaluated",
        E,
        'if split == "validation" and not config.data.validation:',
        "if False:",
    ),
    Bug(
        "no-validation-chance-unjudged",
        T,
        "accuracy = val_accuracy if validated else train_accuracy",
        "accuracy = val_accuracy",
    ),
    Bug(
        "eval-split-redrawn",
        E,
        'if split != "test" and any(parse_override(item)[0] == "data.validation"',
        'if False and any(parse_override(item)[0] == "data.validation"',
    ),
    Bug("no-validation-swept", "sweep.py", "    if not config.data.validation:\n", "    if False:\n"),
    Bug(
        "nohup-overridden",
        "cli.py",
        "for signum in STOP_SIGNALS if not output.ignored_on_entry(signum)]",
        "for signum in STOP_SIGNALS]",
    ),
    Bug(
        "nohup-serve-overridden",
        "serve.py",
        "        if nohup:  # its constructor",
        "        if False:  # its constructor",
    ),
]

# the order the test files run in: the fast and pointed ones first, so a bug is caught sooner
ORDER = [
    "test_activations.py", "test_layers.py", "test_losses.py", "test_mlp.py", "test_optim.py",
    "test_rnn.py", "test_augment.py", "test_evaluate.py", "test_learning.py", "test_train.py",
    "test_data.py", "test_config.py", "test_output.py", "test_sweep.py", "test_gradcheck.py", "test_parallel.py",
    "test_predict.py", "test_pictures.py", "test_resume.py", "test_runs.py", "test_cli.py", "test_screen.py",
    "test_honesty.py", "test_bad_inputs.py", "test_reliability.py", "test_properties.py", "test_artifacts.py", "test_untrusted_runs.py", "test_export.py", "test_python_api.py", "test_committee.py", "test_backprop.py", "test_serve_limits.py",
    "test_download.py", "test_end_to_end.py", "test_docs.py", "test_terminal.py",
]  # fmt: skip


def test_files(root: Path) -> list[str]:
    present = sorted(p.name for p in (root / "tests").glob("test_*.py"))
    return [
        f"tests/{name}"
        for name in [n for n in ORDER if n in present] + [n for n in present if n not in ORDER]
    ]


def run_tests(copy: Path, timeout: float) -> tuple[str, str]:
    """("killed" | "survived", the first failing test or what happened)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *test_files(copy)]
    env = os.environ | {"PYTHONPATH": str(copy)}  # the copy's mlpcli, not the installed one
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed", f"the tests ran out of time ({timeout:.0f} s)"
    if done.returncode == 0:
        return "survived", ""
    failed = re.search(r"^(FAILED|ERROR) (\S+)", done.stdout, re.M)
    return "killed", failed.group(2) if failed else f"pytest exited {done.returncode}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--only", nargs="*", help="the ids of the bugs to plant (default: all)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--check", action="store_true", help="only that every bug applies (no tests run)")
    args = parser.parse_args()
    bugs = [bug for bug in BUGS if not args.only or bug.id in args.only]
    if args.check:
        return check(args.root, bugs)
    with tempfile.TemporaryDirectory(prefix="planted-") as folder:
        copy = Path(folder) / "project"
        shutil.copytree(
            args.root, copy, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__")
        )
        outcomes = {}
        for bug in bugs:
            path = copy / "mlpcli" / bug.file
            original = path.read_text(encoding="utf-8") if path.is_file() else ""
            if original.count(bug.before) != 1:
                outcomes[bug.id] = ("n/a", f"the code to change is not in {bug.file} (or not once)")
            else:
                path.write_text(original.replace(bug.before, bug.after), encoding="utf-8")
                start = time.perf_counter()
                try:
                    outcome, detail = run_tests(copy, args.timeout)
                finally:
                    path.write_text(original, encoding="utf-8")
                detail = f"{detail} ({time.perf_counter() - start:.0f} s)".strip()
                outcomes[bug.id] = (outcome, detail)
            print(f"{bug.id:34} {outcomes[bug.id][0]:9} {outcomes[bug.id][1]}", flush=True)
    planted = [bug for bug in bugs if outcomes[bug.id][0] != "n/a"]
    killed = sum(outcomes[bug.id][0] == "killed" for bug in planted)
    equivalent = sum(bool(bug.equivalent) for bug in planted if outcomes[bug.id][0] == "survived")
    print(f"\n{killed} of {len(planted)} planted bugs killed ({equivalent} equivalent survivors)", end="")
    print(f"; {len(bugs) - len(planted)} not applicable to {args.root}" if len(planted) < len(bugs) else "")
    return 0 if killed + equivalent == len(planted) == len(bugs) else 1


COUNTED_IN = "docs/testing.md"  # where the number of planted bugs is written: "**N planted bugs**"


def check(root: Path, bugs: list[Bug]) -> int:
    """0 when every bug's code is in its file exactly once and the docs count them all; else
    1, naming each bug whose code has moved (re-aim it where the code went)."""
    problems = []
    for bug in bugs:
        path = root / "mlpcli" / bug.file
        found = path.read_text(encoding="utf-8").count(bug.before) if path.is_file() else 0
        if found != 1:
            problems.append(f"{bug.id}: its code is in mlpcli/{bug.file} {found} times, not once")
    applying = len(bugs) - len(problems)
    ids = [bug.id for bug in BUGS]
    problems += [f"{id_}: two bugs have this id" for id_ in sorted({i for i in ids if ids.count(i) > 1})]
    counted = re.search(r"\*\*(\d+) planted bugs\*\*", (root / COUNTED_IN).read_text(encoding="utf-8"))
    if counted is None or int(counted.group(1)) != len(BUGS):
        problems.append(f"{COUNTED_IN} should say **{len(BUGS)} planted bugs**")
    print(*problems, f"{applying} of {len(bugs)} planted bugs apply", sep="\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
