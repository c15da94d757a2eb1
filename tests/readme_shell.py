"""The README's shell, for the tests that run the documentation's commands (tests/integration/
test_readme_commands.py, tests/lab/test_readme_lab.py): the repository as the working
directory, the virtualenv's `bin` first on PATH (`source .venv/bin/activate`), a
KUBELAB_HOME of the test's own; and the check of one command against what the README shows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubelab.testing.docker import REPO_ROOT
from kubelab.testing.readme import Command, output_problem

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EXPORT = re.compile(r"export ([A-Za-z_][A-Za-z0-9_]*)=(\S+)(\s+#.*)?")
RETRY_FOR = 30.0  # seconds a reading command may take to show the README's shape
WATCH_FOR = 20.0  # seconds a watch may take to print its first lines
STILL_FOR = 1.0  # seconds a watch must go on running after it printed


@dataclass
class Shell:
    """The README's shell: the repository, a fresh KUBELAB_HOME, the venv on PATH."""

    home: Path
    # Stdin a terminal, as the reader's: `docker-compose exec` (Compose v1) wants one
    # unless given -T, which the README gives only where it pipes into it.
    terminal: bool = False
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "KUBELAB_HOME": str(self.home),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        }
        self.env.pop("KUBELAB_SERVER", None)

    def run(self, text: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        exported = _EXPORT.fullmatch(text.strip())
        if exported is not None:
            # The reader's shell keeps what `export` sets for the commands after it.
            name = exported[1]
            done = self._run(f'{text}\nprintf %s "${name}"', timeout, subprocess.DEVNULL)
            if done.returncode == 0:
                self.env[name] = done.stdout
                done.stdout = ""
            return done
        if not self.terminal:
            return self._run(text, timeout, subprocess.DEVNULL)
        controller, terminal = os.openpty()
        try:
            return self._run(text, timeout, terminal)
        finally:
            os.close(terminal)
            os.close(controller)

    def _run(self, text: str, timeout: float, stdin: int) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        # What a terminal shows: colours are no characters, a line ends where it ends.
        done.stdout, done.stderr = (
            _ANSI.sub("", out).replace("\r", "") for out in (done.stdout, done.stderr)
        )
        return done

    def watch(self, argv: list[str]) -> str:
        """Run a command that runs until stopped: it must print and still be running."""
        with tempfile.TemporaryFile("w+") as out:
            process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + WATCH_FOR
                while process.poll() is None and time.monotonic() < deadline:
                    if out.tell() > 0:  # it printed: it must go on running a while
                        deadline = min(deadline, time.monotonic() + STILL_FOR)
                    time.sleep(0.05)
                running = process.poll() is None
                out.seek(0)
                printed = out.read()  # before Ctrl-C: Python prints a traceback for that
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
        assert running, f"exited with {process.returncode} instead of watching:\n{printed}"
        assert printed.strip(), f"printed nothing in {WATCH_FOR:.0f} s"
        return printed

    def check(
        self, command: Command, text: str, any_order: bool = False, timeout: float = 60.0
    ) -> None:
        """Run `text` (the command, maybe with a value of this run put in) and assert what
        the README says of it: exit code 0, or non-zero under an error; its output's
        shape. A command that only reads is retried until both hold, with a deadline."""
        deadline = time.monotonic() + (0 if command.changes_state else RETRY_FOR)
        while True:
            result = self.run(text, timeout)
            printed = result.stdout + result.stderr
            problem = "Traceback in the output" if "Traceback" in printed else None
            failed = result.returncode != 0
            if problem is None and failed != command.expects_failure:
                problem = f"exit code {result.returncode}" + (
                    " (the README shows an error: it must fail)" if command.expects_failure else ""
                )
            if problem is None and command.expected:
                # What the README shows is what a terminal shows: stdout, or the error on
                # stderr (curl's progress meter goes there too, when stdout is no terminal).
                problems = [
                    output_problem(command.expected, out, any_order)
                    for out in (result.stdout, result.stderr, printed)
                ]
                problem = None if None in problems else problems[-1]
            if problem is None or time.monotonic() >= deadline:
                break
            time.sleep(0.2)  # between tries of a reading command; the deadline bounds them
        shown = "\n".join(command.expected) or "(none shown)"
        assert problem is None, (
            f"{command.where}: {command.head}\n{problem}\n"
            f"--- the documentation shows:\n{shown}\n--- it printed:\n{result.stdout}\n"
            f"--- on stderr:\n{result.stderr}"
        )
