"""(Re)write the corpus files that are too big, too binary or too repetitive to write by hand.

    .venv/bin/python tests/corpus/generate.py

Deterministic: the same bytes every run (random bytes come from a fixed seed). The other files in this
folder are written by hand. Keep the whole corpus under 2 MB (tests/unit/test_corpus.py checks it).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED: dict[str, Callable[[], bytes]] = {}


def generated(name: str) -> Callable[[Callable[[], str | bytes]], Callable[[], bytes]]:
    def register(make: Callable[[], str | bytes]) -> Callable[[], bytes]:
        def encoded() -> bytes:
            content = make()
            return content if isinstance(content, bytes) else content.encode("utf-8")

        GENERATED[name] = encoded
        return encoded

    return register


STREAM = "kind: Stream\nname: JOBS\nspec:\n"


# --- whole-file problems: encodings, binary, empty ---------------------------------------------------


@generated("empty-file.yaml")
def _empty() -> bytes:
    return b""


@generated("utf16-bom.yaml")
def _utf16() -> bytes:
    return (STREAM + "  subjects: [jobs.>]\n").encode("utf-16")  # BOM + UTF-16-LE


@generated("utf16-le-no-bom.yaml")
def _utf16_le() -> bytes:
    return (STREAM + "  subjects: [jobs.>]\n").encode("utf-16-le")


@generated("utf32-bom.yaml")
def _utf32() -> bytes:
    return (STREAM + "  subjects: [jobs.>]\n").encode("utf-32")


@generated("latin1-description.yaml")
def _latin1() -> bytes:
    return (STREAM + "  description: Caf\u00e9 M\u00fcller jobs\n").encode("latin-1")


@generated("utf8-encoded-surrogate.yaml")
def _surrogate() -> bytes:
    return STREAM.encode() + b"  description: \xed\xa0\x80\n"  # CESU-style lone surrogate, not UTF-8


@generated("binary-garbage.yaml")
def _garbage() -> bytes:
    return random.Random(20240501).randbytes(4096)


@generated("binary-gzip-header.yaml")
def _gzip() -> bytes:
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + random.Random(7).randbytes(256)


@generated("utf8-bom-unknown-kind.yaml")
def _bom_yaml() -> bytes:
    return b"\xef\xbb\xbfkind: Deployment\nname: JOBS\n"


@generated("utf8-bom.json")
def _bom_json() -> bytes:
    return b'\xef\xbb\xbf{"kind": "Stream", "name": "JOBS"}\n'


@generated("yaml-nul-byte.yaml")
def _nul() -> str:
    return STREAM + "  description: before\x00after\n"


@generated("yaml-control-char-bell.yaml")
def _bell() -> str:
    return STREAM + "  subjects: [jobs.\x07]\n"


@generated("yaml-escape-sequence-in-plain.yaml")
def _esc() -> str:
    return STREAM + "  description: \x1b[31mred\x1b[0m\n"


# --- deep nesting ------------------------------------------------------------------------------------


@generated("deep-nesting-200.yaml")
def _deep_block() -> str:
    lines = [STREAM.rstrip("\n")]
    for depth in range(200):
        lines.append(" " * (depth + 2) + f"k{depth}:")
    lines.append(" " * 202 + "leaf: 1")
    return "\n".join(lines) + "\n"


@generated("deep-nesting-65.yaml")
def _deep_65() -> str:
    # metadata is at depth 2; 63 more levels put the leaf at depth 65, one past the limit.
    return STREAM + "  metadata: " + "{a: " * 63 + "x" + "}" * 63 + "\n"


@generated("deep-nesting-flow-5000.yaml")
def _deep_flow() -> str:
    return STREAM + "  subjects: " + "[" * 5000 + "]" * 5000 + "\n"


@generated("deep-nesting-mappings-1000.yaml")
def _deep_flow_maps() -> str:
    return STREAM + "  placement: " + "{a: " * 1000 + "b" + "}" * 1000 + "\n"


@generated("deep-nesting-json-5000.json")
def _deep_json() -> str:
    return '{"kind": "Stream", "name": "JOBS", "spec": {"subjects": ' + "[" * 5000 + "]" * 5000 + "}}\n"


@generated("json-tabs-deep-nesting-400.json")
def _deep_json_tabs() -> str:
    # A leading tab makes the YAML parser give up, so the JSON is loaded without positions (and without
    # the depth limit of the YAML path).
    return (
        '\t{"kind": "Stream", "name": "JOBS", "spec": {"metadata": '
        + '{"a": ' * 400
        + '"x"'
        + "}" * 400
        + "}}\n"
    )


@generated("deep-nesting-aliases.yaml")
def _deep_alias() -> str:
    # Each anchor nests the previous one a level deeper: 80 levels from a short file.
    lines = [STREAM + "  metadata:", "    l0: &l0 [x]"]
    lines += [f"    l{i}: &l{i} [*l{i - 1}]" for i in range(1, 80)]
    return "\n".join(lines) + "\n"


# --- anchor/alias bombs ------------------------------------------------------------------------------


def _laughs(levels: int, width: int, leaf: str = '"lol"', indent: str = "    ") -> list[str]:
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{indent}{names[0]}: &{names[0]} [" + ", ".join([leaf] * width) + "]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{indent}{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    return lines


@generated("bomb-laughs-many-documents.yaml")
def _laughs_docs() -> str:
    # Each document alone stays at the per-document node limit; 300 of them do 300 times the work.
    doc = "\n".join(["kind: Stream", "name: JOBS", "spec:", "  metadata:", *_laughs(7, 9)])
    return "\n---\n".join([doc] * 300) + "\n"


@generated("bomb-under-node-limit.yaml")
def _under_limit() -> str:
    # 12**4 = 20736 integers twice (the anchors and the alias): under the node limit, so every item
    # reaches the schema, each one not a string.
    lines = [STREAM + "  metadata:", *_laughs(4, 12, leaf="1")]
    return "\n".join(lines) + "\n  subjects: *d\n"


@generated("bomb-alias-long-subject.yaml")
def _alias_subject() -> str:
    # A 50 KB subject with spaces, then 5000 aliases of it in the same flat list: each is one bad
    # subject, and each problem message that quotes the value copies it.
    big = "jobs " * 10_000
    return STREAM + f'  subjects: [&s "{big}"' + ", *s" * 5000 + "]\n"


@generated("bomb-alias-long-string.yaml")
def _alias_long() -> str:
    # One 100 KB string, nested 7**4 = 2401 times by aliases: every message that quotes a value
    # (the schema's "... is not of type" does) copies it.
    big = "jobs " * 20_000
    lines = [STREAM + f'  description: &s "{big}"', "  metadata:"]
    lines += [
        "    a: &a [" + ", ".join(["*s"] * 7) + "]",
        "    b: &b [" + ", ".join(["*a"] * 7) + "]",
        "    c: &c [" + ", ".join(["*b"] * 7) + "]",
        "    d: &d [" + ", ".join(["*c"] * 7) + "]",
    ]
    return "\n".join(lines) + "\n  subjects: *d\n"


@generated("bomb-alias-huge-int.yaml")
def _alias_int() -> str:
    # An integer too long to convert (over 4300 digits), used 10**4 times.
    lines = [STREAM + "  max_msgs: &n " + "9" * 4400, "  metadata:"]
    lines += [
        "    a: &a [" + ", ".join(["*n"] * 10) + "]",
        "    b: &b [" + ", ".join(["*a"] * 10) + "]",
        "    c: &c [" + ", ".join(["*b"] * 10) + "]",
        "    d: &d [" + ", ".join(["*c"] * 10) + "]",
    ]
    return "\n".join(lines) + "\n"


# --- huge values and sizes ---------------------------------------------------------------------------


@generated("huge-int-digits.yaml")
def _huge_digits() -> str:
    return STREAM + "  max_msgs: " + "9" * 5000 + "\n"


@generated("json-huge-int-digits.json")
def _huge_digits_json() -> str:
    return '{"kind": "Stream", "name": "JOBS", "spec": {"max_msgs": ' + "9" * 5000 + "}}\n"


@generated("very-long-line-description.yaml")
def _long_line() -> str:
    return STREAM + "  description: " + "d" * 150_000 + "\n"


@generated("10000-keys.yaml")
def _keys() -> str:
    return STREAM + "".join(f"  field_{i}: {i}\n" for i in range(10_000))


@generated("5000-documents-same-name.yaml")
def _docs() -> str:
    return "---\n".join("kind: Stream\nname: JOBS\n" for _ in range(5000))


@generated("many-overlapping-subjects-2000.yaml")
def _overlapping() -> str:
    return STREAM + "  subjects:\n" + "    - a.>\n" * 2000


@generated("10000-distinct-subjects.yaml")
def _distinct() -> str:
    # A valid stream with 10000 literal subjects (no two overlap), then one bad document so that the file
    # fails: the subject checks of the good stream still run.
    subjects = "".join(f"    - jobs.s{i}\n" for i in range(10_000))
    return STREAM + "  subjects:\n" + subjects + "---\nkind: Nope\nname: X\n"


ACK = "ack_policy: explicit"


@generated("4000-consumers-wq.yaml")
def _consumers() -> str:
    # A work-queue stream and 4000 consumers with distinct filters, plus one unfiltered one (the error):
    # every consumer's filters are compared with every other's.
    docs = ["{kind: Stream, name: JOBS, spec: {subjects: [jobs.>], retention: workqueue}}\n"]
    docs += [
        f"{{kind: Consumer, stream: JOBS, name: c{i}, spec: {{{ACK}, filter_subject: jobs.q{i}}}}}\n"
        for i in range(4000)
    ]
    docs.append("{kind: Consumer, stream: JOBS, name: all, spec: {ack_policy: explicit}}\n")
    return "---\n".join(docs)


@generated("sources-chain-cycle-1500.yaml")
def _chain() -> str:
    # S0 sources S1 sources ... S1499 sources S0: one cycle through 1500 streams.
    n = 1500
    return "---\n".join(
        f"kind: Stream\nname: S{i}\nspec: {{sources: [{{name: S{(i + 1) % n}}}]}}\n" for i in range(n)
    )


@generated("mirror-chain-1500.yaml")
def _mirror_chain() -> str:
    # M0 mirrors M1 ... M1499 mirrors ORIGIN (not declared: fine); the last document is bad.
    n = 1500
    docs = [f"kind: Stream\nname: M{i}\nspec: {{mirror: {{name: M{i + 1}}}}}\n" for i in range(n - 1)]
    docs.append(f"kind: Stream\nname: M{n - 1}\nspec: {{mirror: {{name: ORIGIN}}}}\n")
    docs.append("kind: Stream\nname: BAD.NAME\n")
    return "---\n".join(docs)


@generated("env-quadratic-unclosed-defaults.yaml")
def _env_quadratic() -> str:
    return STREAM + "  description: " + "${A:-" * 30_000 + "\n"


@generated("env-many-unset.yaml")
def _env_many() -> str:
    return STREAM + "  description: " + "".join(f"${{CORPUS_UNSET_{i}}}" for i in range(2000)) + "\n"


def main() -> None:
    for name, make in sorted(GENERATED.items()):
        (HERE / name).write_bytes(make())
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"wrote {len(GENERATED)} files; corpus is {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
