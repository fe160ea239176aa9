"""Read manifest files into plain documents, keeping a Location for every node.

YAML is composed to nodes (not constructed by PyYAML) so that every value keeps its line and column,
only the standard tags are accepted, and aliases cannot blow up. `${VAR}` and `${VAR:-default}` in
scalars are replaced from the environment here, so later stages see final values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Location, ManifestError, Problem

if TYPE_CHECKING:
    from yaml.nodes import MappingNode, Node, ScalarNode

Path_ = tuple[str | int, ...]

SUFFIXES = (".yaml", ".yml", ".json")
MAX_DEPTH = 64  # deeper than any real manifest; stops recursion bombs
MAX_NODES = 100_000  # per file, counting every alias expansion; stops billion-laughs
MAX_CHARS = 10_000_000  # per file, counting scalar text each time an alias repeats it
MAX_FILE_BYTES = 10 * 1024 * 1024

# A default holds no `$`, so an unclosed `${A:-` cannot make the regex rescan the rest of the value.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}$]*))?\}")
_STR = "tag:yaml.org,2002:str"
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}


@dataclass
class Document:
    """One resource document: its data and where each part of it came from."""

    file: str
    index: int  # 0-based position in a multi-document file
    data: Any
    locations: dict[Path_, Location] = field(default_factory=dict)

    def where(self, path: Iterable[str | int] = ()) -> Location:
        """The location of `path`, or of its nearest ancestor that has one."""
        parts = tuple(path)
        while parts:
            if parts in self.locations:
                return self.locations[parts]
            parts = parts[:-1]
        return self.locations.get((), Location(self.file))

    # The load cache pickles documents without their data (validation, its only reader, is done) and
    # with their locations as bare (line, column) pairs: tens of thousands of Location objects unpickle
    # slowly, and only the documents of an error are ever asked.
    def __getstate__(self) -> tuple:
        packed = {path: (loc.line, loc.column) for path, loc in self.locations.items()}
        return self.file, self.index, None, packed

    def __setstate__(self, state: tuple) -> None:
        self.file, self.index, self.data, self._packed = state

    def __getattr__(self, name: str) -> Any:
        if name == "locations" and "_packed" in self.__dict__:
            packed = self.__dict__.pop("_packed")
            self.locations = {path: Location(self.file, *where) for path, where in packed.items()}
            return self.locations
        raise AttributeError(name)


def find_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories (recursively, sorted) into manifest files; a missing path is an error."""
    files: list[Path] = []
    problems = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden folders (.github, .git) hold workflow files, not manifests.
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(Location(str(path)), "no such file or directory"))
    if problems:
        raise ManifestError(problems)
    return files


def load_manifests(
    paths: Iterable[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> list[Document]:
    """Load every document of every file; raise one ManifestError listing all problems."""
    documents, problems = read_manifests(paths, env)
    if problems:
        raise ManifestError(problems)
    return documents


@dataclass(frozen=True)
class Source:
    """One manifest file as read: its name and bytes, or why it could not be read."""

    name: str
    raw: bytes = b""
    problem: Problem | None = None


def read_sources(paths: Iterable[str | os.PathLike[str]]) -> list[Source]:
    """Every manifest file under `paths`, read once (its bytes are also the load cache's key)."""
    files = find_files(paths)
    if not files:
        raise ManifestError([Problem(Location(", ".join(map(str, paths)) or "."), "no manifest files found")])
    return [_read(path) for path in files]


def _read(path: Path) -> Source:
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return Source(
                name, problem=Problem(Location(name), f"file is larger than {MAX_FILE_BYTES} bytes")
            )
        return Source(name, path.read_bytes())
    except OSError as exc:
        return Source(name, problem=Problem(Location(name), f"cannot read file: {exc}"))


def read_manifests(
    paths: Iterable[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> tuple[list[Document], list[Problem]]:
    """The documents that loaded, and the problems of those that did not (so that validation can
    report its own problems of the good documents alongside, all at once)."""
    return parse_sources(read_sources(paths), os.environ if env is None else env)


def parse_sources(sources: list[Source], env: Mapping[str, str]) -> tuple[list[Document], list[Problem]]:
    documents: list[Document] = []
    problems: list[Problem] = []
    for source in sources:
        if source.problem is not None:
            problems.append(source.problem)
            continue
        try:
            # Universal newlines, as text-mode reading gives: a CRLF file reads like an LF one.
            text = source.raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError as exc:
            problems.append(Problem(Location(source.name), f"cannot read file: {exc}"))
            continue
        docs, found = parse_text(text, source.name, env)
        documents += docs
        problems += found
    if not documents and not problems:
        # Not harmless: `apply --prune` of a set that declares nothing would delete all it manages.
        problems += [
            Problem(Location(s.name, 1, 1), "no resources declared (the file is empty)") for s in sources
        ]
    return documents, problems


def parse_text(text: str, name: str, env: Mapping[str, str]) -> tuple[list[Document], list[Problem]]:
    is_json = name.endswith(".json")
    if is_json:
        # JSON files must be JSON (YAML would accept trailing commas, bare words, `1h`); YAML, a
        # superset, is then read only for the positions.
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return [], [Problem(Location(name, exc.lineno, exc.colno), f"invalid JSON: {exc.msg}")]
        except (ValueError, RecursionError) as exc:  # a 5000-digit number; nesting past the stack
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return [], [Problem(Location(name, 1, 1), f"invalid JSON: {reason}")]
    import yaml  # here, not at the top: a load served from the cache never parses YAML

    # libyaml's parser composes the same nodes, with marks, several times faster than the pure-Python one.
    composer = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    lines = _Lines(text)
    try:
        nodes = list(yaml.compose_all(text, Loader=composer))
    except yaml.MarkedYAMLError as exc:
        if is_json:
            return _json_without_positions(text, name)
        mark = exc.problem_mark or exc.context_mark
        location = lines.location(name, mark.line, mark.column) if mark else Location(name)
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        return [], [Problem(location, f"invalid YAML: {reason}")]
    except yaml.reader.ReaderError as exc:  # a control character: say where it is
        line, column = _position(text, exc.position, exc.encoding)
        return [], [Problem(Location(name, line, column), f"invalid YAML: {exc.reason} {exc.character!r}")]
    except (yaml.YAMLError, RecursionError) as exc:
        return [], [Problem(Location(name), f"invalid YAML: {exc}")]
    documents, problems = [], []
    budget = _Budget()  # one per file: many small bombs are one big one
    for index, node in enumerate(nodes):
        if node is None:
            continue
        builder = _Builder(name, env, budget, lines)
        data = builder.build(node, (), 0)
        problems += builder.problems
        if builder.problems or data is None:
            continue
        if is_json and isinstance(data, list):  # a JSON file may hold an array of resources
            documents += [
                Document(name, i, item, _rebase(builder.locations, i)) for i, item in enumerate(data)
            ]
        else:
            documents.append(Document(name, index, data, builder.locations))
    return documents, problems


def _rebase(locations: dict[Path_, Location], index: int) -> dict[Path_, Location]:
    """The locations under item `index` of a top-level list, as paths of that item."""
    return {path[1:]: loc for path, loc in locations.items() if path[:1] == (index,)}


def _json_without_positions(text: str, name: str) -> tuple[list[Document], list[Problem]]:
    """Valid JSON that YAML will not read (tabs, say): load it without positions below the file."""
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    return [Document(name, i, item, {(): Location(name, 1, 1)}) for i, item in enumerate(items)], []


class _Lines:
    """Marks (0-based YAML line and column) as the lines and columns an editor shows (1-based).

    YAML 1.1, and so libyaml, also breaks lines at NEL, LS and PS (U+0085, U+2028, U+2029); editors
    and `grep -n` break only at newlines, so after one of those YAML's line numbers run ahead."""

    _BREAKS = re.compile("[\n\x85\u2028\u2029]")

    def __init__(self, text: str):
        self.text = text
        self.starts: list[int] | None = None  # offset of each YAML line, when they differ
        if "\x85" in text or "\u2028" in text or "\u2029" in text:
            self.starts = [0, *(m.end() for m in self._BREAKS.finditer(text))]

    def location(self, file: str, line: int, column: int) -> Location:
        if self.starts is None or line >= len(self.starts):
            return Location(file, line + 1, column + 1)
        offset = self.starts[line] + column
        start = self.text.rfind("\n", 0, offset) + 1
        return Location(file, self.text.count("\n", 0, start) + 1, offset - start + 1)


def _position(text: str, position: int, encoding: str | None) -> tuple[int, int]:
    """Line and column (1-based) of a reader error; libyaml counts bytes of the UTF-8 text."""
    before = text.encode("utf-8")[:position].decode("utf-8", "ignore") if encoding else text[:position]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


@dataclass
class _Budget:
    nodes: int = 0
    chars: int = 0
    spent: bool = False


class _Builder:
    """Turns a composed node tree into plain Python values and a path -> Location map."""

    def __init__(self, file: str, env: Mapping[str, str], budget: _Budget, lines: _Lines):
        self.file = file
        self.lines = lines
        self.env = env
        self.locations: dict[Path_, Location] = {}
        self.problems: list[Problem] = []
        self.budget = budget
        import yaml

        self.yaml = yaml
        self.constructor = yaml.SafeLoader("")
        self.active: set[int] = set()

    def _loc(self, node: Node) -> Location:
        mark = node.start_mark
        return self.lines.location(self.file, mark.line, mark.column)

    def _fail(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self._loc(node), message))

    def build(self, node: Node, path: Path_, depth: int) -> Any:
        budget = self.budget
        budget.nodes += 1
        if node.id == "scalar":
            budget.chars += len(node.value)
        if budget.nodes > MAX_NODES or budget.chars > MAX_CHARS:
            if not budget.spent:
                budget.spent = True
                self._fail(
                    node,
                    f"the file expands to more than {MAX_NODES} values or {MAX_CHARS} characters "
                    "(an alias bomb?)",
                )
            return None
        if depth > MAX_DEPTH:
            self._fail(node, f"nesting deeper than {MAX_DEPTH} levels")
            return None
        self.locations.setdefault(path, self._loc(node))
        if id(node) in self.active:
            self._fail(node, "recursive alias")
            return None
        if node.id == "scalar":
            return self._scalar(node)
        self.active.add(id(node))
        try:
            if node.id == "sequence":
                if node.tag != "tag:yaml.org,2002:seq":
                    self._fail(node, f"YAML tag {node.tag!r} is not allowed")
                    return None
                return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            if node.id == "mapping":
                return self._mapping(node, path, depth)
        finally:
            self.active.discard(id(node))
        self._fail(node, "unsupported YAML node")
        return None

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any] | None:
        if node.tag == "tag:yaml.org,2002:merge" or node.tag != "tag:yaml.org,2002:map":
            self._fail(node, f"YAML tag {node.tag!r} is not allowed")
            return None
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._fail(key_node, "YAML merge keys (<<) are not supported; write the fields out")
                continue
            if key_node.id != "scalar":
                self._fail(key_node, "a mapping key must be a plain string")
                continue
            if key_node.tag not in _SCALAR_TAGS:
                self._fail(key_node, f"YAML tag {key_node.tag!r} is not allowed")
                continue
            key = key_node.value
            if key in result:
                self._fail(key_node, f"duplicate key {key!r}")
                continue
            self.locations[(*path, key)] = self._loc(key_node)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def _scalar(self, node: ScalarNode) -> Any:
        tag, value = node.tag, node.value
        if tag not in _SCALAR_TAGS:
            self._fail(node, f"YAML tag {tag!r} is not allowed")
            return None
        if "$" in value:
            substituted = self._substitute(node)
            if substituted is None:
                return None
            if substituted != value:
                value = substituted
                if not node.style:  # plain scalars (style None, or "" from libyaml) get their type anew
                    tag = self.constructor.resolve(self.yaml.ScalarNode, value, (True, False))
                    if tag not in _SCALAR_TAGS or not value:  # `${DESC:-}` is "", not null
                        tag = _STR
                node = self.yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)
        if tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return value
        if tag == "tag:yaml.org,2002:bool" and value.lower() not in ("true", "false"):
            # YAML 1.1 reads yes/no/on/off as booleans; JetStream never wants that surprise.
            return value
        if tag == "tag:yaml.org,2002:int" and not _PLAIN_INT.fullmatch(value):
            # Nor 1:30 as 90 (sexagesimal), 017 as 15 (octal), 0x10 or 1_000: keep the text, so that a
            # duration or size field parses it, or the schema names the field that got a string.
            return value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (self.yaml.YAMLError, ValueError) as exc:
            self._fail(node, f"invalid value {value!r}: {exc}")
            return None

    def _substitute(self, node: ScalarNode) -> str | None:
        missing: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        result = _VAR.sub(replace, node.value)
        for name in missing:
            self._fail(
                node, f"environment variable {name} is not set (write ${{{name}:-default}} for a default)"
            )
        return None if missing else result
