"""The course models: name -> builder, dataset, labels and training defaults (no TensorFlow import)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeport.errors import UnknownNameError
from edgeport.lazy import resolve
from edgeport.training.data import DIGIT_LABELS, FASHION_LABELS
from edgeport.types import InputContract


@dataclass(frozen=True)
class TrainDefaults:
    epochs: int
    batch_size: int = 32
    learning_rate: float = 0.001
    target_accuracy: float | None = None  # stop once training accuracy reaches it (course callback)
    steps_per_execution: int = 1  # batches per compiled call: tiny models are otherwise all overhead

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid training defaults {self}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError(f"target_accuracy must be in (0, 1], got {self.target_accuracy}")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    builder: str  # "module:attr", resolved lazily
    dataset: str  # fashion_mnist | mnist | celsius | image_folder
    defaults: TrainDefaults
    task: str = "classification"  # or "regression"
    labels: tuple[str, ...] = ()  # empty: taken from the data (image folders)
    input_size: int | None = None  # image models: default square input size (configurable)
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs):
        """Build the Keras model (imports Keras)."""
        return resolve(self.builder)(**{**self.options, **kwargs})

    def input_contract(self, input_size: int | None = None) -> InputContract:
        if self.dataset == "celsius":
            return InputContract(kind="values", shape=(1,), pixel_range=(-273.15, 1e4),
                                 extra={"unit": "degrees Celsius"})
        if self.dataset in ("fashion_mnist", "mnist"):
            return InputContract(kind="image", height=28, width=28, channels=1)
        size = input_size or self.input_size
        return InputContract(kind="image", height=size, width=size, channels=3)


_B = "edgeport.training.builders:"

MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("celsius", "one Dense unit learning F = 1.8 C + 32 (Adam 0.1, MSE)", _B + "celsius",
              "celsius", TrainDefaults(epochs=500, batch_size=1, learning_rate=0.1, steps_per_execution=7),
              task="regression"),
    ModelSpec("celsius_deep", "Dense 4-4-1 on the celsius pairs", _B + "celsius_deep", "celsius",
              TrainDefaults(epochs=500, batch_size=1, learning_rate=0.1, steps_per_execution=7),
              task="regression"),
    ModelSpec("fashion_mlp", "Flatten, Dense 128 relu, Dense 10 softmax", _B + "fashion_mlp",
              "fashion_mnist", TrainDefaults(epochs=5), labels=FASHION_LABELS),
    ModelSpec("fashion_cnn", "2x (Conv2D 64 3x3 + MaxPool), Dense 128, Dense 10", _B + "fashion_cnn",
              "fashion_mnist", TrainDefaults(epochs=5), labels=FASHION_LABELS),
    ModelSpec("mnist_mlp", "Flatten, Dense 512 relu, Dense 10; stops at a training accuracy target",
              _B + "mnist_mlp", "mnist", TrainDefaults(epochs=20, target_accuracy=0.99), labels=DIGIT_LABELS),
    # Image models: defaults measured on the faces folder (160 train / 40 validation images, 2 cores):
    # image_cnn 30 epochs ~1 min, validation 1.0 on seeds 0-2; mobilenet_v2_transfer from scratch
    # (offline) 10 epochs ~3-4 min, validation 1.0 on seeds 0-2. See docs/course-models.md.
    ModelSpec("image_cnn", "horses-vs-humans CNN: Rescaling, 3-5 Conv/MaxPool, augmentation, dropout",
              _B + "image_cnn", "image_folder", TrainDefaults(epochs=30), input_size=150),
    ModelSpec("mobilenet_v2_transfer", "MobileNetV2 (frozen ImageNet base, or from scratch without "
              "weights), pooling, dropout, new head",
              _B + "mobilenet_v2_transfer", "image_folder", TrainDefaults(epochs=10), input_size=160),
)}


def get_spec(name: str) -> ModelSpec:
    """The course model called ``name``; an unknown name lists the valid ones."""
    if name not in MODELS:
        raise UnknownNameError("model", name, list(MODELS))
    return MODELS[name]


def list_models() -> str:
    """List the course models with their dataset and training defaults."""
    rows = [f"{'model':<24}{'dataset':<15}{'epochs':>7}  description"]
    rows += [f"{s.name:<24}{s.dataset:<15}{s.defaults.epochs:>7}  {s.description}" for s in MODELS.values()]
    return "\n".join(rows)
