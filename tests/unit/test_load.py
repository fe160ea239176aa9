"""load.py: files to documents, with a Location for every node, env substitution and safe YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.errors import Location, ManifestError
from reconciler.load import find_files, load_manifests, parse_text


def parse(text: str, name: str = "m.yaml", env: dict[str, str] | None = None):
    return parse_text(textwrap.dedent(text).lstrip("\n"), name, env or {})


def one(text: str, name: str = "m.yaml", env: dict[str, str] | None = None):
    """The single document of `text`; fails if there are problems."""
    docs, problems = parse(text, name, env)
    assert problems == []
    assert len(docs) == 1
    return docs[0]


def problems_of(text: str, name: str = "m.yaml", env: dict[str, str] | None = None) -> list[str]:
    _, problems = parse(text, name, env)
    assert problems, "expected problems"
    return [str(p) for p in problems]


def lc(doc, *path) -> tuple[int, int]:
    location = doc.locations[tuple(path)]
    return location.line, location.column


# --- positions --------------------------------------------------------------------------------------

MANIFEST = """
kind: Stream
name: JOBS
spec:
  subjects:
    - jobs.>
    - "work.*"
  placement: {cluster: east, tags: [ssd, fast]}
  sources:
    - name: A
      filter_subject: a.>
"""


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ((), (1, 1)),
        (("kind",), (1, 1)),
        (("name",), (2, 1)),
        (("spec",), (3, 1)),
        (("spec", "subjects"), (4, 3)),
        (("spec", "subjects", 0), (5, 7)),
        (("spec", "subjects", 1), (6, 7)),
        (("spec", "placement"), (7, 3)),
        (("spec", "placement", "cluster"), (7, 15)),
        (("spec", "placement", "tags", 1), (7, 42)),
        (("spec", "sources", 0), (9, 7)),
        (("spec", "sources", 0, "filter_subject"), (10, 7)),
    ],
)
def test_every_key_and_list_item_has_its_position(path, position):
    doc = one(MANIFEST)
    assert lc(doc, *path) == position


def test_where_falls_back_to_the_nearest_ancestor():
    doc = one(MANIFEST)
    assert doc.where(("spec", "subjects", 5)) == Location("m.yaml", 4, 3)
    assert doc.where(("spec", "max_age")) == Location("m.yaml", 3, 1)
    assert doc.where(("nothing", "here")) == Location("m.yaml", 1, 1)
    assert str(doc.where(("spec",))) == "m.yaml:3:1"


def test_multi_document_file_keeps_lines_and_indexes():
    docs, problems = parse(
        """
        kind: Stream
        name: A
        ---
        # only a comment: no document
        ---
        kind: Stream
        name: B
        ---
        """
    )
    assert problems == []
    assert [d.data["name"] for d in docs] == ["A", "B"]
    assert [d.index for d in docs] == [0, 2]
    assert lc(docs[1], "name") == (7, 1)


def test_json_file_has_positions_too():
    doc = one(
        """
        {
          "kind": "Stream",
          "name": "JOBS",
          "spec": {"subjects": ["jobs.>", "x"], "max_age": 1000}
        }
        """,
        name="m.json",
    )
    assert doc.data == {
        "kind": "Stream",
        "name": "JOBS",
        "spec": {"subjects": ["jobs.>", "x"], "max_age": 1000},
    }
    assert lc(doc, "name") == (3, 3)
    assert lc(doc, "spec", "subjects", 1) == (4, 35)
    assert lc(doc, "spec", "max_age") == (4, 41)


def test_json_with_tabs_is_read_too():
    doc = one('{\n\t"kind": "Stream",\n\t"name": "JOBS"\n}\n', name="m.json")
    assert doc.data == {"kind": "Stream", "name": "JOBS"}
    assert doc.where(("name",)).file == "m.json"
    assert doc.where(("name",)).line >= 1  # YAML cannot read tabs: JSON gives no inner positions


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{\n  "kind": "Stream",\n  "name": "JOBS"\n  "spec": {}\n}\n', 4),  # missing comma
        ('{\n\t"kind": "Stream",\n\t"name": "JOBS"\n\t"spec": {}\n}\n', 4),  # same, with tabs
        ('{\n  "kind": "Stream",\n  "name": "JOBS"\n', 4),  # not closed
    ],
)
def test_malformed_json_is_reported_at_its_line(text, line):
    docs, problems = parse_text(text, "m.json", {})
    assert docs == []
    assert len(problems) == 1
    assert problems[0].location.file == "m.json"
    assert problems[0].location.line == line
    assert problems[0].message.startswith("invalid JSON")


@pytest.mark.parametrize(
    "text",
    [
        '{"kind": "Stream", "name": "JOBS",}',  # trailing comma
        '{"kind": "Stream", "name": JOBS}',  # unquoted string
        '{"kind": "Stream", "name": "JOBS", "spec": {"max_age": 1h}}',
        "kind: Stream\nname: JOBS\n",  # not JSON at all
    ],
)
def test_json_file_that_is_not_json_is_refused(text):
    _, problems = parse_text(text, "m.json", {})
    assert [p.message for p in problems if "invalid JSON" in p.message]


def test_json_array_reads_the_same_with_or_without_tabs():
    spaced = '[\n  {"kind": "Stream", "name": "A"},\n  {"kind": "Stream", "name": "B"}\n]\n'
    tabbed = spaced.replace("  ", "\t")
    with_tabs, _ = parse_text(tabbed, "m.json", {})
    with_spaces, _ = parse_text(spaced, "m.json", {})
    assert [d.data for d in with_tabs] == [{"kind": "Stream", "name": "A"}, {"kind": "Stream", "name": "B"}]
    assert [d.data for d in with_spaces] == [d.data for d in with_tabs]


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("kind: Stream\nspec:\n  subjects: [a\n  max_age: 1h\n", (4, 10), "invalid YAML"),
        ("kind: Stream\nspec:\n  description: a: b\n", (3, 17), "mapping values are not allowed"),
        ("kind: Stream\n name: X\n", (2, 6), "invalid YAML"),
        ('kind: "Stream\n', (2, 1), "invalid YAML"),
    ],
)
def test_malformed_yaml_is_reported_at_its_line(text, position, fragment):
    docs, problems = parse_text(text, "m.yaml", {})
    assert docs == []
    assert len(problems) == 1
    location = problems[0].location
    assert (location.file, location.line, location.column) == ("m.yaml", *position)
    assert fragment in problems[0].message


@pytest.mark.parametrize("brk", ["\x85", "\u2028", "\u2029"])
def test_positions_after_a_break_only_yaml_counts_are_an_editors(brk):
    # YAML 1.1 breaks lines at NEL, LS and PS too; editors and grep -n do not.
    doc = one(f'kind: Stream\nname: S\nspec:\n  description: "a{brk}b"\n  max_age: 1h\n')
    assert lc(doc, "spec", "max_age") == (5, 3)
    doc = one(f'kind: Stream\nname: S\nspec: {{description: "é{brk}é", max_age: 1h}}\n')
    assert lc(doc, "spec", "max_age") == (3, 28)  # characters, not bytes, before it on its line


def test_malformed_yaml_after_a_nel_is_reported_at_its_editor_line():
    docs, problems = parse_text('kind: Stream\nspec: {description: "a\x85b", max_age: [}\n', "m.yaml", {})
    assert docs == []
    assert [(p.location.line, p.location.column) for p in problems] == [(2, 38)]


# --- environment variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${N}", {"N": "5"}, 5),
        ("${N:-3}", {}, 3),
        ('"${N:-3}"', {}, "3"),
        ("'${N:-3}'", {}, "3"),
        ("${N:-3}", {"N": "7"}, 7),
        ("${N:-3}", {"N": ""}, ""),  # set but empty: an empty string, not null
        ("${B:-true}", {}, True),
        ("${B:-yes}", {}, "yes"),  # never a YAML 1.1 boolean
        ("${F:-1.5}", {}, 1.5),
        ("${S:-24h}", {}, "24h"),
        ("x-${N:-3}-y", {}, "x-3-y"),
        ("${A}.${B}", {"A": "jobs", "B": ">"}, "jobs.>"),
        ("${N:-}", {}, ""),
        ('"${N:-}"', {}, ""),
        ("$$HOME", {"HOME": "/root"}, "$HOME"),
        ("$${N}", {"N": "5"}, "${N}"),
        ("$$$${N}", {"N": "5"}, "$${N}"),
        ("cost$5", {}, "cost$5"),  # a lone $ is kept
        ("${V}", {"V": "[1, 2]"}, "[1, 2]"),  # a value is never parsed as YAML structure
        ("${V}", {"V": "a: b"}, "a: b"),
        ("${V}", {"V": "!!python/name:os.system"}, "!!python/name:os.system"),
        ("${V}", {"V": "*alias"}, "*alias"),
    ],
)
def test_substitution(value, env, expected):
    doc = one(f"key: {value}\n", env=env)
    assert doc.data["key"] == expected
    assert type(doc.data["key"]) is type(expected)


def test_substitution_in_keys_is_not_done_and_positions_stay():
    doc = one("${K}: v\nlist:\n  - ${N:-3}\n", env={"K": "x"})
    assert doc.data == {"${K}": "v", "list": [3]}
    assert lc(doc, "list", 0) == (3, 5)


def test_unset_variable_is_an_error_at_its_line():
    messages = problems_of(
        """
        kind: Stream
        name: ${NAME:-JOBS}
        spec:
          description: "${TEAM} and ${OWNER}"
          max_age: ${AGE}
        """,
        env={"OWNER": "ops"},
    )
    assert messages == [
        "m.yaml:4:16: environment variable TEAM is not set (write ${TEAM:-default} for a default)",
        "m.yaml:5:12: environment variable AGE is not set (write ${AGE:-default} for a default)",
    ]


def test_documents_with_problems_are_dropped_others_are_kept():
    docs, problems = parse("a: ${UNSET}\n---\nb: 1\n")
    assert [d.data for d in docs] == [{"b": 1}]
    assert [p.location.line for p in problems] == [1]


def test_load_manifests_uses_os_environ_by_default(tmp_path, monkeypatch):
    (tmp_path / "m.yaml").write_text("name: ${NATS_RECONCILE_TEST_NAME}\n")
    monkeypatch.setenv("NATS_RECONCILE_TEST_NAME", "FROM_ENV")
    assert load_manifests([tmp_path])[0].data == {"name": "FROM_ENV"}
    assert load_manifests([tmp_path], env={"NATS_RECONCILE_TEST_NAME": "GIVEN"})[0].data == {"name": "GIVEN"}


# --- YAML typing and safety -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("Yes", "Yes"),
        ("true", True),
        ("false", False),
        ("True", True),
        ("~", None),
        ("null", None),
        ("", None),
        ("12", 12),
        ("-1", -1),
        ("1.5", 1.5),
        ("'12'", "12"),
        ("2024-05-01", "2024-05-01"),  # timestamps stay text for the schema to judge
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        ("24h", "24h"),
        ("1GiB", "1GiB"),
    ],
)
def test_scalar_types(value, expected):
    doc = one(f"key: {value}\n")
    assert doc.data["key"] == expected
    assert type(doc.data["key"]) is type(expected)


def test_duplicate_keys_are_an_error_at_the_second_one():
    assert problems_of("kind: Stream\nname: A\nspec:\n  max_age: 1h\n  max_age: 2h\n") == [
        "m.yaml:5:3: duplicate key 'max_age'"
    ]


def test_duplicate_keys_in_json_too():
    assert problems_of('{"name": "A",\n "name": "B"}', name="m.json") == ["m.json:2:2: duplicate key 'name'"]


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        (
            "a: !!python/object/apply:os.system [echo]\n",
            "'tag:yaml.org,2002:python/object/apply:os.system'",
            (1, 4),
        ),
        ("a: !!python/name:os.system\n", "python/name:os.system", (1, 4)),
        ("a: !!binary aGVsbG8=\n", "'tag:yaml.org,2002:binary' is not allowed", (1, 4)),
        ("a: !custom x\n", "'!custom' is not allowed", (1, 4)),
        ("a: !!set {x: null}\n", "'tag:yaml.org,2002:set' is not allowed", (1, 4)),
        ("a: !!omap [x: 1]\n", "'tag:yaml.org,2002:omap' is not allowed", (1, 4)),
        ("b: &x {c: 1}\na:\n  <<: *x\n", "merge keys (<<) are not supported", (3, 3)),
        ("? [a, b]\n: c\n", "a mapping key must be a plain string", (1, 3)),
        ("a: &r [*r]\n", "recursive alias", (1, 4)),
    ],
)
def test_unsafe_or_unsupported_yaml_is_refused(text, fragment, position):
    docs, problems = parse_text(text, "m.yaml", {})
    assert docs == []
    assert len(problems) == 1
    assert fragment in problems[0].message
    assert (problems[0].location.line, problems[0].location.column) == position


def test_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    parse_text(f'a: !!python/object/apply:os.system ["touch {marker}"]\n', "m.yaml", {})
    assert not marker.exists()


def test_alias_bomb_stops_early():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    docs, problems = parse_text("\n".join(lines) + "\n", "m.yaml", {})
    assert docs == []
    assert len(problems) == 1
    assert "alias bomb" in problems[0].message
    assert problems[0].location.line > 0


def test_aliases_within_the_limit_work():
    doc = one("a: &x [1, 2]\nb: *x\n")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_deep_nesting_is_refused():
    docs, problems = parse_text("a: " + "[" * 80 + "]" * 80 + "\n", "m.yaml", {})
    assert docs == []
    assert any("nesting deeper than" in p.message for p in problems)


# --- files and directories --------------------------------------------------------------------------


def test_directories_are_read_recursively_in_sorted_order(tmp_path):
    for name in ["b.yaml", "a/z.yml", "a/b/c.json", "c.txt", "README.md", "0.yaml", "a/c.yaml"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    (tmp_path / "dir.yaml").mkdir()  # a directory named like a manifest is not a file
    found = [p.relative_to(tmp_path).as_posix() for p in find_files([tmp_path])]
    assert found == ["0.yaml", "a/b/c.json", "a/c.yaml", "a/z.yml", "b.yaml"]


def test_files_and_directories_can_be_mixed(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.yaml").write_text("{}\n")
    (tmp_path / "single.txt").write_text("{}\n")  # a file named explicitly is read whatever its suffix
    assert find_files([tmp_path / "single.txt", tmp_path / "d"]) == [
        tmp_path / "single.txt",
        tmp_path / "d" / "x.yaml",
    ]


def test_load_manifests_reads_documents_in_file_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.yaml").write_text("name: B1\n---\nname: B2\n")
    (tmp_path / "a.json").write_text('{"name": "A"}\n')
    (tmp_path / "sub" / "c.yaml").write_text("name: C\n")
    docs = load_manifests([tmp_path], env={})
    assert [d.data["name"] for d in docs] == ["A", "B1", "B2", "C"]
    assert docs[2].file == str(tmp_path / "b.yaml")
    assert docs[2].where(("name",)) == Location(str(tmp_path / "b.yaml"), 3, 1)


def test_missing_path_is_an_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path, missing], env={})
    assert [str(p) for p in caught.value.problems] == [f"{missing}: no such file or directory"]


def test_directory_without_manifests_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path], env={})
    assert "no manifest files found" in str(caught.value)


def test_problems_of_every_file_are_reported_together(tmp_path):
    (tmp_path / "a.yaml").write_text("a: 1\na: 2\n")
    (tmp_path / "b.yaml").write_text("x: ${UNSET}\n")
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path], env={})
    files = [Path(p.location.file).name for p in caught.value.problems]
    assert files == ["a.yaml", "b.yaml", "c.json"]
    assert str(caught.value).startswith("3 problems in the manifests:\n")


def test_file_that_is_not_utf8_is_an_error(tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path], env={})
    assert "cannot read file" in str(caught.value)
