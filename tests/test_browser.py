"""The report pages in a real browser (issue 19 item 5): index.html of a clean run and of a run
with three defects, the matrix page, the trend page and the proxy's report, each rendered by
headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it). Each must render (the DOM
after layout holds the page's key facts: overall verdict, certified or not, each FAIL clause)
and its screenshot goes to the run's folder for a person to look at; the 3-defect page is
measured (height of the trimmed screenshot) and must stay within a few screens before its
collapsed details.

Without chromium the test skips, except in CI (``CI=true``), where that is a FAIL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest
import _forkrun as forkrun

# ~30 s of CPU (six suite runs, one chromium each): make selftest-heavy and CI run it
pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
DEADLINE_S = 120                       # one chromium run
RUN_DEADLINE_S = 240                   # one suite run
WIDTH, TALL = 1280, 30000              # the window: wide as a laptop, taller than any page here
# the 3-defect page before issue 19 measured 41,158 px at this width; the goal is a third
HEIGHT_LIMIT = 41158 // 3
DEFECTS = ("deltas-dont-add-up", "interleave-responses", "output-mismatch")


def _chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed (apt-get install -y chromium); the browser check needs it")


def _browser(url: str, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", *extra, url],
            capture_output=True, text=True, timeout=DEADLINE_S)


class _Text(HTMLParser):
    """The text a reader sees: no style, no script, no closed <details> body."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "title"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def render(page: Path, shots: Path, name: str) -> tuple[str, int]:
    """(the page's rendered text, its content height in px); the screenshot goes to ``shots``."""
    from PIL import Image, ImageChops

    url = page.resolve().as_uri()
    png = shots / f"{name}.png"
    png.unlink(missing_ok=True)
    # one chromium run: the DOM after layout on stdout, the screenshot to its file
    dom = _browser(url, f"--window-size={WIDTH},{TALL}", f"--screenshot={png}", "--dump-dom")
    assert dom.returncode == 0, f"chromium could not render {page}: {dom.stderr[-800:]}"
    assert "<body" in dom.stdout, f"chromium rendered no body for {page}"
    assert png.exists(), f"no screenshot of {page}: {dom.stderr[-800:]}"
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    box = ImageChops.difference(rgb, Image.new("RGB", rgb.size, (255, 255, 255))).getbbox()
    height = box[3] if box else 0
    assert height < TALL, f"{page} is taller than the {TALL} px window: the measure is not the page's"
    rgb.crop((0, 0, WIDTH, height + 16)).save(png)
    parser = _Text()
    parser.feed(dom.stdout)
    return " ".join(" ".join(parser.parts).split()), height


def _suite(report: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = forkrun.run([sys.executable, "-m", "pytest", str(ROOT / "cases"), "-q", "-p", "no:cacheprovider",
                        "-p", "no:xdist", "--turn-timeout", "3", "--report-dir", str(report), *args],
                       cwd=ROOT, env=env, timeout=RUN_DEADLINE_S)
    assert (report / "certificate.json").exists(), proc.stdout[-1500:] + proc.stderr[-1500:]
    return json.loads((report / "certificate.json").read_text())


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = ROOT / "reports" / "selftest-browser"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A clean run and a run with three defects (their report folders)."""
    _chromium()
    root = tmp_path_factory.mktemp("browser-runs")
    with ThreadPoolExecutor(max_workers=2) as pool:     # both at once: the module is one xdist unit
        clean = pool.submit(_suite, root / "clean")
        defects = pool.submit(_suite, root / "defects", *[a for name in DEFECTS for a in ("--reference-defect", name)])
        clean.result(), defects.result()
    return {"clean": root / "clean", "defects": root / "defects"}


def _cert(folder: Path) -> dict:
    return json.loads((folder / "certificate.json").read_text(encoding="utf-8"))


def _key_facts(text: str, cert: dict) -> None:
    assert cert["overall"] in text
    certified = "Certified:" if cert["certification"]["certified"] else "Not certified"
    assert certified in text, f"the page does not say {certified!r}"
    for row in cert["clauses"]:
        if row["verdict"] == "FAIL":
            assert row["id"] in text, f"FAIL clause {row['id']} is not visible"


def test_index_clean(runs: dict[str, Path], shots: Path) -> None:
    cert = _cert(runs["clean"])
    text, height = render(runs["clean"] / "index.html", shots, "index-clean")
    _key_facts(text, cert)
    assert cert["certification"]["certified"] and "Nothing: no clause FAIL" in text
    print(f"index.html of the clean run: {height} px")


def test_index_three_defects(runs: dict[str, Path], shots: Path) -> None:
    cert = _cert(runs["defects"])
    assert cert["overall"] == "FAIL"
    text, height = render(runs["defects"] / "index.html", shots, "index-3-defects")
    _key_facts(text, cert)
    # each failing clause's evidence is a picture, not only words
    assert "breaks STREAM-DELTAS-ADD-UP" in text and "deltas add up" in text
    assert "one bar per response, created → terminal" in text
    print(f"index.html with {', '.join(DEFECTS)}: {height} px (limit {HEIGHT_LIMIT})")
    assert 0 < height <= HEIGHT_LIMIT, f"the 3-defect page is {height} px tall, limit {HEIGHT_LIMIT}"


def test_matrix_page(runs: dict[str, Path], shots: Path, tmp_path: Path) -> None:
    page = tmp_path / "matrix.html"
    proc = subprocess.run([sys.executable, "-m", "conformance", "matrix", str(runs["clean"] / "certificate.json"),
                           str(runs["defects"] / "certificate.json"), "--html", str(page)],
                          cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S)
    assert proc.returncode == 0, proc.stderr
    text, _ = render(page, shots, "matrix")
    for row in _cert(runs["defects"])["clauses"]:
        if row["verdict"] == "FAIL":
            assert row["id"] in text and "FAIL" in text


def test_trend_page(runs: dict[str, Path], shots: Path, tmp_path: Path) -> None:
    nights = tmp_path / "nights"
    for number, name in enumerate(("clean", "clean", "defects", "defects", "defects")):
        cert = _cert(runs[name])
        cert["target"]["ws_host"] = "gateway.example:443"      # one target over five nights
        cert["started"], cert["run_id"] = f"2026-12-0{number + 1}T03:23:00Z", f"night-{number}"
        (nights / f"night-{number}").mkdir(parents=True)
        (nights / f"night-{number}" / "certificate.json").write_text(json.dumps(cert), encoding="utf-8")
    out = tmp_path / "trend"
    proc = subprocess.run([sys.executable, "-m", "conformance", "trend", str(nights), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S)
    assert proc.returncode == 0, proc.stderr
    text, _ = render(out / "trend.html", shots, "trend")
    assert "STREAM-DELTAS-ADD-UP" in text and "2026-12-03" in text      # the night it changed


def test_proxy_report(shots: Path, tmp_path: Path) -> None:
    _chromium()
    import test_proxy as proxy_tests     # its reference-server-behind-a-proxy harness

    proxied = proxy_tests.Proxied(defects=("deltas-dont-add-up",))
    try:
        proxy_tests.sdk_traffic(proxied.proxy.base_url())
    finally:
        proxied.stop()
    paths = proxied.observer.write(tmp_path, "20260101-000000-abcdef")
    cert = _cert(tmp_path)
    text, _ = render(Path(paths["html"]), shots, "proxy")
    _key_facts(text, cert)
    assert "observed traffic" in text
