"""``--show[=overlay|heatmap]`` never takes the next argument as its value (#12).

Through the installed ``waldo``, in the orders people type options in: off a
terminal --show draws nothing, so the exit status and stdout (the usual TSV)
say the arguments were read right; on a pseudo-terminal the picture appears.
"""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner
from helpers import assert_one_line_error
from installed import shell_env, waldo_executable
from terminal_session import Terminal

from waldo_cli.cli import cli

IMAGE, TEMPLATE = "astronaut.png", "astronaut-patch.png"  # in sample_images/
ONE = "rank\tx\ty\twidth\theight\tscore\n1\t134\t350\t72\t68\t1.000000\n"
BATCH = "image\trank\tx\ty\twidth\theight\tscore\nastronaut.png\t1\t134\t350\t72\t68\t1.000000\n"


@pytest.fixture(scope="module")
def sample_images(request):
    return request.config.rootpath / "sample_images"


@pytest.mark.parametrize(
    ("args", "stdout"),
    [
        (["--show", IMAGE, TEMPLATE], ONE),
        ([IMAGE, "--show", TEMPLATE], ONE),
        ([IMAGE, TEMPLATE, "--show"], ONE),
        (["--show=heatmap", IMAGE, TEMPLATE], ONE),
        (["-t", TEMPLATE, "--show", IMAGE], BATCH),
        (["--show", "-t", TEMPLATE, IMAGE], BATCH),
        (["-t", TEMPLATE, IMAGE, "--show=heatmap"], BATCH),
    ],
)
def test_show_never_takes_the_next_argument(args, stdout, sample_images):
    proc = subprocess.run(
        [waldo_executable(), "find", *args],
        capture_output=True,
        text=True,
        cwd=sample_images,
        env=shell_env(),
        timeout=300,
    )
    assert (proc.returncode, proc.stdout) == (0, stdout), proc.stderr
    assert "waldo: error" not in proc.stderr


def test_a_value_after_a_space_says_to_join_it(sample_images):
    result = CliRunner().invoke(
        cli,
        ["find", "--show", "heatmap", str(sample_images / IMAGE), str(sample_images / TEMPLATE)],
    )
    assert_one_line_error(result, "--show=heatmap", "--show alone means --show=overlay")


def test_a_word_after_dashdash_or_an_option_value_is_not_the_option(sample_images):
    runner = CliRunner()
    # after --, "--show" is a file name (here a missing one)
    image, template = str(sample_images / IMAGE), str(sample_images / TEMPLATE)
    shown = runner.invoke(cli, ["find", "-k", "1", "--show", "--", image, template])
    assert (shown.exit_code, shown.stdout) == (0, ONE), shown.stderr
    assert_one_line_error(runner.invoke(cli, ["find", "--", "--show", template]), "--show: no such")
    # the value of an option that needs one, as Click reads it
    assert_one_line_error(runner.invoke(cli, ["find", "-k", "--show", "a", "b"]), "'--show'")
    assert_one_line_error(runner.invoke(cli, ["find", "-qk", "--show", "a", "b"]), "'--show'")


def test_help_shows_the_optional_value():
    result = CliRunner().invoke(cli, ["find", "--help"], terminal_width=100)
    assert "--show[=overlay|heatmap]" in result.stdout


def test_bare_show_draws_the_overlay_on_a_terminal(sample_images):
    env = shell_env(TERM="xterm-256color", COLORTERM="truecolor")
    with Terminal(
        [waldo_executable(), "find", "--show", IMAGE, TEMPLATE], cwd=sample_images, env=env
    ) as terminal:
        status = terminal.wait(timeout=300)
        shown = terminal.shown
    assert status == 0, shown
    assert shown.count("▀") > 100, shown  # the picture, in half blocks
    assert "134" in shown and "350" in shown  # and the table below it
