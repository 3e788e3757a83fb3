"""Write standard TFLite Metadata (``TFLITE_METADATA``) into an image classifier, as the official
``MetadataPopulator`` does, from the official generated schema code (:mod:`edgeport.runtimes.metadata_reader`).

- the metadata flatbuffer: model name, description, version; the input's ImageProperties (RGB)
  and, for a float input, NormalizationOptions; the output's labels as an associated
  ``TENSOR_AXIS_LABELS`` file; ``min_parser_version``; finished with the identifier ``M001``;
- stored as a new buffer of the model, named ``TFLITE_METADATA`` in ``Model.metadata`` (an old
  entry is replaced; other entries, edgeport's own included, are kept); every buffer 16-byte aligned;
- the associated files packed after the flatbuffer as an uncompressed zip archive (MediaPipe
  refuses a compressed one), with fixed timestamps so the bytes are reproducible.
"""
from __future__ import annotations

import io
import zipfile
from typing import Sequence

import flatbuffers
import numpy as np

from edgeport.errors import ExportError
from edgeport.runtimes.metadata_reader import METADATA_IDENTIFIER, METADATA_NAME, packed_files, schema
from edgeport.names import LABELS_FILE

_FLOAT32, _UINT8 = 0, 3  # TFLite TensorType
ALIGNMENT = 16


def _model_schema():
    from ai_edge_litert import schema_py_generated  # the TFLite model schema LiteRT ships

    return schema_py_generated


class _AlignedBuilder(flatbuffers.Builder):
    """A builder that starts every byte vector (buffer data) on a 16-byte boundary."""

    _force = 0

    def StartVector(self, elemSize, numElems, alignment):  # flatbuffers' own names
        return super().StartVector(elemSize, numElems, max(alignment, self._force))

    def CreateNumpyVector(self, x):  # flatbuffers' own names
        self._force = ALIGNMENT if x.dtype == np.uint8 else 0
        try:
            return super().CreateNumpyVector(x)
        finally:
            self._force = 0


def min_parser_version(md) -> str:
    """The lowest metadata parser that reads ``md``: members added after schema 1.0.0 raise it
    (the rule the official writer applies; the features an image classifier uses keep 1.0.0)."""
    fb = schema()
    version = (1, 0, 0)
    for graph in md.subgraphMetadata or []:
        for t in (graph.inputTensorMetadata or []) + (graph.outputTensorMetadata or []):
            for f in t.associatedFiles or []:
                if f.type == fb.AssociatedFileType.VOCABULARY:
                    version = max(version, (1, 0, 1))
            if t.content is not None and t.content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                version = max(version, (1, 3, 0))
        if graph.inputProcessUnits is not None or graph.outputProcessUnits is not None:
            version = max(version, (1, 1, 0))
        if graph.inputTensorGroups is not None or graph.outputTensorGroups is not None:
            version = max(version, (1, 2, 0))
    return "%d.%d.%d" % version


def image_classifier_metadata(model: bytes, *, name: str, description: str, version: str, labels_file: str,
                              mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                              author: str = "edgeport", license_: str = "") -> bytes:
    """The metadata flatbuffer of a one-input ([1, H, W, 3] RGB) one-output classifier."""
    fb, ms = schema(), _model_schema()
    graph = ms.ModelT.InitFromObj(ms.Model.GetRootAs(model, 0)).subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ExportError("an image classifier for mobile has one input and one output")
    tin = graph.tensors[graph.inputs[0]]
    shape = [int(d) for d in tin.shape]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or tin.type not in (_FLOAT32, _UINT8):
        raise ExportError(f"a mobile image input is [1, H, W, 3] RGB uint8 or float32, not {shape}")
    inp = fb.TensorMetadataT()
    inp.name, inp.description = "image", f"RGB image, {shape[1]}x{shape[2]}, as a camera frame gives it"
    inp.content = fb.ContentT()
    inp.content.contentPropertiesType = fb.ContentProperties.ImageProperties
    inp.content.contentProperties = fb.ImagePropertiesT()
    inp.content.contentProperties.colorSpace = fb.ColorSpaceType.RGB
    inp.stats = fb.StatsT()
    if tin.type == _FLOAT32:
        if mean is None or std is None:
            raise ExportError("a float32 image input needs NormalizationOptions (mean and std)")
        unit = fb.ProcessUnitT()
        unit.optionsType = fb.ProcessUnitOptions.NormalizationOptions
        unit.options = fb.NormalizationOptionsT()
        unit.options.mean, unit.options.std = [float(v) for v in mean], [float(v) for v in std]
        inp.processUnits = [unit]
        inp.stats.min = [(0.0 - float(mean[0])) / float(std[0])]
        inp.stats.max = [(255.0 - float(mean[0])) / float(std[0])]
    else:
        inp.stats.min, inp.stats.max = [0.0], [255.0]
    out = fb.TensorMetadataT()
    out.name, out.description = "probability", "Probabilities of the labels respectively."
    out.content = fb.ContentT()
    out.content.contentPropertiesType = fb.ContentProperties.FeatureProperties
    out.content.contentProperties = fb.FeaturePropertiesT()
    out.stats = fb.StatsT()
    out.stats.min, out.stats.max = [0.0], [1.0]
    labels = fb.AssociatedFileT()
    labels.name, labels.type = labels_file, fb.AssociatedFileType.TENSOR_AXIS_LABELS
    labels.description = "Labels for the categories the model recognises."
    out.associatedFiles = [labels]
    sub = fb.SubGraphMetadataT()
    sub.inputTensorMetadata, sub.outputTensorMetadata = [inp], [out]
    md = fb.ModelMetadataT()
    md.name, md.description, md.version, md.author = name, description, version, author
    if license_:
        md.license = license_
    md.subgraphMetadata = [sub]
    md.minParserVersion = min_parser_version(md)
    builder = flatbuffers.Builder(0)
    builder.Finish(md.Pack(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def populate(model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` with ``metadata`` as its TFLITE_METADATA entry and ``files`` packed after it."""
    ms = _model_schema()
    if model[4:8] != b"TFL3" or metadata[4:8] != METADATA_IDENTIFIER:
        raise ExportError("populate needs a TFLite model and a metadata flatbuffer")
    packed = packed_files(model)
    if packed:  # drop the old archive: it is written anew below
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            model = model[:min(i.header_offset for i in zf.infolist())]
    obj = ms.ModelT.InitFromObj(ms.Model.GetRootAs(model, 0))
    buffer = ms.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    obj.metadata = obj.metadata or []
    entry = next((m for m in obj.metadata if (m.name.decode() if isinstance(m.name, bytes) else m.name)
                  == METADATA_NAME), None)
    if entry is not None:
        obj.buffers[entry.buffer] = buffer
    else:
        obj.buffers.append(buffer)
        entry = ms.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(obj.buffers) - 1
        obj.metadata.append(entry)
    builder = _AlignedBuilder(1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    out = io.BytesIO(bytes(builder.Output()))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in {**packed, **files}.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def write_image_classifier(model: bytes, labels: Sequence[str], *, name: str, description: str,
                           version: str = "1", mean: Sequence[float] | None = None,
                           std: Sequence[float] | None = None, labels_file: str = LABELS_FILE) -> bytes:
    """The model with standard metadata for an image classifier and its label file packed in."""
    if not labels:
        raise ExportError("an image classifier's metadata needs its labels")
    md = image_classifier_metadata(model, name=name, description=description, version=version,
                                   labels_file=labels_file, mean=mean, std=std)
    return populate(model, md, {labels_file: ("\n".join(labels) + "\n").encode("utf-8")})
