"""`genrec report`: one self-contained HTML file; rendered in headless Chromium with no network, every
section present, no console message, a screenshot saved."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from genrec.cli import main
from genrec.evaluation.report import SECTIONS


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = "Chromium tests skipped: no chromium (apt-get install chromium; .ci/run does)"
        print(reason)
        pytest.skip(reason)
    return exe


def render(html_file, shot) -> tuple[str, str]:
    """(rendered DOM, browser log) of `html_file` in headless Chromium with every host unresolvable, and a
    full-page screenshot at `shot`."""
    base = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    base += ["--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0"]
    url = html_file.resolve().as_uri()
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    subprocess.run(
        [*base, "--window-size=1200,4000", f"--screenshot={shot}", url], capture_output=True, timeout=120
    )
    return dom.stdout, dom.stderr


def check_page(text: str) -> None:
    for key, title in SECTIONS.items():
        assert f'<section id="{key}">' in text and title in text, key
    assert not re.search(r"""(src|href)=["']https?://""", text)  # nothing to fetch


@pytest.mark.slow  # trains two runs
def test_report_of_two_runs_is_self_contained(tmp_path, capsys):
    for model in ("pop", "sasrec"):
        extra = ["--size", "tiny", "--set", "epochs=3", "--set", "threads=1"] if model == "sasrec" else []
        assert main(["train", "--synthetic", "--model", model, *extra, "--out", str(tmp_path / model)]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "pop"), str(tmp_path / "sasrec"), "--out", str(out)]) == 0
    page = out.read_text()
    check_page(page)
    assert page.count("<svg") == 5  # curves, @K, history length, popularity, diversity trade-off
    assert "No model was trained at two sizes" in page  # so no scaling curve
    assert "&#9733;" in page  # the best value per column is marked
    assert '"model": "sasrec"' in page.replace("&quot;", '"')  # the resolved configuration
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow  # trains three runs
def test_report_draws_the_scaling_curve_of_runs_at_several_sizes(tmp_path):
    for name, size in (("tiny", "tiny"), ("small", "small"), ("small-again", "small")):
        args = ["train", "--synthetic", "--model", "sasrec", "--size", size, "--set", "epochs=2"]
        assert (
            main([*args, "--set", "threads=1", "--seed", str(len(name)), "--out", str(tmp_path / name)]) == 0
        )
    out = tmp_path / "report.html"
    assert main(["report", *(str(tmp_path / n) for n in ("small", "tiny")), "--out", str(out)]) == 0
    page = out.read_text()
    section = page[page.index('<section id="scaling">') : page.index('<section id="at-k">')]
    assert section.count("<svg") == 1 and "NDCG@10 vs compute" in section
    rows = re.findall(
        r"<tr><td>(tiny|small)</td><td>sasrec</td><td>[^<]*</td><td>(\w+)</td>"
        r"<td>([\d,]+)</td><td>[\d,]+</td><td>([\d.e+]+)</td>",
        section,
    )
    assert [r[:2] for r in rows] == [("tiny", "tiny"), ("small", "small")]  # sorted by parameters
    params = [int(r[2].replace(",", "")) for r in rows]
    flops = [float(r[3]) for r in rows]
    assert params[0] < params[1] and flops[0] < flops[1]
    # two runs of one size are not a curve
    assert main(["report", str(tmp_path / "small"), str(tmp_path / "small-again"), "--out", str(out)]) == 0
    assert "No model was trained at two sizes" in out.read_text()


@pytest.mark.slow  # trains two runs on ml-1m-u2999 and starts a browser
def test_report_of_two_movielens_runs_in_headless_chromium(shared_data, tmp_path):
    data = str(shared_data / "ml-1m-u2999")
    runs = []
    tiny = ["--size", "tiny", "--set", "epochs=2", "--set", "max_len=50"]
    for model, extra in (("pop", []), ("sasrec", tiny)):
        runs.append(tmp_path / model)
        assert (
            main(
                [
                    "train",
                    "--data",
                    data,
                    "--model",
                    model,
                    *extra,
                    "--set",
                    "threads=1",
                    "--out",
                    str(runs[-1]),
                ]
            )
            == 0
        )
    out = tmp_path / "report.html"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    shots = os.environ.get("GENREC_SCREENSHOTS")  # CI keeps the screenshot here when set
    shot = (tmp_path if not shots else __import__("pathlib").Path(shots)) / "report-ml1m.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    dom, log = render(out, shot)
    check_page(dom)
    assert dom.count("<svg") == 5 and "by gender" not in dom
    assert "Metrics by user group" in dom and ">F<" in dom and ">M<" in dom  # users.dat beside the data
    assert "CONSOLE" not in log, log  # no script error, no console message at all
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
