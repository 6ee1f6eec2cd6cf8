"""Shell completion completes paths as paths, in bash, zsh and fish (#12).

Through the installed ``waldo``: first the protocol Click's generated scripts
speak with it (environment variables in, typed items out), then the scripts
themselves in the real shells, typing Tab on a pseudo-terminal (bash, zsh) or
asking fish's ``complete -C``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest
from installed import shell_env, waldo_executable
from terminal_session import Terminal

from waldo_cli.cli.conv import KERNEL_WORDS
from waldo_cli.conv import KERNEL_NAMES

SHELLS = ("bash", "zsh", "fish")
PROMPT = "waldo-test> "


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder to complete in: two pictures, a kernel file and a subfolder."""
    root = tmp_path_factory.mktemp("completion")
    for name in ("scene.png", "waldo.png", "layer.npy"):
        (root / name).write_bytes(b"")
    (root / "shots").mkdir()
    return root


def complete(shell: str, line: str, cwd) -> list[tuple[str, str]]:
    """What ``waldo`` tells the shell's script for ``line`` with the cursor at its end.

    (type, value) pairs; Click's scripts complete file names themselves for a
    "file" item (folder names for "dir"), starting from its value.
    """
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    if shell == "fish":  # the line up to the cursor, and the word being typed
        env = shell_env(COMP_WORDS=line, COMP_CWORD=words[-1])
    else:
        env = shell_env(COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    env["_WALDO_COMPLETE"] = f"{shell}_complete"
    proc = subprocess.run(
        [waldo_executable()], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    if shell == "zsh":  # type, value, help: three lines an item
        lines = proc.stdout.splitlines()
        return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 3)]
    items = [line.split("\t")[0].split(",", 1) for line in proc.stdout.splitlines()]
    return [(kind, value) for kind, value in items]


# what is typed, and what completes it: "file" and "dir" items ask the shell
# for file or folder names starting with the value
TYPED = [
    ("waldo find sc", [("file", "sc")]),
    ("waldo find scene.png w", [("file", "w")]),
    ("waldo find -t w", [("file", "w")]),
    ("waldo find -t waldo.png --files-from ", [("file", "")]),
    ("waldo find --mask ", [("file", "")]),
    ("waldo find scene.png waldo.png --heatmap h", [("file", "h")]),
    ("waldo find scene.png waldo.png --overlay o", [("file", "o")]),
    # a bare --show is the overlay: what follows is an argument, not its value
    ("waldo find --show ", [("file", "")]),
    ("waldo find --show=", [("plain", "overlay"), ("plain", "heatmap")]),
    ("waldo conv s", [("file", "s")]),
    ("waldo conv scene.png --out ", [("file", "")]),
    (
        "waldo conv scene.png --kernel so",
        [("file", "so"), ("plain", "sobel-x"), ("plain", "sobel-y"), ("plain", "sobel")],
    ),
    ("waldo demo s", [("dir", "s")]),
]


# zsh and fish get the same items in their own formats: a few lines show it
SAMPLED = (
    "waldo find sc",
    "waldo find --show=",
    "waldo conv scene.png --kernel so",
    "waldo demo s",
)


@pytest.mark.parametrize(
    ("shell", "line", "items"),
    [
        (shell, *typed)
        for shell in SHELLS
        for typed in TYPED
        if shell == "bash" or typed[0] in SAMPLED
    ],
)
def test_paths_complete_as_paths(shell, line, items, folder):
    assert complete(shell, line, folder) == items


def test_kernel_names_complete_as_conv_knows_them():
    # KERNEL_WORDS is a copy, so that completion does not load NumPy
    assert KERNEL_WORDS == tuple(name.split(":")[0] + ":" * (":" in name) for name in KERNEL_NAMES)


def test_completion_does_not_load_numpy(folder):
    """Completion runs at every Tab: it stays as light as `waldo --help`."""
    code = (
        "import sys\n"
        "from waldo_cli.cli import cli\n"
        "try:\n"
        "    cli.main(prog_name='waldo', complete_var='_WALDO_COMPLETE')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'numpy', 'PIL', 'numba'} & set(sys.modules)\n"
        "print(sorted(heavy), file=sys.stderr)\n"
    )
    for line in ("waldo find sc", "waldo conv scene.png --kernel ", "waldo demo s"):
        env = shell_env(
            _WALDO_COMPLETE="bash_complete",
            COMP_WORDS=line,
            COMP_CWORD=str(len(line.split()) - (not line.endswith(" "))),
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=folder, env=env
        )
        assert proc.stdout, (line, proc.stderr)
        assert proc.stderr.strip() == "[]", (line, proc.stderr)


@pytest.mark.parametrize("shell", SHELLS)
def test_generated_scripts_complete_file_and_dir_items(shell):
    proc = subprocess.run(
        [waldo_executable()],
        capture_output=True,
        text=True,
        env=shell_env(_WALDO_COMPLETE=f"{shell}_source"),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # each script turns a "file" item into the shell's own file-name
    # completion, and a "dir" item into folder-name completion
    for kind in ("file", "dir"):
        assert re.search(rf"""=\s*['"]{kind}['"]""", proc.stdout), proc.stdout


# Typed at a real shell, then Tab: what the shell adds to the line.
TABBED = [
    ("waldo find sc", r"ene\.png"),
    ("waldo find scene.png w", r"aldo\.png"),
    ("waldo find -t w", r"aldo\.png"),
    ("waldo find --show sc", r"ene\.png"),
    ("waldo find scene.png waldo.png --overlay sh", "ots"),
    ("waldo conv scene.png --kernel so", "bel"),  # sobel, sobel-x, sobel-y
    ("waldo conv scene.png --kernel lay", r"er\.npy"),
    ("waldo conv scene.png --out la", r"yer\.npy"),
    ("waldo demo s", "hots"),  # folders only: not scene.png
]

INTERACTIVE = {
    "bash": (
        ["bash", "--norc", "--noprofile", "-i"],
        'eval "$(_WALDO_COMPLETE=bash_source waldo)"',
    ),
    "zsh": (
        ["zsh", "-f", "-i"],
        'autoload -Uz compinit && compinit -u -D && eval "$(_WALDO_COMPLETE=zsh_source waldo)"',
    ),
}


def _sync(shell: Terminal) -> None:
    """Clear the line and wait until the shell has run a command: it is ready for keys."""
    shell.send("\x15echo SYNC$((6 * 7))\r")
    shell.expect("SYNC42")
    shell.expect(PROMPT)


@pytest.mark.parametrize("name", sorted(INTERACTIVE))
def test_tab_completes_file_names_in_a_real_shell(name, folder, tmp_path):
    argv, setup = INTERACTIVE[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (apt-get install {argv[0]})")
    env = shell_env(HOME=str(tmp_path), TERM="xterm", PS1=PROMPT)
    with Terminal(argv, cwd=folder, env=env) as shell:
        shell.expect(PROMPT)
        shell.send(setup + "\r")
        _sync(shell)
        for typed, added in TABBED:
            shell.send(typed + "\t")
            shell.expect(added, timeout=30)
            _sync(shell)
        shell.send("exit\r")
        assert shell.wait(timeout=30) == 0


def test_bash_completion_function_lists_kernel_names(folder):
    """The generated function itself, called as bash calls it, fills COMPREPLY."""
    script = subprocess.run(
        [waldo_executable()],
        capture_output=True,
        text=True,
        env=shell_env(_WALDO_COMPLETE="bash_source"),
        timeout=60,
        check=True,
    ).stdout
    function = re.search(r"^(\w+)\(\) \{", script, re.MULTILINE).group(1)
    call = (
        f"{script}\nCOMP_WORDS=(waldo conv scene.png --kernel so); COMP_CWORD=4\n"
        f'{function} waldo\nprintf "%s\\n" "${{COMPREPLY[@]}}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", call],
        capture_output=True,
        text=True,
        cwd=folder,
        env=shell_env(),
        timeout=60,
    )
    assert proc.stdout.split() == ["sobel-x", "sobel-y", "sobel"], proc.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_file_names(folder, tmp_path):
    script = tmp_path / "waldo.fish"
    script.write_text(
        subprocess.run(
            [waldo_executable()],
            capture_output=True,
            text=True,
            env=shell_env(_WALDO_COMPLETE="fish_source"),
            timeout=60,
            check=True,
        ).stdout
    )
    # `complete -C LINE` prints what Tab would offer after LINE, one per line
    asked = {typed: f"complete -C {shlex.quote(typed)}" for typed, _ in TABBED}
    lines = [f"source {shlex.quote(str(script))}"]
    for typed, command in asked.items():
        lines += [f"echo '>>> {typed}'", command]
    proc = subprocess.run(
        ["fish", "--no-config", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        cwd=folder,
        env=shell_env(HOME=str(tmp_path)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    offered = {}
    for block in proc.stdout.split(">>> ")[1:]:
        typed, *rest = block.splitlines()
        offered[typed] = [line.split("\t")[0] for line in rest]
    assert offered["waldo find sc"] == ["scene.png"]
    assert offered["waldo find -t w"] == ["waldo.png"]
    assert offered["waldo find --show sc"] == ["scene.png"]
    assert offered["waldo demo s"] == ["shots/"]
    assert offered["waldo find scene.png waldo.png --overlay sh"] == ["shots/"]
    assert offered["waldo conv scene.png --kernel lay"] == ["layer.npy"]
    assert sorted(offered["waldo conv scene.png --kernel so"]) == ["sobel", "sobel-x", "sobel-y"]
    assert offered["waldo conv scene.png --out la"] == ["layer.npy"]
