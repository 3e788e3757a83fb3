"""`edgeport train MODEL`: seeded training with progress, writing artifacts/MODEL/."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.errors import EdgeportError
from edgeport.files import atomic_path, write_text_atomic
from edgeport.training_record import save_training_record
from edgeport.training.models import ModelSpec, get_spec
from edgeport.versions import package_versions
from edgeport.names import LABELS_FILE


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    target_accuracy: float | None
    seed: int = 0
    input_size: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise EdgeportError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise EdgeportError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise EdgeportError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise EdgeportError(f"--target-accuracy must be in (0, 1], got {self.target_accuracy}")
        if self.input_size is not None and self.input_size < 32:
            raise EdgeportError(f"--input-size must be at least 32, got {self.input_size}")


def accuracy_stop(target: float):
    """The course's callback: stop training once training accuracy reaches ``target``."""
    import keras

    class AccuracyStop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            acc = (logs or {}).get("accuracy")
            if acc is not None and acc >= target:
                print(f"\nreached {acc:.4f} training accuracy (target {target}): stopping")
                self.model.stop_training = True

    return AccuracyStop()


def _layers(layer) -> list:
    """``layer`` and every layer nested inside it."""
    return [layer] + [inner for child in getattr(layer, "layers", []) for inner in _layers(child)]


def recalibrate_batchnorm(model, dataset, max_batches: int = 100) -> int:
    """Re-estimate every BatchNorm layer's moving mean and variance over ``dataset`` (weights fixed):
    the image-weighted average of the batch statistics. Returns the number of images used.

    A network trained from scratch for a few epochs changes faster than Keras' moving averages
    (momentum 0.99-0.999) follow; in inference mode its outputs then collapse to one class."""
    import keras
    import numpy as np

    bns = [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    momenta = [bn.momentum for bn in bns]
    sums = [[np.zeros(bn.moving_mean.shape), np.zeros(bn.moving_variance.shape)] for bn in bns]
    seen = 0
    try:
        for bn in bns:
            bn.momentum = 0.0  # each call leaves exactly the batch statistics in the moving variables
        for x, _ in dataset.take(max_batches):
            model(x, training=True)
            n = int(x.shape[0])
            for acc, bn in zip(sums, bns):
                acc[0] += n * np.asarray(bn.moving_mean)
                acc[1] += n * np.asarray(bn.moving_variance)
            seen += n
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
    for (mean, var), bn in zip(sums, bns):
        bn.moving_mean.assign(mean / max(seen, 1))
        bn.moving_variance.assign(var / max(seen, 1))
    return seen


def batchnorm_recalibration(dataset):
    """Callback: recalibrate BatchNorm (``recalibrate_batchnorm``) before each validation and once
    at the end of training, so that per-epoch validation and the saved model use settled statistics."""
    import keras

    class BatchNormRecalibration(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stale, self.runs, self.images = False, 0, 0

        def on_train_batch_end(self, batch, logs=None):
            self.stale = True

        def on_test_begin(self, logs=None):
            self._recalibrate()

        def on_train_end(self, logs=None):
            self._recalibrate()

        def _recalibrate(self):
            if self.stale:
                self.images = recalibrate_batchnorm(self.model, dataset)
                self.runs, self.stale = self.runs + 1, False

    return BatchNormRecalibration()


def distribution_strategy():
    """MirroredStrategy when more than one GPU is visible, the default strategy otherwise."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def versions() -> dict[str, str]:
    return package_versions({"tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",),
                             "numpy": ("numpy",)})


def _compile(model, spec: ModelSpec, cfg: TrainConfig, num_outputs: int) -> None:
    import keras

    opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    common = {"optimizer": opt, "steps_per_execution": spec.defaults.steps_per_execution}
    if spec.task == "regression":
        model.compile(loss="mean_squared_error", metrics=["mae"], **common)
    elif num_outputs == 1:
        model.compile(loss="binary_crossentropy", metrics=["accuracy"], **common)
    else:
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], **common)


def image_source(spec: ModelSpec, data_dir: str | None) -> str:
    """The image folder (or ``tfds:NAME``) an image model trains on: ``data_dir``, else the default
    faces folder that `make data` writes (printed, so that the choice is never silent)."""
    if data_dir is not None:
        return str(data_dir)
    from edgeport.training import faces

    folder = faces.default_folder()
    print(f"{spec.name}: no --data-dir given: training on the default image folder {faces.describe(folder)}; "
          "pass --data-dir DIR (or tfds:NAME) for other images")
    return str(folder)


def _data(spec: ModelSpec, cfg: TrainConfig, data_dir: str | None):
    """Return (fit inputs, validation data, test data, labels, source) for ``spec``."""
    if spec.dataset == "image_folder":
        from edgeport.training.images import image_datasets

        source = image_source(spec, data_dir)
        size = cfg.input_size or spec.input_size
        train, val, classes = image_datasets(source, image_size=(size, size), batch_size=cfg.batch_size,
                                             seed=cfg.seed)
        return {"x": train, "shuffle": False}, val, val, tuple(classes), source  # the dataset shuffles itself
    from edgeport.training.data import load_dataset

    ds = load_dataset(spec.dataset, data_dir)
    fit = {"x": ds.x_train, "y": ds.y_train, "batch_size": cfg.batch_size, "shuffle": True}
    val = None if spec.task == "regression" else (ds.x_test, ds.y_test)  # 500 epochs: no per-epoch eval
    return fit, val, (ds.x_test, ds.y_test), ds.labels or spec.labels, ds.source


def _evaluate(model, spec: ModelSpec, test) -> dict[str, float]:
    x = test if not isinstance(test, tuple) else test[0]
    y = None if not isinstance(test, tuple) else test[1]
    metrics = model.evaluate(x, y, verbose=0, return_dict=True)
    out = {k: float(v) for k, v in metrics.items()}
    if spec.dataset == "celsius":
        import numpy as np

        out["fahrenheit_at_100c"] = float(model(np.array([[100.0]], dtype="float32"))[0, 0])
        if spec.name == "celsius":
            w, b = model.layers[0].get_weights()
            out["weight"], out["bias"] = float(w[0, 0]), float(b[0])
    return out


def train(model: str, *, epochs: int | None = None, batch_size: int | None = None,
          learning_rate: float | None = None, target_accuracy: float | None = None, seed: int = 0,
          data_dir: str | None = None, out: Path = Path("artifacts"), input_size: int | None = None,
          weights: str = "auto", fine_tune_at: int | None = None, fine_tune_epochs: int = 5,
          verbose: int | None = None) -> dict:
    """Train a course model; write OUT/MODEL/model.keras, labels.txt and training.json.

    model: course model name (see `edgeport models`)
    data_dir: data directory (idx files, MNIST digits, an image folder with one sub-folder per class, or tfds:NAME); image models default to the faces folder of `make data`
    target_accuracy: stop once training accuracy reaches this (mnist_mlp default 0.99)
    weights: mobilenet_v2_transfer base weights: auto, imagenet, none, or a local weights file
    fine_tune_at: mobilenet_v2_transfer: unfreeze base layers from this index after the first phase
    verbose: Keras progress: 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2)
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line
    spec = get_spec(model)
    d = spec.defaults
    pick = lambda given, default: default if given is None else given  # noqa: E731 - 0 is not "unset"
    cfg = TrainConfig(pick(epochs, d.epochs), pick(batch_size, d.batch_size),
                      pick(learning_rate, d.learning_rate), pick(target_accuracy, d.target_accuracy),
                      seed, input_size)
    from edgeport.native_log import start_tensorflow

    start_tensorflow()
    import keras

    keras.utils.set_random_seed(cfg.seed)
    started = time.perf_counter()
    fit_data, val, test, labels, source = _data(spec, cfg, data_dir)
    build_kwargs = {"input_size": cfg.input_size or spec.input_size, "num_classes": max(len(labels), 2)}
    if spec.name == "mobilenet_v2_transfer":
        build_kwargs["weights"] = weights
    strategy = distribution_strategy()
    with strategy.scope():
        net = spec.build(**build_kwargs)
        _compile(net, spec, cfg, net.output_shape[-1])
    if getattr(net, "weights_source", None):
        print(f"{spec.name}: MobileNetV2 base weights: {net.weights_source}")
    if fine_tune_at is not None and getattr(net, "base_trainable", False):
        print(f"{spec.name}: note: the base already trains from scratch; --fine-tune-at {fine_tune_at} "
              f"adds {fine_tune_epochs} epochs at a tenth of the rate with base layers below {fine_tune_at} frozen")
    callbacks = [accuracy_stop(cfg.target_accuracy)] if cfg.target_accuracy else []
    recal = None
    if getattr(net, "base_trainable", False):  # from scratch: BatchNorm statistics re-estimated
        recal = batchnorm_recalibration(fit_data["x"])
        callbacks.append(recal)
        print(f"{spec.name}: BatchNorm moving statistics are re-estimated over the training images "
              "before each validation and after training (weights unchanged)")
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    if spec.task == "regression":
        verbose = 0 if verbose == 2 else verbose  # 500 one-line epochs say nothing useful
    print(f"training {spec.name} on {source} ({strategy.__class__.__name__}, seed {cfg.seed}, "
          f"{cfg.epochs} epochs)")
    history = net.fit(**fit_data, epochs=cfg.epochs, validation_data=val, callbacks=callbacks,
                      verbose=verbose).history
    if fine_tune_at is not None and spec.name == "mobilenet_v2_transfer":
        history = _fine_tune(net, spec, cfg, fit_data, val, fine_tune_at, fine_tune_epochs, verbose, history,
                             [recal] if recal else [])
    test_metrics = _evaluate(net, spec, test)
    record = {"model": spec.name, "dataset": spec.dataset, "data_source": source, "seed": cfg.seed,
              "config": cfg.__dict__, "epochs_run": len(next(iter(history.values()), [])),
              "history": {k: [float(v) for v in vs] for k, vs in history.items()},
              "test_metrics": test_metrics, "labels": list(labels), "strategy": strategy.__class__.__name__,
              "data_default": data_dir is None and spec.dataset == "image_folder",
              "weights_source": getattr(net, "weights_source", None),
              "base_trainable": getattr(net, "base_trainable", None),
              "batchnorm_recalibration": ({"runs": recal.runs, "images": recal.images} if recal else None),
              "versions": versions(),
              "seconds": round(time.perf_counter() - started, 2)}
    model_dir = Path(out) / spec.name
    with atomic_path(model_dir / "model.keras") as tmp:
        net.save(tmp)
    write_text_atomic(model_dir / LABELS_FILE, "\n".join(labels) + ("\n" if labels else ""))
    save_training_record(model_dir, record)
    print(f"{spec.name}: test {json.dumps({k: round(v, 4) for k, v in test_metrics.items()})} "
          f"in {record['seconds']} s -> {model_dir / 'model.keras'}")
    return record


def _fine_tune(net, spec, cfg, fit_data, val, fine_tune_at, epochs, verbose, history, callbacks=()):
    """Unfreeze the MobileNetV2 base from layer ``fine_tune_at`` and train on at a tenth of the rate."""
    base = next(layer for layer in net.layers if hasattr(layer, "layers"))
    base.trainable = True
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False
    _compile(net, spec, TrainConfig(epochs, cfg.batch_size, cfg.learning_rate / 10, None), net.output_shape[-1])
    more = net.fit(**fit_data, epochs=epochs, validation_data=val, callbacks=list(callbacks), verbose=verbose).history
    return {k: list(history.get(k, [])) + list(more.get(k, [])) for k in set(history) | set(more)}
