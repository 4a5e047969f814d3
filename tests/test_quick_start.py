"""The README's two commands are what CI runs, and `make test` brings what the tests need beyond
requirements.txt (Chromium) or stops before any test with the command to run.

CI once stayed green while the README's `make test` failed on a machine without Chromium, because only
`.ci/run` installed it. These tests keep the two paths one: `.ci/run` runs the README's `make test`
(and then builds the documentation, `make docs`), and `tests/system-deps.sh` (run by `make test` before pytest) is exercised here with stand-ins
for `id`, `sudo`, `apt-get` and `chromium` on an otherwise empty PATH.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

SYSTEM_DEPS = REPO / "tests" / "system-deps.sh"


def quick_start_commands() -> list[str]:
    """The commands of the README's "Two commands" code block, comments dropped."""
    section = REPO.joinpath("README.md").read_text(encoding="utf-8").split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def script_commands(path: Path) -> list[str]:
    """A shell script's commands, less comments, `set` options and the `cd` to the repository root."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith(("set ", "cd "))]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    """CI runs the README's `make test`, then builds the docs (`make docs`), and nothing else."""
    assert quick_start_commands() == ["make repro", "make test"]
    assert script_commands(REPO / ".ci" / "run") == ["make test", "make docs"]


def test_make_test_provides_the_system_dependencies_before_pytest():
    dry = subprocess.run(["make", "-n", "-B", "test"], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    deps = next(i for i, line in enumerate(lines) if "tests/system-deps.sh" in line)
    tests = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert deps < tests


def test_every_program_the_tests_look_up_is_provided_by_system_deps():
    """A test that needs a program outside requirements.txt finds it with shutil.which: each one must be
    installed (or explained) by system-deps.sh, or `make test` fails on a fresh machine."""
    looked_up = set()
    for path in (REPO / "tests").glob("*.py"):
        looked_up |= set(re.findall(r"shutil\.which\(\"([^\"]+)\"\)", path.read_text(encoding="utf-8")))
    assert "chromium" in looked_up  # the scan sees the one we know of
    script = SYSTEM_DEPS.read_text(encoding="utf-8")
    assert all(f"command -v {name}" in script for name in looked_up), looked_up


# --- system-deps.sh on a machine of stand-ins ---------------------------------------------------

def stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A PATH holding only stand-ins; each call is logged to calls.log. `uid` sets what `id -u` says."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"

    def setup(uid: int, sudo: bool = False, apt_installs: str | None = None, apt: bool = True) -> Path:
        stand_in(bin_dir, "id", f'echo "id $*" >> {log}; echo {uid}')
        if sudo:  # password-less sudo: runs its command
            stand_in(bin_dir, "sudo", f'echo "sudo $*" >> {log}; [ "$1" = -n ] && shift; "$@"')
        if apt:
            # `apt-get install ... chromium` makes a chromium command only where the package exists.
            make = (f'case "$*" in *" {apt_installs}") stand="{bin_dir}/{apt_installs}"; '
                    f'printf "#!/bin/sh\\necho Chromium 1.0\\n" > "$stand"; /bin/chmod +x "$stand";; '
                    f'*install*) exit 100;; esac') if apt_installs else 'case "$*" in *install*) exit 100;; esac'
            stand_in(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}; {make}')
        return bin_dir

    def run(env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
        proc = subprocess.run(["/bin/sh", str(SYSTEM_DEPS)], env={"PATH": str(bin_dir), **(env or {})},
                              capture_output=True, text=True, timeout=60)
        calls = log.read_text().splitlines() if log.exists() else []
        return proc, calls

    return setup, run


def test_chromium_present_installs_nothing(machine):
    setup, run = machine
    bin_dir = setup(uid=1000)
    stand_in(bin_dir, "chromium", "echo Chromium 1.0")
    proc, calls = run()
    assert proc.returncode == 0 and not any(c.startswith("apt-get") for c in calls)


def test_as_root_chromium_is_installed_with_apt(machine):
    setup, run = machine
    setup(uid=0, apt_installs="chromium")
    proc, calls = run()
    assert proc.returncode == 0, proc.stderr
    assert calls[-2:] == ["apt-get update -qq", "apt-get install -y -qq --no-install-recommends chromium"]
    assert "Chromium installed: Chromium 1.0" in proc.stdout


def test_where_debian_has_no_chromium_package_ubuntus_name_is_tried(machine):
    setup, run = machine
    setup(uid=0, apt_installs="chromium-browser")
    proc, calls = run()
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "apt-get install -y -qq --no-install-recommends chromium-browser"


def test_a_user_with_password_less_sudo_installs_through_sudo(machine):
    setup, run = machine
    setup(uid=1000, sudo=True, apt_installs="chromium")
    proc, calls = run()
    assert proc.returncode == 0, proc.stderr
    assert "sudo -n apt-get install -y -qq --no-install-recommends chromium" in calls


@pytest.mark.parametrize("case", ["user without sudo", "no apt-get", "apt-get fails", "CHROMIUM not executable"])
def test_where_it_cannot_install_it_stops_with_one_line_naming_the_command(machine, tmp_path, case):
    setup, run = machine
    env = {}
    if case == "user without sudo":
        setup(uid=1000, apt_installs="chromium")
    elif case == "no apt-get":
        setup(uid=0, apt=False)
    elif case == "apt-get fails":
        setup(uid=0, apt_installs=None)
    else:
        setup(uid=0, apt_installs="chromium")
        env = {"CHROMIUM": str(tmp_path / "nowhere" / "chrome")}
    proc, calls = run(env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("make test: ")
    assert "sudo apt-get install -y --no-install-recommends chromium" in lines[0]
    if case == "user without sudo":  # nothing was attempted that needs root
        assert not any(c.startswith("apt-get") for c in calls)
    if case == "CHROMIUM not executable":
        assert "CHROMIUM=" in lines[0] and "nowhere" in lines[0]
