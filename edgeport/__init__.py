"""edgeport: ship the TensorFlow course models to devices, proved against Keras."""

__version__ = "0.1.0"
