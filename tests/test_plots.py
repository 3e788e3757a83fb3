"""The report's log axes read as times and sizes (``60 µs``, ``2 ms``, ``300 KB``), not ``6x10^1``."""
from __future__ import annotations

import pytest
from edgeport.benchmarks.report.plots import (
    _plt,
    accuracy_vs_latency,
    log_axis,
    size_label,
    time_label,
)


def test_labels():
    assert [time_label(v) for v in (0.5, 60, 200, 2500, 1.5e6)] == ["0.5 µs", "60 µs", "200 µs", "2.5 ms", "1.5 s"]
    assert [size_label(v) for v in (20, 500, 1000, 2048)] == ["20 KB", "500 KB", "1000 KB", "2 MB"]


@pytest.mark.parametrize("span", [(60, 90), (55, 140), (40, 3000), (3, 2e6)])
def test_a_narrow_or_wide_latency_axis_reads_as_times(span):
    plt = _plt()
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.scatter(span, [0, 1])
    log_axis(ax.xaxis, time_label)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    minor = [t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    plt.close(fig)
    assert labels and not minor, (labels, minor)
    assert all(lab.endswith((" µs", " ms", " s")) and "10^" not in lab and "\\times" not in lab for lab in labels)


def test_the_accuracy_plot_is_written(tmp_path):
    rows = [{"model": "m", "format": f, "runtime": "litert", "accuracy_delta_points": d, "p50_us": us}
            for f, d, us in (("tflite_fp32", 0.0, 60.0), ("tflite_int8", -0.4, 150.0))]
    assert accuracy_vs_latency(rows, tmp_path / "a.png").stat().st_size > 1000
