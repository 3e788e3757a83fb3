"""Export options are one object: ExportConfig is built once, the CLI's flags are its fields, and an
isolated export carries it to the child as JSON."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from edgeport.export.config import ExportConfig
from edgeport.export.pipeline import export_model

from edgeport import children, worker
from edgeport.cli import _call_args, build_parser, main


def test_the_config_goes_through_json_and_back_unchanged(tmp_path):
    cal = tmp_path / "cal.npy"
    np.save(cal, np.zeros((2, 3), np.float32))
    config = ExportConfig(formats=("tflite_int8", "onnx"), opset=15, int8_io="int8", calibration_data=cal,
                          keep_float=("a,b",), onnx_calibration="entropy", input_shape=("x=1x3",))
    sent = json.loads(json.dumps(config.to_dict()))
    assert ExportConfig.from_dict(sent) == config
    assert set(sent) == {f.name for f in dataclasses.fields(ExportConfig)}


def test_the_export_flags_are_the_config_fields():
    parser = build_parser(export_model, "edgeport export")
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings and a.dest.startswith("config.")}
    assert flags == {"--" + f.name.replace("_", "-") for f in dataclasses.fields(ExportConfig)}
    args = _call_args(export_model, vars(parser.parse_args(
        ["m", "--formats", "tflite_fp32", "--keep-float", "a", "--keep-float", "b", "--int8-io", "int8"])))
    assert args["config"] == ExportConfig(formats=("tflite_fp32",), keep_float=("a", "b"), int8_io="int8")
    assert args["model"] == "m" and "isolate" in args and "out" in args


def test_a_bad_flag_is_one_error_line(capsys):
    assert main(["export", "m", "--opset", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgeport: error: --opset must be an integer >= 13") and err.count("\n") == 1


def test_options_come_once(tiny_models, tmp_path):
    with pytest.raises(TypeError, match="not both"):
        export_model(str(tiny_models["mlp"]), ExportConfig(), out=tmp_path, opset=15)


def test_the_child_receives_the_config(tiny_models, tmp_path, monkeypatch):
    """The isolated path, run in this process: the job is what JSON carries to a child."""
    sent = []

    def in_process(job, **_):
        sent.append(job)
        return worker.run(json.loads(json.dumps(job)))

    monkeypatch.setattr(children, "run_job", in_process)
    report = export_model(str(tiny_models["mlp"]), formats=["tflite_fp32"], seed=3, out=tmp_path, isolate=True)
    assert report.ok and [r.format for r in report.results] == ["tflite_fp32"]
    assert sent[0]["config"] == ExportConfig(formats=("tflite_fp32",), seed=3).to_dict()
