"""``OUT/report/index.html``: the report as one page a person opens. Self-contained: inline CSS, no
script, images beside it by relative name; nothing on the page asks the network for anything.

A short head says which models pass, which rows fail and the command that fixes them; then per model
its rows (CPU, GPU and browser; each gate's verdict coloured, a failing row names the figure that
failed it), sizes and latencies, `edgeport fix`'s trade table when there was one, its plots, its
prediction grid and the web check's screenshot."""
from __future__ import annotations

from html import escape
from typing import Any

from edgeport.tables import fmt_num, fmt_pct, fmt_points, fmt_size, fmt_us

CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}
th:nth-child(-n+4),td:nth-child(-n+4),td.why,th:last-child{text-align:left}td{white-space:nowrap}
td.why{white-space:normal;min-width:18em}tr.fail td{background:#fde8e8}
td.gate{font-weight:bold}tr.pass td.gate{color:#1a7f37}tr.fail td.gate{color:#c62828}
.head{padding:.6em 1em;border-radius:6px;background:#f3f6f9}.bad{color:#c62828}.good{color:#1a7f37}
code{background:#eee;padding:0 .3em}img{max-width:100%;margin:.5em 0}"""
HEADER = ("format", "runtime", "target", "precision", "size", "accuracy", "Δ pts", "agree", "max|diff|",
          "p50 b1", "img/s b32", "gate", "why")
FIX_HEADER = ("candidate", "float layers", "size", "p50 b1", "accuracy", "agree", "gate")
PASSING = ("pass", "reference")
UNGATED = ("not verified", "skipped")  # neither passed nor failed: said with its reason


def failing_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a model whose gate is not passed (a reference row or an unverified one is neither)."""
    return [r for r in section["rows"] if r.get("gate") not in (*PASSING, *UNGATED, None)]


def _why(row: dict[str, Any], failures: list[dict[str, Any]]) -> str:
    """The failing figure of a row: its own reason (an emulated board's), else the first failure naming
    its artifact and runtime."""
    from edgeport.benchmarks.verify.result import figure_text

    if row.get("why"):
        return str(row["why"])
    for f in failures:
        if f.get("artifact") == row["format"] and f.get("runtime") == row["runtime"]:
            return figure_text(str(f.get("figure")), f.get("value"), str(f.get("gate")))  # as verify's table says it
    mine = [f for f in failures if row["format"] in str(f.get("message", ""))]
    return f"{mine[0].get('type', 'error')}: {mine[0].get('message')}" if mine else ""


def _row(r: dict[str, Any], failures: list[dict[str, Any]]) -> str:
    gate = str(r.get("gate"))
    cls = "pass" if gate in PASSING else "none" if gate in UNGATED else "fail"
    cells = [r["format"], r["runtime"], r.get("target") or "-", r.get("precision") or "-",
             fmt_size(r.get("size_bytes")), fmt_pct(r.get("accuracy")), fmt_points(r.get("accuracy_delta_points")),
             fmt_pct(r.get("agreement")), fmt_num(r.get("max_abs_diff"), ".2e"), fmt_us(r.get("p50_us")),
             fmt_num(r.get("throughput_ips"), ",.0f")]
    if r.get("emulated_p50_us") is not None:  # an emulated board's time: said so, never latency
        cells[9:11] = [f"emulated {fmt_us(r['emulated_p50_us'])}",
                       f"emulated {fmt_num(r.get('emulated_throughput_ips'), ',.0f')}"]
    why = _why(r, failures) if cls == "fail" else str(r.get("why") or "")
    return (f'<tr class="{cls}">' + "".join(f"<td>{escape(str(c))}</td>" for c in cells)
            + f'<td class="gate">{escape(gate.upper())}</td><td class="why">{escape(why)}</td></tr>')


def _fix_table(fmt: str, fix: dict[str, Any]) -> str:
    """`edgeport fix`'s trade table for one format: its candidates, cheapest first, the chosen one marked."""
    rows = []
    for c in fix.get("candidates") or []:
        f = c.get("figures") or {}
        chosen = c.get("label") == fix.get("chosen")
        cls = "pass" if c.get("passes") else "fail"
        cells = [("-> " if chosen else "") + str(c.get("label")), str(len(c.get("kept_float") or [])),
                 fmt_size(c.get("size_bytes")), fmt_us(c.get("p50_us")), fmt_pct(f.get("accuracy")),
                 fmt_pct(f.get("agreement"))]
        verdict = "PASS" if c.get("passes") else "ERROR" if c.get("error") else "FAIL"
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{escape(x)}</td>" for x in cells)
                    + f'<td class="gate">{verdict}</td></tr>')
    said = f"chose {fix['chosen']}" if fix.get("chosen") else "no candidate chosen"
    return (f"<h3>fix {escape(fmt)}: {escape(said)}</h3><table><tr>"
            + "".join(f"<th>{escape(h)}</th>" for h in FIX_HEADER) + "</tr>" + "".join(rows) + "</table>")


def _head(models: dict[str, Any]) -> str:
    items = []
    for name, sec in models.items():
        bad = failing_rows(sec)
        if bad:
            rows = ", ".join(f"{r['format']} on {r['runtime']}" for r in bad)
            items.append(f'<li><b>{escape(name)}</b>: <span class="bad">{len(bad)} row(s) fail</span> ({escape(rows)});'
                         f" fix: <code>edgeport fix {escape(name)}</code></li>")
        else:
            state = "verify not run" if sec.get("verify_ok") is None else "every gate passes"
            items.append(f'<li><b>{escape(name)}</b>: <span class="good">{state}</span></li>')
    return '<div class="head"><ul>' + "".join(items) + "</ul></div>"


def render(data: dict[str, Any], images: dict[str, list[str]]) -> str:
    """The page for a report's ``data`` (report.json) and its images by model ('' for the shared plots)."""
    d = data.get("device") or {}
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src 'self' data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>edgeport report</title><style>{CSS}</style></head><body>",
             f"<h1>edgeport report</h1><p>Generated {escape(str(data.get('generated')))} on "
             f"<b>{escape(str(data.get('device_name')))}</b> ({escape(str(d.get('cpu')))}).</p>",
             _head(data["models"])]
    for name, sec in data["models"].items():
        failures = sec.get("failures", [])
        parts.append(f"<h2 id=\"{escape(name)}\">{escape(name)}</h2>")
        if sec.get("data"):
            parts.append(f"<p>Test set: {escape(str(sec['data'].get('n')))} inputs "
                         f"({escape(str(sec['data'].get('source')))}).</p>")
        parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in HEADER) + "</tr>"
                     + "".join(_row(r, failures) for r in sec["rows"]) + "</table>")
        parts += [_fix_table(fmt, fix) for fmt, fix in (sec.get("fix") or {}).items()]
        parts += [f"<p>note: {escape(n)}</p>" for n in dict.fromkeys(sec.get("notes", []))]
        parts += [f'<img src="{escape(img)}" alt="{escape(img)}">' for img in images.get(name, [])]
    parts += [f'<img src="{escape(img)}" alt="{escape(img)}">' for img in images.get("", [])]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
