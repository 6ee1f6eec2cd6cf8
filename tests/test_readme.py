"""Every ``waldo`` command in the README runs as written and does what the README shows (#12).

The commands come from the README itself: each line of a ```sh block and
each ``$ `` line of a ```console block that runs ``waldo``. They run in the
order the README gives them, through the installed ``waldo`` on a
pseudo-terminal (where a reader types them), in a copy of sample_images/ and
docs/, so the commands that write docs/*.png leave the repository alone. Each
must exit as its shown output says (2 for an error, 1 for no match, else 0),
and show what the README shows: the table's cells, the JSON's values, the
other lines word for word, durations aside. A command that cannot run here
is in SKIPPED with the reason; a new README command is run unless added there.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from installed import shell_env
from terminal_session import Terminal

from waldo_cli.client import user_cache_dir

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

SKIPPED = {
    "waldo find -t waldo.png scans/*.jpg --jsonl > hits.jsonl": (
        "placeholder files (scans/, waldo.png)"
    ),
    "find scans -name '*.png' | waldo find -t waldo.png --files-from - --jsonl": (
        "placeholder files (scans/, waldo.png)"
    ),
    "curl -s https://example.org/crowd.jpg | waldo find - waldo.png --json": (
        "needs the network, and the URL is a placeholder"
    ),
    'for f in scans/*.jpg; do waldo find "$f" waldo.png -q && echo "$f"; done': (
        "placeholder files (scans/, waldo.png)"
    ),
    "waldo find -t waldo.png scans/*.jpg --csv > hits.csv": "placeholder files (scans/, waldo.png)",
    "find scans -name '*.png' -print0 | waldo find -t waldo.png --files-from - -0 --jsonl": (
        "placeholder files (scans/, waldo.png); tests/test_options.py runs -0 on real files"
    ),
    "waldo find screen.png -t ok.png -t cancel.png --json": (
        "placeholder files (screen.png, ok.png, cancel.png); tests/test_options.py runs several -t"
    ),
    "waldo find -t buttons/ screens/*.png --overlay-dir found/": (
        "placeholder files (buttons/, screens/); tests/test_options.py runs a folder of templates"
    ),
    'eval "$(_WALDO_COMPLETE=bash_source waldo)"': (
        "a line for ~/.bashrc: tests/test_completion.py runs the script in bash"
    ),
    'eval "$(_WALDO_COMPLETE=zsh_source waldo)"': (
        "a line for ~/.zshrc: tests/test_completion.py runs the script in zsh"
    ),
    "_WALDO_COMPLETE=fish_source waldo > ~/.config/fish/completions/waldo.fish": (
        "writes into the user's fish set-up: tests/test_completion.py runs the script in fish"
    ),
    (
        "waldo find -t logo.png --files-from scans.txt --jsonl --dask tcp://scheduler:8786"
        " > hits.jsonl"
    ): ("placeholder files and scheduler: tests/test_cluster.py runs --dask on a local cluster"),
    "waldo find -t logo.png scans/*.png --jsonl --dask local --jobs 4": (
        "placeholder files (scans/, logo.png): tests/test_cluster.py runs --dask local"
    ),
    "waldo find -t logo.png --files-from urls.txt --csv --dask tcp://scheduler:8786 --unordered": (
        "placeholder files and scheduler: tests/test_cluster.py runs --unordered on a local cluster"
    ),
    "waldo server start": "tests/test_server.py starts servers, in a private runtime folder",
    'for f in shots/*.png; do waldo find "$f" button.png --json; done': (
        "placeholder files (shots/, button.png)"
    ),
    "waldo server status": "tests/test_server.py asks servers, in a private runtime folder",
    "waldo server stop": "tests/test_server.py stops servers, in a private runtime folder",
    "mkdir -p train && for s in $(seq 0 29); do waldo demo train/$s --seed $s; done": (
        "30 full-size puzzles, for waldo learn below: tests/test_learn.py learns from small ones"
    ),
    "waldo learn train/*/ -o waldo.npz": (
        "learns from the 30 puzzles above (half a minute of CPU): tests/test_learn.py runs "
        "waldo learn on small puzzles and checks its summary"
    ),
    "waldo find page.png waldo.npz": "placeholder files (page.png, waldo.npz)",
    "waldo find -t waldo.npz pages/*.png --jsonl": "placeholder files (pages/, waldo.npz)",
    "waldo learn crops/*.png --negatives empty/ -o logo.npz": (
        "placeholder files (crops/, empty/): tests/test_learn.py learns from crops and negatives"
    ),
    "waldo params --filter waldo.npz": (
        "needs waldo.npz from waldo learn above: tests/test_learn.py checks params --filter"
    ),
    "waldo conv photo.jpg --kernel sobel --out edges.png": "placeholder file (photo.jpg)",
    "waldo conv photo.jpg --kernel gauss:2 --out blurred.npy": "placeholder file (photo.jpg)",
    "waldo conv photo.jpg --kernel layer1.npy --pad none --json --out h.npy": (
        "placeholder files (photo.jpg, layer1.npy)"
    ),
}

# `waldo` as a command word (not `--waldo` or `.venv/bin/waldo`)
_RUNS_WALDO = re.compile(r"(?:^|[\s;&|(])waldo(?=[\s)]|$)")
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass(frozen=True)
class Command:
    """One README command: the text to run, its README line and the output shown after it."""

    text: str
    line: int
    shown: tuple[str, ...]

    @property
    def key(self) -> str:
        """The command without its comment, spaced as one: what SKIPPED names."""
        return " ".join(re.sub(r"\s+#\s.*$", "", self.text).split())

    @property
    def status(self) -> int:
        """The exit status the shown output implies: 2 error, 1 no match, else 0."""
        if any(line.startswith("waldo: error") for line in self.shown):
            return 2
        if any(re.search(r"\bno match|\b0 matches", line) for line in self.shown):
            return 1
        return 0


def readme_commands(text: str) -> list[Command]:
    """Every command in the README's code blocks that runs ``waldo``, in order."""
    commands: list[Command] = []
    block: list[tuple[int, str]] | None = None
    indent, kind = "", ""
    for number, line in enumerate(text.splitlines(), start=1):
        fence = _FENCE.match(line)
        if fence and block is None:
            block, indent, kind = [], fence.group(1), fence.group(2)
        elif fence and fence.group(1) == indent:
            commands += _block_commands(kind, block)
            block = None
        elif block is not None:
            block.append((number, line.removeprefix(indent)))
    return [command for command in commands if _RUNS_WALDO.search(command.text)]


def _block_commands(kind: str, lines: list[tuple[int, str]]) -> list[Command]:
    """The commands of one code block: shell lines, or console `$` lines with their output."""
    commands: list[Command] = []
    if kind == "sh":
        pending: list[str] = []
        for number, line in lines:
            pending.append(line.rstrip().removesuffix("\\").rstrip())
            if not line.rstrip().endswith("\\"):
                text = " ".join(part.strip() for part in pending)
                pending = []
                if text and not text.startswith("#"):
                    commands.append(Command(_waldo_part(text), number, ()))
    elif kind in ("console", ""):
        for number, line in lines:
            if line.startswith("$ "):
                commands.append(Command(_waldo_part(line[2:].strip()), number, ()))
            elif commands:
                last = commands[-1]
                commands[-1] = Command(last.text, last.line, (*last.shown, line))
    return commands


def _waldo_part(text: str) -> str:
    """`python3 -m venv .venv && ... && waldo find ...` (setting up, then a search): the search."""
    found = re.search(r"&&\s*(waldo\s.*)$", text)
    return found.group(1) if found and not text.startswith("waldo") else text


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
_SECONDS = re.compile(r"\b\d+(\.\d+)? s\b")


def _words(text: str) -> str:
    """Text as one line of single-spaced words, durations masked (they differ every run)."""
    return " ".join(_SECONDS.sub("<seconds> s", text).split())


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def _same_number(shown: object, got: object) -> bool:
    if isinstance(shown, float) or isinstance(got, float):
        return isinstance(got, int | float) and math.isclose(shown, got, abs_tol=1e-6)
    return shown == got


def check_output(command: Command, output: str) -> list[str]:
    """What the README shows after the command and the output lacks: one message each."""
    problems: list[str] = []
    lines = output.splitlines()
    rows = [_cells(line) for line in lines if line.startswith("│")]
    documents = [json.loads(line) for line in lines if line.startswith("{")]
    words = _words(output)
    pending_json: list[str] = []
    for shown in command.shown:
        if pending_json or shown.startswith("{"):
            pending_json.append(shown)
            try:
                document = json.loads(" ".join(pending_json))
            except json.JSONDecodeError:
                continue
            pending_json = []
            problems += _check_json(document, documents)
        elif shown.startswith("│"):
            if _cells(shown) not in rows:
                problems.append(f"table row {_cells(shown)} is not among {rows}")
        elif shown.strip() and not shown.lstrip().startswith(("┏", "┃", "┡", "└")):
            if _words(shown) not in words:
                problems.append(f"the line {shown.strip()!r} is not in the output")
    if pending_json:
        problems.append("the README's JSON does not parse")
    return problems


# the README's JSON values that hold on every machine (not the timings, the
# engine the cost model picks here, or the number of cores)
_STABLE_KEYS = ("image", "template", "method", "image_size", "template_size", "threshold")


def _check_json(shown: dict, documents: list[dict]) -> list[str]:
    if not documents:
        return ["no JSON document in the output"]
    got = documents[0]
    problems = [
        f"JSON {key}: README {shown[key]!r}, output {got.get(key)!r}"
        for key in (*_STABLE_KEYS, "parameters")
        if key in shown and got.get(key) != shown[key]
    ]
    shown_matches, got_matches = shown.get("matches", []), got.get("matches", [])
    if len(shown_matches) != len(got_matches) or not all(
        a.keys() == b.keys() and all(_same_number(a[k], b[k]) for k in a)
        for a, b in zip(shown_matches, got_matches, strict=False)
    ):
        problems.append(f"JSON matches: README {shown_matches}, output {got_matches}")
    return problems


def test_the_readme_commands_are_found():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    keys = [command.key for command in commands]
    # the parser finds the kinds of command the README has: a guard against
    # a change of format that would leave nothing to test
    assert any(key.startswith("waldo demo ") for key in keys)
    assert any(key.startswith("waldo find ") and "--json" in key for key in keys)
    assert any(key.startswith("waldo conv ") for key in keys)
    assert any(key.startswith("waldo params ") for key in keys)
    assert any(command.shown for command in commands)
    # the set-up line keeps only its search
    assert "waldo find sample_images/astronaut.png sample_images/astronaut-patch.png" in keys


def test_every_skipped_command_is_still_in_the_readme():
    keys = {command.key for command in readme_commands(README.read_text(encoding="utf-8"))}
    assert set(SKIPPED) <= keys, set(SKIPPED) - keys


def test_readme_commands_run_as_written(tmp_path):
    for folder in ("sample_images", "docs"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    commands = [
        command
        for command in readme_commands(README.read_text(encoding="utf-8"))
        if command.key not in SKIPPED
    ]
    assert commands
    # a home of its own, but the suite's compiled kernels (XDG_CACHE_HOME): in
    # an empty cache every run here compiled the kernels it needs again, which
    # the README does not show and tests/test_cli.py tests in a cold cache (a
    # README `waldo cache clear` would clear this cache: the suite recompiles)
    cache_home = str(Path(user_cache_dir()).parent)
    env = shell_env(TERM="xterm-256color", HOME=str(tmp_path), XDG_CACHE_HOME=cache_home)
    failures = []
    for command in commands:
        argv = ["bash", "--norc", "--noprofile", "-o", "pipefail", "-c", command.text]
        with Terminal(argv, cwd=tmp_path, env=env, rows=50, cols=100) as terminal:
            status = terminal.wait(timeout=600)
            output = _ESCAPE.sub("", terminal.shown)
        problems = check_output(command, output)
        if status != command.status:
            problems.insert(0, f"exit status {status}, the README implies {command.status}")
        if problems or "Traceback" in output:
            failures.append(f"README.md:{command.line}: {command.text}\n  " + "\n  ".join(problems))
            failures[-1] += "\n  output:\n    " + "\n    ".join(output.splitlines())
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "```sh\nwaldo find a.png \\\n    b.png --json   # note\n```\n",
            ["waldo find a.png b.png --json"],
        ),
        (
            "```sh\npython3 -m venv .venv && pip install . && waldo find a b\n```\n",
            ["waldo find a b"],
        ),
        ("```sh\npython benchmarks/b.py --waldo .venv/bin/waldo\n```\n", []),
        ("```console\n$ waldo params | cat\nrow\n```\n", ["waldo params | cat"]),
        ('  ```sh\n  eval "$(X=bash_source waldo)"\n  ```\n', ['eval "$(X=bash_source waldo)"']),
        ("```python\nwaldo find a b\n```\n", []),
    ],
)
def test_commands_are_read_as_a_reader_reads_them(text, expected):
    assert [command.key for command in readme_commands(text)] == expected
