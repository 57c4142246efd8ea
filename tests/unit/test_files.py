"""harness.files: a YAML or JSON file read, or one line naming the file, the problem and the fix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.capacity import CapacityInputError
from harness.capacity.inputs import load_infrastructure, read_hpa_run
from harness.errors import UsageError
from harness.files import read_json, read_json_lines, read_yaml, read_yaml_documents


def test_a_good_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("a: 1\n---\nb: 2\n")
    (tmp_path / "a.json").write_text('{"a": [1, 2]}')
    (tmp_path / "a.jsonl").write_text('{"t": 1}\n\n{"t": 2}\n')
    assert read_yaml_documents(tmp_path / "a.yml") == [{"a": 1}, {"b": 2}]
    assert read_json(tmp_path / "a.json") == {"a": [1, 2]}
    assert read_json_lines(tmp_path / "a.jsonl") == [{"t": 1}, {"t": 2}]


@pytest.mark.parametrize("content, reader, problem", [
    (None, read_yaml, "kind config {p} not found"),
    (b"a: [1,\n", read_yaml, "kind config {p} is not valid YAML (line 2: "),
    (b"\xff\xfe\x00", read_yaml, "kind config {p} is not text"),
    (b"{not json", read_json, "kind config {p} is not JSON ("),
    (b'{"t": 1}\n{oops\n', read_json_lines, "kind config {p} line 2 is not JSON ("),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, content: bytes | None, reader, problem: str) -> None:
    p = tmp_path / "cfg"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(UsageError) as exc:
        reader(p, what="kind config", missing_fix="restore it")
    assert str(exc.value).startswith(problem.format(p=p)), str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        read_json(tmp_path, what="baseline")


def test_the_error_class_is_the_callers(tmp_path: Path) -> None:
    with pytest.raises(CapacityInputError, match="node group file .* not found"):
        load_infrastructure(tmp_path / "missing.yml")
    with pytest.raises(CapacityInputError, match="HPA samples .* not found"):
        read_hpa_run(tmp_path)


def test_an_hpa_run_is_read_back(tmp_path: Path) -> None:
    (tmp_path / "hpa_samples.json").write_text(json.dumps([{"t_wall": 1.0}]))
    assert read_hpa_run(tmp_path) == ([{"t_wall": 1.0}], [], None)
    (tmp_path / "hpa_seconds.jsonl").write_text('{"t": 5}\n')
    (tmp_path / "hpa.yml").write_text("kind: HorizontalPodAutoscaler\n")
    assert read_hpa_run(tmp_path) == ([{"t_wall": 1.0}], [{"t": 5}], {"kind": "HorizontalPodAutoscaler"})
    (tmp_path / "hpa_samples.json").write_text("[{")
    with pytest.raises(CapacityInputError, match="is not JSON .*; re-run the HPA scenario"):
        read_hpa_run(tmp_path)
