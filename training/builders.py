"""Keras builders for the course models. Every image model takes raw 0-255 pixels (Rescaling inside)."""
from __future__ import annotations

from pathlib import Path


def _keras():
    import keras

    return keras


def celsius(**_):
    """One Dense unit: learns F = 1.8 C + 32."""
    keras = _keras()
    return keras.Sequential([keras.Input((1,), name="celsius"), keras.layers.Dense(1, name="l0")],
                            name="celsius")


def celsius_deep(**_):
    keras = _keras()
    return keras.Sequential([keras.Input((1,), name="celsius"), keras.layers.Dense(4, name="l0"),
                             keras.layers.Dense(4, name="l1"), keras.layers.Dense(1, name="l2")],
                            name="celsius_deep")


def fashion_mlp(**_):
    keras = _keras()
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax")], name="fashion_mlp")


def fashion_cnn(**_):
    keras = _keras()
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"), L.Rescaling(1 / 255.0),
        L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")],
        name="fashion_cnn")


def mnist_mlp(**_):
    keras = _keras()
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Flatten(), keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(10, activation="softmax")], name="mnist_mlp")


def _head(keras, num_classes: int):
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", name="head")
    return keras.layers.Dense(num_classes, activation="softmax", name="head")


def image_cnn(num_classes: int = 2, input_size: int = 150, blocks: int = 4, augment: bool = True,
              dropout: float = 0.5, **_):
    """The horses-vs-humans network: Rescaling, 3-5 Conv/MaxPool blocks, augmentation, dropout."""
    if not 3 <= blocks <= 5:
        raise ValueError(f"image_cnn blocks must be 3-5, got {blocks}")
    keras = _keras()
    L = keras.layers
    layers = [keras.Input((input_size, input_size, 3), name="image")]
    if augment:  # identity at inference: exported artifacts carry no augmentation ops
        layers += [L.RandomFlip("horizontal"), L.RandomRotation(0.1), L.RandomZoom(0.1)]
    layers.append(L.Rescaling(1 / 255.0))
    for filters in (16, 32, 64, 64, 64)[:blocks]:
        layers += [L.Conv2D(filters, 3, activation="relu", padding="same"), L.MaxPooling2D(2)]
    layers += [L.Flatten(), L.Dropout(dropout), L.Dense(512, activation="relu"), _head(keras, num_classes)]
    return keras.Sequential(layers, name="image_cnn")


SCRATCH = "trained from scratch, whole network trainable"


def mobilenet_v2_transfer(num_classes: int = 2, input_size: int = 160, weights: str = "auto",
                          alpha: float = 1.0, dropout: float = 0.2, **_):
    """MobileNetV2, global pooling, dropout, a new head.

    ``weights``: "imagenet" (download, online), a local ``.h5``/``.weights.h5`` file, "none", or
    "auto" (ImageNet if it can be had, else none). With pretrained weights the base is frozen (the
    course's transfer learning). Without them a frozen random base would learn nothing, so the whole
    network trains from scratch, its BatchNorm layers in training mode (train.py re-estimates their
    moving statistics, see ``BatchNormRecalibration``). ``model.weights_source`` and
    ``model.base_trainable`` say which was done."""
    keras = _keras()
    source, base_weights = "none", None
    if weights not in ("none", "auto", "imagenet"):
        if not Path(weights).exists():
            from edgeport.errors import DataError

            raise DataError(f"{weights}: MobileNetV2 weights file not found")
        source, base_weights = f"local file {weights}", weights
    elif weights in ("auto", "imagenet"):
        try:
            keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), alpha=alpha,
                                           include_top=False, weights="imagenet")
            source, base_weights = "imagenet", "imagenet"
        except Exception as exc:  # noqa: BLE001 - offline: no weights to be had
            if weights == "imagenet":
                from edgeport.errors import DataError

                raise DataError(f"ImageNet weights for MobileNetV2 could not be downloaded "
                                f"({type(exc).__name__}); pass --weights FILE or --weights none") from None
            source = "none (ImageNet weights unavailable offline)"
    base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), alpha=alpha,
                                          include_top=False, weights=base_weights)
    scratch = base_weights is None
    inp = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)  # MobileNetV2 wants [-1, 1]
    if scratch:
        base.trainable = True
        x = base(x)  # BatchNorm learns its statistics: training mode during fit
        source += f": {SCRATCH}"
    else:
        base.trainable = False
        x = base(x, training=False)  # frozen pretrained base: BatchNorm stays in inference mode
        source += ": frozen base, new head trained"
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inp, _head(keras, num_classes)(x), name="mobilenet_v2_transfer")
    model.weights_source = source
    model.base_trainable = scratch
    return model
