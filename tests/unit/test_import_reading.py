"""Reading a file to import: parsed as it is read (with its progress told), the same values as the
standard library's parser, and the reading shown with its time left (``baseline import``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

import coordinator.baselines.importers.document as document
import coordinator.console
from coordinator.baselines.importers.document import read_document, read_lines
from coordinator.cli import cli
from coordinator.console import ReadProgress
from loadgen.errors import UserError
from tests.paths import DATA

GUIDELLM = DATA / "peer-results" / "guidellm-concurrent16-gpu8b.json"


def told(path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> tuple[document.Document, list[int]]:
    monkeypatch.setattr(document, "CHUNK", chunk)
    seen: list[int] = []
    doc = read_document(
        path, lambda p, done, size: seen.append(done) if p == path and size == path.stat().st_size else None
    )
    return doc, seen


def test_json_is_parsed_as_read_with_the_standard_library_s_values(monkeypatch: pytest.MonkeyPatch) -> None:
    doc, seen = told(GUIDELLM, 64 * 1024, monkeypatch)
    assert doc.syntax == "json" and doc.data == json.loads(GUIDELLM.read_text())
    assert seen == sorted(seen) and len(seen) > 10 and seen[-1] == GUIDELLM.stat().st_size


@pytest.mark.parametrize(
    ("text", "syntax", "data"),
    [
        ('{"a": NaN, "b": 1.5}', "json", {"a": float("nan"), "b": 1.5}),  # refused by ijson: parsed again
        ('{"big": 123456789012345678901234567890}', "json", {"big": 123456789012345678901234567890}),
        ('{"a": 1}\n\n{"a": 2.5}\n', "jsonl", [{"a": 1}, {"a": 2.5}]),
        ("name: card\nsteps: []\n", "yaml", {"name": "card", "steps": []}),
    ],
)
def test_what_the_streaming_parser_refuses_is_read_as_before(
    tmp_path: Path, text: str, syntax: str, data: object
) -> None:
    path = tmp_path / "file"
    path.write_text(text)
    doc = read_document(path)
    assert doc.syntax == syntax
    assert json.dumps(doc.data) == json.dumps(data)  # NaN == NaN as text


def test_a_file_that_is_not_text_or_not_there_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(UserError, match=r"binary.json: not a text file"):
        read_document(binary)
    with pytest.raises(UserError, match=r"missing.json: cannot read it"):
        read_document(tmp_path / "missing.json")
    with pytest.raises(UserError, match=r"neither JSON, JSON lines nor YAML"):
        (tmp_path / "bad").write_text("{: [\n")
        read_document(tmp_path / "bad")
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(b'{"a": 1}\n\xff\n')
    with pytest.raises(UserError, match=r"lines.jsonl: not a text file"):
        list(read_lines(lines))


def test_lines_are_numbered_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "CHUNK", 7)
    path = tmp_path / "records.jsonl"
    path.write_text('{"n": 1}\n\n{"n": 22222}\n  \n{"n": 3}')  # no newline at the end
    seen: list[int] = []
    lines = list(read_lines(path, lambda p, done, size: seen.append(done)))
    assert [(n, json.loads(line)["n"]) for n, line in lines] == [(1, 1), (3, 22222), (5, 3)]
    assert seen[-1] == path.stat().st_size


def test_plain_lines_say_each_quarter_and_the_time_left() -> None:
    out = io.StringIO()
    size = coordinator.console.SHOWN_FROM
    with ReadProgress(Console(file=out, width=200), live=False) as progress:
        for done in [*range(0, size, size // 10), size]:
            progress(Path("big.json"), done, size)
        progress(Path("small.json"), 10, 100)  # too small to show
        progress(Path("big.json"), size, size)  # read once more, at once
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines[:3]] == ["25", "50", "75"]
    assert all("of 16.8 MB, about" in line and line.endswith("left") for line in lines[:3])
    assert lines[3].startswith("read big.json (16.8 MB) in ") and lines[4] == "read big.json (16.8 MB) in 0s"
    assert len(lines) == 5


def test_on_a_terminal_the_reading_is_a_bar_with_the_time_left() -> None:
    out = io.StringIO()
    size = coordinator.console.SHOWN_FROM
    with ReadProgress(Console(file=out, width=120, force_terminal=True), live=None) as progress:
        for done in (size // 4, size // 2, size):
            progress(Path("big.json"), done, size)
    text = out.getvalue()
    assert "reading big.json" in text and "16.8/16.8 MB" in text and "0:00:00" in text


def test_baseline_import_shows_the_reading_of_a_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator.console, "SHOWN_FROM", 0)  # the peers' file is small: show it anyway
    monkeypatch.setattr(document, "CHUNK", 64 * 1024)
    result = CliRunner().invoke(
        cli, ["baseline", "import", str(GUIDELLM), "--name", "g", "--store", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    shown = [line for line in result.stderr.splitlines() if "guidellm-concurrent16-gpu8b.json" in line]
    assert [line.split(": ")[1].split("%")[0] for line in shown[:3]] == ["25", "50", "75"], shown
    assert shown[3].startswith(f"read {GUIDELLM} (1.4 MB) in"), shown
    assert "imported" in result.stdout and yaml.safe_load((tmp_path / "g" / "baseline.json").read_text())["name"] == "g"
