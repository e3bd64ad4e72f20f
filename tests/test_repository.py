"""A clone holds everything it needs (issue 7): self-tests of the repository itself.

* No tracked file names a path of one machine (absolute home/work/temp paths) or a folder
  beside the checkout (the spec notes' folder the project started from).
* Every spec citation in a .py, .toml or .md file ("§4.3 item 14", "§4.4 items 20-23a",
  "§6 question 7", a bare "item 35") names a section, item or question that exists in
  docs/spec.md, which is parsed here.
* The example streams the monitor and schema self-tests read are in tests/data/examples/; a
  missing one fails here instead of shrinking a parametrized test to nothing.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "docs" / "spec.md"
EXAMPLES = REPO / "tests" / "data" / "examples"
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()

# The example files that tests and benches read (tests/data/examples/README.md lists them).
EXAMPLE_FILES = sorted([
    "error-generic-invalid_request.json", "error-invalid_stream_id.json",
    "error-legacy-flat-shape.json", "error-previous_response_not_found-named-lane.json",
    "error-previous_response_not_found.json", "error-rate_limited-with-headers.json",
    "error-websocket_connection_limit_reached.json", "error-websocket_stream_limit_reached.json",
    "response-inject-failed-beta.json", "response-steer-failed.json",
    "stream-failed-continuation-evicts-cache.json", "stream-function-call-turn.json",
    "stream-generate-false-warmup.json", "stream-steer.json", "stream-text-turn.json",
    "stream-two-lanes-interleaved.json",
])

# Paths that only exist on one machine, and the folder that used to sit beside the checkout.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|mnt)/|[A-Za-z]:\\\\Users|\.\./shared\b")
KNOWN_EXCEPTIONS = {
    THIS,  # holds the patterns above
}
# Recorded production frames quote paths of the vendor's sandbox (code interpreter's
# /mnt/data), not of any machine of ours; they are kept exactly as recorded.
RECORDED_DATA = "tests/data/recorded/"
# The spec notes' old file name: the reference is docs/spec.md now.
OLD_SPEC_NAME = re.compile(r"websocket-mode\.md")
OLD_SPEC_NAME_EXCEPTIONS = {
    THIS,
}


def tracked_text_files(*suffixes: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    names = [n for n in out.decode().split("\0") if n]
    return [n for n in names if not suffixes or n.endswith(suffixes)]


def read_text(name: str) -> str | None:
    try:
        return (REPO / name).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return None  # binary, or deleted in the work tree


def test_no_machine_paths_in_tracked_files():
    hits = []
    for name in tracked_text_files():
        if name in KNOWN_EXCEPTIONS or name.startswith(RECORDED_DATA):
            continue
        text = read_text(name)
        for lineno, line in enumerate((text or "").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{name}:{lineno}: {line.strip()[:100]}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_spec_is_cited_by_its_name_in_the_repository():
    hits = [name for name in tracked_text_files() if name not in OLD_SPEC_NAME_EXCEPTIONS
            and OLD_SPEC_NAME.search(read_text(name) or "")]
    assert not hits, f"cite docs/spec.md, not the spec notes' file: {hits}"


def test_machine_path_pattern_catches_what_it_should():
    up = ".." + "/"     # spelled apart so that this file does not match the check it tests
    for bad in ("/" + "work/shared/spec", f"see {up}shared/design.md", "/" + "tmp/x", "/" + "home/u/repo",
                "C:\\\\Users\\x"):
        assert MACHINE_PATH.search(bad), bad
    for fine in ("docs/spec.md", "tests/data/examples/", "a/b/work/c", "https://x.org/home/page"):
        assert not MACHINE_PATH.search(fine), fine


# -- docs/spec.md: sections, items, questions ------------------------------------------------

HEADING = re.compile(r"^(##|###) (\d+(?:\.\d+)?)\.? ")
NUMBERED = re.compile(r"^(\d+[a-z]?)\. ")


def parse_spec(text: str) -> tuple[set[str], dict[str, list[str]]]:
    """Sections ("4", "4.3") and the numbered lines of each section, in order."""
    sections: set[str] = set()
    numbered: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        h = HEADING.match(line)
        if h:
            current = h.group(2)
            sections.add(current)
            numbered[current] = []
            continue
        n = NUMBERED.match(line)
        if n and current is not None:
            numbered[current].append(n.group(1))
    return sections, numbered


@pytest.fixture(scope="module")
def spec() -> tuple[set[str], dict[str, list[str]]]:
    return parse_spec(SPEC.read_text(encoding="utf-8"))


def _key(item: str) -> tuple[int, str]:
    m = re.fullmatch(r"(\d+)([a-z]?)", item)
    return int(m.group(1)), m.group(2)


def test_spec_has_every_section_and_item(spec):
    sections, numbered = spec
    assert {str(n) for n in range(8)} <= sections
    assert {f"4.{n}" for n in range(12)} | {f"1.{n}" for n in range(1, 6)} | {f"3.{n}" for n in range(1, 11)} <= sections
    items = [i for s in sorted(numbered, key=lambda s: [int(x) for x in s.split(".")]) if s.startswith("4.") for i in numbered[s]]
    expected = [str(n) for n in range(1, 74)]
    lettered = (("3a", "3"), ("4a", "4"), ("15a", "15"), ("16a", "16"), ("16b", "16a"), ("19a", "19"), ("23a", "23"),
                ("35a", "35"), ("35b", "35a"), ("38a", "38"), ("38b", "38a"), ("51a", "51"))
    for extra, after in lettered:
        expected.insert(expected.index(after) + 1, extra)
    assert items == expected, f"§4 items must run 1..73 with {', '.join(e for e, _ in lettered)}, in order"
    assert numbered["6"] == [str(n) for n in range(1, 22)]
    assert "[S27]" in SPEC.read_text(encoding="utf-8").split("## 7. Sources", 1)[1]


# "§4.4 items 20-23a", "§4.3 items 11-15, 17, 18", "§4.5 (..., items 24-35)", "§6 question 7",
# "§4.5-4.7"; a bare "item 35" / "items 25-35" refers to the numbering of §4.
ITEM_LIST = r"\d+[a-z]?(?:\s*(?:-|–|,|and|or)\s*\d+[a-z]?)*"
SECTION_REF = re.compile(r"§(\d+(?:\.\d+)?)(?:\s*-\s*§?(\d+\.\d+))?")
ATTACHED = re.compile(r"§(\d+(?:\.\d+)?)\s*\(?(?:[^()§\n]{0,60}?\b)?(items?|questions?) (" + ITEM_LIST + r")")
BARE = re.compile(r"\b(items?) (" + ITEM_LIST + r")")


def expand(items: str, known: list[str]) -> list[str]:
    """The items a list names; a range "20-23a" covers every known item between its ends."""
    out = []
    for part in re.split(r"\s*(?:,|and|or)\s*", items):
        if re.search(r"[-–]", part):
            lo, hi = (p.strip() for p in re.split(r"[-–]", part))
            out += [lo, hi] + [k for k in known if _key(lo) < _key(k) < _key(hi)]
        elif part:
            out.append(part)
    return out


def citations(text: str):
    """(section or None, kind, items) for every citation form in text."""
    for m in SECTION_REF.finditer(text):
        yield m.group(1), "section", []
        if m.group(2):
            yield m.group(2), "section", []
    attached_spans = []
    for m in ATTACHED.finditer(text):
        attached_spans.append(m.span(3))
        yield m.group(1), m.group(2).rstrip("s"), m.group(3)
    for m in BARE.finditer(text):
        if not any(a <= m.start(2) < b for a, b in attached_spans):
            yield None, "item", m.group(2)


def test_citation_parser_reads_the_forms_in_use():
    got = list(citations("spec §4.9 item 47; §4.4 items 20-23a; §4.3 items 11-15, 17, 18; "
                         "§4.8 (items 43-44); §6 question 7; §4.5-4.7; (item 35)"))
    assert ("4.9", "item", "47") in got and ("4.4", "item", "20-23a") in got
    assert ("4.3", "item", "11-15, 17, 18") in got and ("4.8", "item", "43-44") in got
    assert ("6", "question", "7") in got and ("4.7", "section", []) in got
    assert (None, "item", "35") in got
    assert expand("20-23a", ["19", "20", "21", "22", "23", "23a", "24"]) == ["20", "23a", "21", "22", "23"]


def test_every_spec_citation_resolves(spec):
    sections, numbered = spec
    all_items = [i for s, items in numbered.items() if s.startswith("4.") for i in items]
    bad = []
    for name in tracked_text_files(".py", ".toml", ".md"):
        if name in ("docs/spec.md", THIS):
            continue
        text = read_text(name) or ""
        if "§" not in text and "item" not in text:
            continue
        for sec, kind, items in citations(text):
            where = f"{name}: §{sec} {kind} {items}" if sec else f"{name}: {kind} {items}"
            if sec is not None and sec not in sections:
                bad.append(where + " (no such section)")
            elif kind == "section":
                continue
            else:
                known = numbered.get(sec, []) if sec else all_items
                missing = [i for i in expand(items, known) if i not in known]
                if missing:
                    bad.append(f"{where} (missing {missing})")
    assert not bad, "citations that docs/spec.md does not resolve:\n" + "\n".join(bad)


# -- example data -------------------------------------------------------------------------------


def test_example_streams_are_in_the_repository():
    present = sorted(p.name for p in EXAMPLES.glob("*.json"))
    assert present == EXAMPLE_FILES, f"tests/data/examples/ must hold exactly {len(EXAMPLE_FILES)} example files"
    assert (EXAMPLES / "README.md").is_file()
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in EXAMPLE_FILES), "README.md describes every file"
    assert len([n for n in EXAMPLE_FILES if n.startswith("stream-")]) == 6
