"""A damaged dataset manifest (tracekit.json) is an input problem: every command that reads the dataset says which
field is wrong and exits 2, instead of failing inside as a tracekit bug. Checked on datasets convert wrote from a
sample trace and a multi-rank sample set, with the fields edited the ways a hand edit or a bad copy would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES

from tracekit.cli import main
from tracekit.convert import convert
from tracekit.dataset.manifest import MANIFEST, read_manifest
from tracekit.dataset.manifest_check import manifest_problem, resolve_device_lists


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifests")
    made = {}
    for name, inputs in (("one", [SAMPLES / "gpt" / "prof.json.gz"]), ("ranks", [SAMPLES / "dist_dp_cp"])):
        convert(inputs, root / name)
        made[name] = root / name
    return made


def _edited(good: Path, to: Path, edit) -> Path:
    shutil.copytree(good, to)
    manifest = json.loads((to / MANIFEST).read_text())
    edit(manifest)
    (to / MANIFEST).write_text(json.dumps(manifest))
    return to


def _set(*path, value):
    def edit(manifest):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


EDITS = {
    "inputs is a number": (_set("inputs", value=5), "inputs: 5 is not a list"),
    "an input is text": (_set("inputs", 0, value="x"), "inputs[0]: 'x' is not an object"),
    "an input without its path": (lambda m: m["inputs"][0].pop("path"), "inputs[0]: no 'path'"),
    "a size in words": (_set("inputs", 0, "size", value="big"), "inputs[0].size: 'big' is not an integer"),
    "a rank as text": (_set("sources", 0, "rank", value="0"), "sources[0].rank: '0' is not an integer"),
    "a process name pair cut short": (_set("sources", 0, "process_names", 0, value=[7]),
                                      "sources[0].process_names[0]: [7] is not [pid, string]"),
    "a skipped count as text": (_set("sources", 0, "skipped", value={"bad": "3"}),
                                "sources[0].skipped.bad: '3' is not an integer"),
    "a table as a list": (_set("tables", "events", value=[]), "tables.events: [] is not an object"),
    "a column type missing": (lambda m: m["tables"]["ops"]["columns"][0].pop("type"),
                              "tables.ops.columns[0]: no 'type'"),
    "row count beyond int": (_set("tables", "events", "rows", value=1e400),
                             "tables.events.rows: inf is not an integer or null"),
    "summary as a list": (_set("summary", value=["summary.json"]), "summary: ['summary.json'] is not a string"),
    "device lists as text": (_set("device_lists", value="x"), "device_lists: 'x' is not a list"),
    "a device list index beyond the lists": (_set("sources", 0, "devices", value=9),
                                             "sources[0].devices: 9 is not an index of device_lists (1 lists)"),
    "a device list as an object": (_set("device_lists", 0, value={}), "device_lists[0]: {} is not a list"),
    "a device as a number": (_set("device_lists", 0, value=[5]), "sources[0].devices[0]: 5 is not an object"),
    "a device memory in words": (_set("device_lists", 0, value=[{"name": "A", "id": 0, "totalGlobalMem": "lots"}]),
                                 "sources[0].devices[0].totalGlobalMem: 'lots' is not a number"),
}


@pytest.mark.parametrize("dataset", ["one", "ranks"])
@pytest.mark.parametrize("edit", list(EDITS))
def test_a_damaged_manifest_field_is_named_with_exit_2(converted, tmp_path, dataset, edit):
    change, said = EDITS[edit]
    ds = _edited(converted[dataset], tmp_path / "ds", change)
    for command in (["info", ds], ["modules", ds, "--format", "csv"], ["sql", ds, "select count(*) from events"]):
        result = CliRunner().invoke(main, [str(a) for a in command])
        assert result.exit_code == 2, (command[0], result.output)
        assert f"damaged dataset manifest: {said}" in result.output, (command[0], result.output)
        assert "tracekit bug" not in result.output


def test_a_manifest_nested_too_deep_is_damaged_not_a_bug(converted, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(converted["one"], ds)
    (ds / MANIFEST).write_text("[" * 200_000)
    result = CliRunner().invoke(main, ["info", str(ds)])
    assert result.exit_code == 2 and "damaged dataset manifest: RecursionError" in result.output, result.output


@pytest.mark.parametrize("dataset", ["one", "ranks"])
def test_what_convert_writes_is_sound(converted, dataset):
    manifest = json.loads((converted[dataset] / MANIFEST).read_text())
    assert manifest["format_version"] == 3 and all(s["devices"] == 0 for s in manifest["sources"])
    assert resolve_device_lists(manifest) is None and manifest_problem(manifest) is None
    assert all(s["devices"] is manifest["device_lists"][0] for s in manifest["sources"])  # shared, not copied
    assert manifest["sources"] and manifest["tables"]  # the checks had something to check


def test_a_format_1_manifest_with_inline_device_lists_is_read(converted, tmp_path):
    """Datasets written before format 2 hold each source's device list inline: read as they are."""
    def as_format_1(manifest):
        lists = manifest.pop("device_lists")
        manifest["format_version"] = 1
        for source in manifest["sources"]:
            source["devices"] = lists[source["devices"]]

    old = _edited(converted["ranks"], tmp_path / "v1", as_format_1)
    for args in (["info", str(old)], ["modules", str(old)], ["sql", str(old), "SELECT count(*) FROM events"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    assert read_manifest(old)["sources"] == read_manifest(converted["ranks"])["sources"]


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("spoil, file, said", [
    (_cut, "events.parquet", "damaged dataset table"),
    (_cut, "collectives.parquet", "damaged dataset table"),
    (Path.unlink, "events.parquet", "dataset table missing"),
])
def test_a_damaged_table_file_is_named_with_exit_2(converted, tmp_path, spoil, file, said):
    """A Parquet file of the dataset cut short or gone: the commands that read it name it (exit 2), SQL included
    (its views read every table's schema)."""
    ds = tmp_path / "ds"
    shutil.copytree(converted["one"], ds)
    spoil(ds / file)
    commands = [["sql", ds, "select 1"], ["parallel", ds, "--json"]]
    if file == "events.parquet":
        commands += [["info", ds]]  # modules answers from its rows file without the events
    for command in commands:
        result = CliRunner().invoke(main, [str(a) for a in command])
        assert result.exit_code == 2, (command[0], result.output)
        assert f"{ds / file}: {said}" in result.output and "tracekit bug" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 or "warning" in result.output, result.output


def test_a_table_whose_column_name_is_no_utf8_is_named_by_sql(converted, tmp_path):
    """A byte of a column name in collectives.parquet's footer made invalid UTF-8: DuckDB's Python binding fails
    with a RuntimeError, not a duckdb.Error (found by a damaged-dataset sweep); `sql` names the file, exit 2."""
    ds = tmp_path / "ds"
    shutil.copytree(converted["ranks"], ds)  # a data-parallel job: collectives.parquet has rows
    table = ds / "collectives.parquet"
    data = bytearray(table.read_bytes())
    at = data.find(b"\x18\x05group%")  # the footer's schema element of column `group` (thrift: name length, name)
    assert at > 0 and data.find(b"\x18\x05group%", at + 1) < 0
    data[at + 5] = 0x8D  # gro\x8dp
    table.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["sql", str(ds), "SELECT * FROM collectives LIMIT 3"])
    assert result.exit_code == 2, result.output
    assert f"{table}: damaged dataset table" in result.output and "tracekit bug" not in result.output, result.output
