"""Export stage: a Keras model to SavedModel, TFLite (five precisions), ONNX (float, int8) and C.

``edgeport.export.pipeline.export_model`` is the entry point (and the ``edgeport export`` command);
``edgeport.export.registry`` names the formats. Nothing heavy is imported here.
"""
