"""How an app uses a mobile bundle: where the files go (``Layout``: Android's ``assets/``, an Xcode
target's resources) and the USAGE.md that shows MediaPipe Tasks code with the bundle's own proof,
and ONNX Runtime Mobile code for the .ort files the bundle carries as they were verified.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from edgeport.tables import fmt_pct


@dataclass(frozen=True)
class Layout:
    folder: str  # where models and labels go inside the bundle
    usage: str  # USAGE.md
    as_is: str  # the USAGE.md section for the artifacts carried as they are (ONNX Runtime Mobile)


ANDROID_USAGE = """# {model} on Android

Copy `assets/` into your app's `src/main/assets/`. Both models take the camera frame as it comes
(RGB, uint8; MediaPipe resizes it to {h}x{w}){gray}, and return {n} probabilities, one per line of
`labels.txt`; the labels are also packed inside each model (standard TFLite Metadata), so MediaPipe
Tasks and the TFLite Task Library name the categories themselves.

| file | weights | size |
| --- | --- | --- |
{files}

```kotlin
// build.gradle.kts: implementation("com.google.mediapipe:tasks-vision:latest.release")
// and keep the models uncompressed: android {{ androidResources {{ noCompress += "tflite" }} }}
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier

val options = ImageClassifier.ImageClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("model_int8.tflite").build())
    .setMaxResults(3)
    .build()
val classifier = ImageClassifier.createFromOptions(context, options)
val result = classifier.classify(BitmapImageBuilder(bitmap).build())
val top = result.classificationResult().classifications()[0].categories()[0]
Log.i("{model}", "${{top.categoryName()}} ${{top.score()}}")
classifier.close()
```

The TFLite Task Library (`org.tensorflow:tensorflow-lite-task-vision`) reads the same metadata:
`ImageClassifier.createFromFile(context, "model_int8.tflite").classify(TensorImage.fromBitmap(bitmap))`.

{proof}
"""

IOS_USAGE = """# {model} on iOS

Add `model.tflite`, `model_int8.tflite` and `labels.txt` to your Xcode target (Copy Bundle
Resources). Both models take the camera frame as it comes (RGB, uint8; MediaPipe resizes it to
{h}x{w}){gray}, and return {n} probabilities, one per line of `labels.txt`; the labels are also
packed inside each model (standard TFLite Metadata), so MediaPipe names the categories itself.

| file | weights | size |
| --- | --- | --- |
{files}

```swift
// Podfile: pod 'MediaPipeTasksVision'
import MediaPipeTasksVision

let options = ImageClassifierOptions()
options.baseOptions.modelAssetPath = Bundle.main.path(forResource: "model_int8", ofType: "tflite")!
options.maxResults = 3
let classifier = try ImageClassifier(options: options)
let result = try classifier.classify(image: try MPImage(uiImage: photo))
if let top = result.classificationResult.classifications.first?.categories.first {{
    print(top.categoryName ?? "\\(top.index)", top.score)
}}
```

{proof}
"""

AS_IS_HEAD = """
## ONNX Runtime Mobile (.ort)

Also carried, as verified by `edgeport verify` on ONNX Runtime: {files}. These take the model's
own input, not a camera frame: {input} (the input contract in bundle.json's `as_is`), and return
its own output {output}; label names are in `labels.txt` only. Each `*.required_operators.config`
lists the operators the model needs: build a reduced ONNX Runtime with
`build.sh --minimal_build --include_ops_by_config FILE`, or use the full package.
"""

ANDROID_ORT = """
```kotlin
// build.gradle.kts: implementation("com.microsoft.onnxruntime:onnxruntime-android:latest.release")
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import java.nio.FloatBuffer

val env = OrtEnvironment.getEnvironment()
val session = env.createSession(context.assets.open("{file}").readBytes(), OrtSession.SessionOptions())
val x = OnnxTensor.createTensor(env, FloatBuffer.wrap(pixels), longArrayOf({shape}))
session.run(mapOf("{name}" to x)).use {{ out -> val p = (out[0].value as Array<FloatArray>)[0] }}
```
"""

IOS_ORT = """
```swift
// Podfile: pod 'onnxruntime-objc'
import onnxruntime_objc

let env = try ORTEnv(loggingLevel: .warning)
let session = try ORTSession(env: env, modelPath: Bundle.main.path(forResource: "{stem}", ofType: "{ext}")!,
                             sessionOptions: nil)
let x = try ORTValue(tensorData: NSMutableData(data: pixels), elementType: .float, shape: [{shape}])
let out = try session.run(withInputs: ["{name}": x], outputNames: ["{out}"], runOptions: nil)
```
"""

ANDROID = Layout("assets/", ANDROID_USAGE, ANDROID_ORT)
IOS = Layout("", IOS_USAGE, IOS_ORT)


def as_is_usage(layout: Layout, as_is: dict[str, dict[str, Any]]) -> str:
    """The USAGE.md section for the artifacts carried as they are ("" when there are none)."""

    if not as_is:
        return ""
    shown = next((a for a in as_is.values() if a["precision"] == "quantized"), next(iter(as_is.values())))
    tensor, out = shown["inputs"][0], shown["outputs"][0]

    def dims(spec: dict[str, Any]) -> list[int]:
        return [1 if d is None else int(d) for d in spec["shape"]]

    def text(spec: dict[str, Any]) -> str:
        return f"`{spec['name']}` {spec['dtype']} {dims(spec)}"

    files = ", ".join(f"`{f}`" for a in as_is.values() for f in a["files"])
    name = PurePosixPath(shown["file"]).name
    return AS_IS_HEAD.format(files=files, input=text(tensor), output=text(out)) + layout.as_is.format(
        file=name, stem=PurePosixPath(name).stem, ext=PurePosixPath(name).suffix.lstrip("."), name=tensor["name"],
        out=out["name"],
        shape=", ".join(str(d) for d in dims(tensor)))


def _proof_line(file: str, rows: list[Any]) -> str:
    """One variant's proof rows (verify rows) in a line: what it was held to, and how it did."""
    from edgeport.benchmarks.verify.proof import against

    mine = [r for r in rows if r.file == PurePosixPath(file).name]
    acc = next((r.figures["accuracy"] for r in mine if r.figures.get("accuracy") is not None), None)
    return (f"- `{file}`: " + "; ".join(f"top-1 = {against(r)} on {fmt_pct(r.figures.get('agreement'))}, gate "
                                        f"{r.status.upper()}" for r in mine)
            + f" ({mine[0].figures.get('n')} real test images" + (f", accuracy {acc:.4f})" if acc is not None else ")"))


def usage(layout: Layout, src: Any, variants: dict[str, dict[str, Any]], rows: list[Any],
          data: dict[str, Any], as_is: dict[str, dict[str, Any]] | None = None) -> str:
    """USAGE.md of a bundle (``src``: the checked :class:`~edgeport.export.targets.mobile.Source`)."""
    from edgeport.files import human_size

    summary = "\n".join(_proof_line(v["file"], rows) for v in variants.values())
    rows = "\n".join(f"| `{v['file']}` | {v['weights']} | {human_size(v['bytes'])} |" for v in variants.values())
    return layout.usage.format(
        model=src.name, h=src.contract.height, w=src.contract.width, n=len(src.labels), files=rows,
        gray=", convert it to gray inside exactly as Pillow's \"L\" does" if src.contract.channels == 1 else "",
        proof=f"Proved at bundle time through edgeport's LiteRT runtime ({data['dataset']} test set, seed "
              f"{data['seed']}):\n{summary}\n\n`python -m edgeport.benchmarks.devices.mediapipe_check {src.name}` "
              "proves the android files again inside MediaPipe Tasks.") + as_is_usage(layout, as_is or {})
