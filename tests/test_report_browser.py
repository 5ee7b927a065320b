"""The HTML pages rendered in a real headless Chromium: no console errors, no network request of any kind,
module names, shapes and counts in the DOM, no horizontal overflow at 1400 px; screenshots kept in the
test temp folder (tmp_path) for a look.

Chromium is driven over the DevTools protocol through --remote-debugging-pipe (stdlib only). Without a
chromium binary (a user's machine) these tests are skipped with the reason; CI installs Debian's chromium.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import SAMPLES, shared
from tracekit.cli import main

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: browser rendering tests need it "
                                "(Debian: apt-get install chromium)")
WIDTH = 1400
QWEN = "gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"


class Browser:
    """A headless Chromium spoken to over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="tracekit-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The child needs the pipe ends on fds 3 and 4 exactly (moved high first so neither clobbers the other).
        def fds() -> None:
            high_r, high_w = os.dup(to_child_r) + 100, os.dup(from_child_w) + 100
            os.dup2(to_child_r, high_r)
            os.dup2(from_child_w, high_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self._read(deadline - time.monotonic())
            if ev.get("method") == method:
                return ev
            self.events.append(ev)
        raise TimeoutError(method)


class Page:
    """One page loaded at 1400 px wide, with what it logged and requested."""

    def __init__(self, browser: Browser, path: Path) -> None:
        self.b = browser
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        self.s = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", self.s)
        browser.send("Emulation.setDeviceMetricsOverride", self.s, width=WIDTH, height=1000, deviceScaleFactor=1,
                     mobile=False)
        browser.events.clear()
        self.url = path.resolve().as_uri()
        browser.send("Page.navigate", self.s, url=self.url)
        browser.wait_event("Page.loadEventFired")
        self.eval("new Promise(r => setTimeout(r, 300))")

    def eval(self, expr: str):
        res = self.b.send("Runtime.evaluate", self.s, expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"{expr}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, log errors (CSP refusals included) and every request that is
        not the page itself."""
        out = []
        for ev in self.b.events:
            m, p = ev.get("method"), ev.get("params", {})
            if ev.get("sessionId") != self.s:
                continue
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('exception', {}).get('description')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']}")
            elif m == "Network.requestWillBeSent" and p["request"]["url"] != self.url:
                out.append(f"request: {p['request']['url'][:120]}")
        return out

    def overflow(self) -> int:
        """Pixels the page is wider than the 1400 px window (0 = no horizontal scrolling)."""
        return self.eval("document.documentElement.scrollWidth - window.innerWidth")

    def screenshot(self, path: Path, max_height: int = 6000) -> Path:
        height = min(self.eval("document.documentElement.scrollHeight"), max_height)
        # A window as tall as the page, so the charts redraw at their final size before the capture.
        self.b.send("Emulation.setDeviceMetricsOverride", self.s, width=WIDTH, height=height, deviceScaleFactor=1,
                    mobile=False)
        self.eval("new Promise(r => setTimeout(r, 300))")
        shot = self.b.send("Page.captureScreenshot", self.s, format="png",
                           clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
        self.b.send("Emulation.setDeviceMetricsOverride", self.s, width=WIDTH, height=1000, deviceScaleFactor=1,
                    mobile=False)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def _open(browser: Browser, path: Path, shot: Path) -> Page:
    page = Page(browser, path)
    page.screenshot(shot)
    assert page.problems() == [], f"{path.name}: {page.problems()}"
    assert page.overflow() <= 0, f"{path.name} is {page.overflow()} px wider than {WIDTH} px"
    scrolled = page.eval("[...document.querySelectorAll('.tablewrap, section')].filter(w => w.scrollWidth > "
                         "w.clientWidth + 1).map(w => (w.querySelector('table') || w).id)")
    assert scrolled == [], f"{path.name}: these scroll sideways at {WIDTH} px: {scrolled}"
    ids = page.eval("[...document.querySelectorAll('[id]')].map(e => e.id)")
    twice = sorted(i for i in set(ids) if ids.count(i) > 1)
    assert twice == [], f"{path.name}: duplicate element ids {twice}"
    return page


def _report(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _modules(sample: Path) -> pd.DataFrame:
    from tracekit.modules.table import module_table
    from tracekit.pipeline import process, read_inputs

    processed = process(read_inputs([sample]))
    return module_table(processed.table, processed.modules)


def test_cnn_report_renders_offline_with_model_tree_and_charts(browser, tmp_path):
    sample = SAMPLES / "cnn" / "prof.json.gz"
    path = _report(tmp_path, str(sample))
    assert path.stat().st_size < 5e6
    page = _open(browser, path, tmp_path / "cnn_report.png")
    modules = _modules(sample)
    # the drawing: one block per module, in forward order, with the shapes on the arrows
    blocks = page.eval("[...document.querySelectorAll('#model .blk')].map(b => b.dataset.path)")
    assert blocks == modules["module_path"].tolist()
    labels = page.eval("[...document.querySelectorAll('#model .arrow .lb')].map(a => a.textContent)")
    assert "[4,3,32,32]" in labels and "[4,16,32,32]" in labels and labels[-1] == "[4,10]"
    # the tree table: one row per module, calls shown, device columns blank on this CPU-only trace
    rows = page.eval("[...document.querySelectorAll('#module-tree tbody tr')].map(r => "
                     "[...r.cells].map(c => c.textContent))")
    assert len(rows) == len(modules)
    assert [r[0].lstrip("▾▸") for r in rows] == [p.rsplit("/", 1)[-1] for p in modules["module_path"]]
    head = page.eval("[...document.querySelectorAll('#module-tree th')].map(c => c.textContent)")
    assert {"calls", "first ms", "steady ms", "bwd ms", "dev fwd ms", "dev bwd ms", "params", "FLOPs fwd",
            "TFLOP/s"} <= set(head)
    dev = head.index("dev fwd ms")
    assert all(r[dev] == "" for r in rows) and all(r[head.index("calls")] == "2" for r in rows)
    assert page.eval("document.querySelectorAll('canvas').length") >= 2
    assert page.eval("document.body.innerHTML.includes(\"id='modules'>10<\")") is False


def test_tree_table_folds_and_sorts_in_the_browser(browser, tmp_path):
    path = _report(tmp_path, str(SAMPLES / "gpt" / "prof.json.gz"))
    page = _open(browser, path, tmp_path / "gpt_report.png")
    visible = "[...document.querySelectorAll('#module-tree tbody tr')].filter(r => r.offsetParent).length"
    before = page.eval(visible)
    page.eval("document.querySelector('#module-tree tbody tr button.tg').click()")
    assert page.eval(visible) == 1  # the root folded: only itself left
    page.eval("document.querySelector('#module-tree tbody tr button.tg').click()")
    assert page.eval(visible) == before
    page.eval("[...document.querySelectorAll('#module-tree th')].find(t => t.textContent == 'params').click()")
    kids = page.eval("[...document.querySelectorAll('#module-tree tbody tr[data-depth=\"1\"]')].map(r => "
                     "+r.cells[10].dataset.v || 0)")
    assert kids == sorted(kids, reverse=True) and len(kids) >= 4
    # repeated blocks folded in the drawing: Block x 2, unfolded on click
    rep = page.eval("[...document.querySelectorAll('#model .blk.rep')].map(b => [b.dataset.type, b.dataset.repeat])")
    assert ["Block", "2"] in rep
    page.eval("document.querySelector('#model .blk.rep .unfold').click()")
    paths = page.eval("[...document.querySelectorAll('#model .blk')].map(b => b.dataset.path)")
    assert "GPT_0/Block_0" in paths and "GPT_0/Block_1" in paths


@pytest.mark.slow
def test_24_layer_transformer_folds_into_one_block(browser, tmp_path):
    path = _report(tmp_path, str(shared(QWEN)))
    page = _open(browser, path, tmp_path / "qwen_report.png")
    rep = page.eval("[...document.querySelectorAll('#model .blk.rep')].map(b => [b.dataset.type, b.dataset.repeat])")
    assert ["Qwen2DecoderLayer", "24"] in rep
    # inside the folded layer: attention and MLP with their Linear projections and shapes
    types = page.eval("[...document.querySelectorAll('#model .blk')].map(b => b.dataset.type)")
    assert {"Qwen2Attention", "Qwen2MLP", "Linear"} <= set(types)
    assert len(types) < 60  # readable: the 24 layers are one block
    labels = page.eval("[...document.querySelectorAll('#model .arrow .lb')].map(a => a.textContent)")
    assert "[16,559,1024]" in labels and "[16,559,2816]" in labels
    # device columns are measured on this GPU trace
    dev = page.eval("[...document.querySelectorAll('#module-tree tbody tr')][0].cells[8].textContent")
    assert dev and float(dev.replace(",", "")) > 0


def test_modules_html_page(browser, tmp_path):
    out = tmp_path / "modules.html"
    result = CliRunner().invoke(main, ["modules", str(SAMPLES / "gpt" / "prof.json.gz"), "--format", "html",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = _open(browser, out, tmp_path / "modules_html.png")
    assert page.eval("document.querySelectorAll('#module-tree tbody tr').length") == 29
    assert page.eval("document.querySelector('h1').textContent") == "modules of prof.json.gz"


def test_modules_page_marks_inferred_params_and_says_why(browser, tmp_path):
    """HF GPT-2 on the H200: its params are inferred (Conv1D addmm) and may hold the tied LM head twice; the model
    drawing marks them '~' and the details panel says why; the tree marks the cell and gives the note on hover."""
    out = tmp_path / "gpt2.html"
    result = CliRunner().invoke(main, ["modules", str(SAMPLES / "oracle_cuda" / "hf_gpt2.json.gz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = _open(browser, out, tmp_path / "gpt2.png")
    assert "K~ params" in page.eval("document.querySelector('#model-drawing').textContent")
    details = page.eval("document.querySelector('.details').textContent")
    assert "params from" in details and "tie_word_embeddings" in details
    assert page.eval("[...document.querySelectorAll('#module-tree td[title]')].some(t => "
                     "t.title.startsWith('inferred: aten::addmm') && t.textContent.endsWith('~'))")


@pytest.mark.slow
def test_compare_page_fits_and_names_inputs(browser, tmp_path):
    base = shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")
    target = shared("gpu/tracelens/mi300/gaunernst_bert-small-uncased__1016001.json.gz")
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", str(base), str(target), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = _open(browser, out / "report.html", tmp_path / "compare.png")
    title = page.eval("document.querySelector('h1').textContent")
    assert title == "tracekit compare: gaunernst_bert-small-uncased__1016001.json.gz, h100 vs mi300"
    head = page.eval("[...document.querySelectorAll('#modules th')].map(c => c.textContent)")
    assert "base ms" in head and "delta ms" in head
    modules = pd.read_parquet(out / "compare_modules.parquet")
    assert page.eval("document.querySelectorAll('#modules tbody tr').length") == len(modules)
    assert page.eval("document.querySelectorAll('canvas').length") >= 3


@pytest.mark.slow
def test_npu_vs_gpu_compare_page_shows_comm_and_format_casts(browser, tmp_path):
    """Ascend AlexNet (DDP over 8 NPUs) vs the one-GPU CUDA recording: the extra columns fit the page."""
    base = shared("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", str(base), str(SAMPLES / "alexnet" / "cuda_rank0.json.gz"),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = _open(browser, out / "report.html", tmp_path / "compare_npu.png")
    head = page.eval("[...document.querySelectorAll('#modules th')].map(c => c.textContent)")
    assert "comm ms b/t" in head and "format cast ms b/t" in head
    cells = page.eval("[...document.querySelector('#modules tr[title$=\"Sequential_1/Linear_2\"]').cells]"
                      ".map(c => c.textContent)")
    base_comm = float(cells[head.index("comm ms b/t")].split(" / ")[0])
    modules = pd.read_parquet(out / "compare_modules.parquet").set_index("module_path")
    assert base_comm == pytest.approx(modules.loc["DistributedDataParallel_0/AlexNet_0/Sequential_1/Linear_2",
                                                  "base_comm_ns"] / 1e6, abs=1e-3)


def test_pipeline_report_names_the_stage_drawn_and_has_units(browser, tmp_path):
    """A PP run (sample_traces/dist_pp_dp): the model drawn is rank 0's stage, the note names the other
    stage's layers, and the pipeline tables are in ms like every other table (no raw _ns columns)."""
    path = _report(tmp_path, str(SAMPLES / "dist_pp_dp"))
    page = _open(browser, path, tmp_path / "pp_report.png")
    model = page.eval("document.querySelector('#model').innerText")
    assert "this drawing is rank 0's, stage 0 of 2" in model and "stage 1 (ranks 1, 3): Stage1_0" in model
    text = page.eval("document.querySelector('#parallel').innerText")
    assert "_ns" not in text and "bubble start ms" in text and "Send/recv between stages (PP)" in text
    assert page.eval("document.querySelectorAll('#parallel svg').length") >= 1


def test_parallel_page_has_units(browser, tmp_path):
    out = tmp_path / "parallel.html"
    result = CliRunner().invoke(main, ["parallel", str(shared("cpu/dist_cp_tp")), "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = _open(browser, out, tmp_path / "parallel.png")
    text = page.eval("document.body.innerText")
    assert "time_ns" not in text and "bytes" not in text and "True" not in text
    head = page.eval("[...document.querySelectorAll('#parallel-by-group th')].map(c => c.textContent)")
    assert "time ms" in head and "MB" in head
    assert page.eval("document.querySelectorAll('#parallel-by-rank tbody tr').length") == 4
    assert "dist_cp_tp" in page.eval("document.querySelector('h1').textContent") or \
        "rank" in page.eval("document.querySelector('h1').textContent")


def test_report_with_ranks_and_base(browser, tmp_path):
    ranks = shared("cpu/dist_cp_tp")
    path = _report(tmp_path, str(ranks))
    page = _open(browser, path, tmp_path / "ranks_report.png")
    assert page.eval("!!document.getElementById('parallel')") and page.eval("!!document.getElementById('model')")
    gpt = SAMPLES / "gpt"
    path = _report(tmp_path, str(gpt / "prof_cuda.json.gz"), "--base", str(gpt / "prof.json.gz"))
    page = _open(browser, path, tmp_path / "base_report.png")
    assert page.eval("!!document.getElementById('compare') && !!document.getElementById('compare-modules')")
    assert page.eval("document.querySelector('h1').textContent") == \
        "tracekit report: gpt/prof_cuda.json.gz vs gpt/prof.json.gz"
    assert "100.0% (29 pairs, 0 unpaired)" in page.eval("document.querySelector('#compare').innerText")
    assert page.eval("document.querySelectorAll('#modules tbody tr').length") == 29


@pytest.mark.slow
def test_ascend_npu_ranks_report(browser, tmp_path):
    level1 = shared("npu/msinsight_alexnet_dp/text/level1")
    path = _report(tmp_path, str(level1 / "rank0_ascend_pt"), str(level1 / "rank1_ascend_pt"))
    page = _open(browser, path, tmp_path / "npu_report.png")
    facts = page.eval("[...document.querySelectorAll('#overview dd')].map(d => d.textContent)")
    assert facts[1].startswith("Ascend NPU") and "CPU only" not in page.eval("document.body.innerText")
    quality = page.eval("[...document.querySelectorAll('#overview .quality')].map(p => p.innerText)")
    assert any(q.startswith("Clock skew: ") and "device events start before the host call" in q for q in quality)
    types = page.eval("[...document.querySelectorAll('#model .blk')].map(b => b.dataset.type)")
    assert types[:3] == ["DistributedDataParallel", "AlexNet", "Sequential"] and types.count("Conv2d") == 5
    assert page.eval("document.querySelectorAll('#parallel-by-rank tbody tr').length") == 2
