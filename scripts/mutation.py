"""Mutation testing of the plugin's core modules, one module at a time, with mutmut.

    python scripts/mutation.py                 # every module below
    python scripts/mutation.py _settings       # one (or several) of them
    python scripts/mutation.py _engine --show  # also print the diff of each surviving mutant
    python scripts/mutation.py --fail-under 90 # exit 1 if a module scores below 90%

Each module is mutated in a copy of the package and tests under ``.mutation/<module>/`` (the
working tree is never changed, so it can be edited and tested meanwhile), and only its fast
unit tests run against each mutant: pytester runs of whole suites take seconds each, and a
module has hundreds of mutants. Prints per module: mutants, killed, survived, timeout,
other (no test reached the mutated code, or mutmut could not tell) and the score (killed /
mutants), then the name of each mutant that was not killed. The copy is kept until the next run, for
``cd .mutation/<module> && ../../.venv/bin/mutmut show <name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pytest_llmcache"
WORK = ROOT / ".mutation"

# The unit tests that exercise each module directly: no pytester, no subprocess. Tests of
# other modules that also reach the mutated one only make each mutant slower to judge.
TESTS: dict[str, tuple[str, ...]] = {
    "_engine": ("tests/test_engine.py",),
    "_key": ("tests/test_key.py",),
    "_secrets": ("tests/test_secrets.py", "tests/test_secrets_property.py"),
    # make_entry is also tested with the secrets; the engine's tests store real recordings
    # through it.
    "_capture": (
        "tests/test_capture.py",
        "tests/test_secrets.py",
        "tests/test_secrets_property.py",
        "tests/test_engine.py",
    ),
    "_settings": ("tests/test_settings.py",),
}

# Random order would make a mutant's verdict depend on the seed.
PYTEST_ARGS = ("-p", "no:randomly", "-p", "no:cacheprovider", "-q")


@dataclass
class Result:
    """The verdicts on one module's mutants."""

    module: str
    mutants: int
    killed: int
    survived: int
    timeout: int
    other: int
    seconds: float
    not_killed: list[str]

    @property
    def score(self) -> float:
        """Killed mutants, as a percentage of all of them."""
        return 100.0 * self.killed / self.mutants if self.mutants else 100.0


def mutmut_command() -> list[str]:
    """mutmut from the project's virtualenv, whichever Python runs this script."""
    venv = ROOT / ".venv" / "bin" / "mutmut"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed: run .venv/bin/pip install -e '.[test]'")
    return [found]


def prepare(module: str) -> Path:
    """A fresh copy of the package and the tests, configured to mutate ``module`` only."""
    work = WORK / module
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / PACKAGE, work / PACKAGE, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    if "[tool.mutmut]" in pyproject:
        sys.exit("pyproject.toml has its own [tool.mutmut]: this script writes that section")
    # JSON lists of plain strings are TOML arrays too.
    config = "\n".join(
        [
            "",
            "[tool.mutmut]",
            f"source_paths = {json.dumps([PACKAGE])}",
            f"only_mutate = {json.dumps([f'{PACKAGE}/{module}.py'])}",
            f"pytest_add_cli_args = {json.dumps(list(PYTEST_ARGS))}",
            f"pytest_add_cli_args_test_selection = {json.dumps(list(TESTS[module]))}",
            # The copy is thrown away after each run: nothing to compare with git.
            "use_git_change_detection = false",
            "",
        ]
    )
    (work / "pyproject.toml").write_text(pyproject + config, "utf-8")
    return work


def run(module: str, jobs: int, show: bool) -> Result:
    """Mutation-test ``module`` and collect its verdicts."""
    work = prepare(module)
    mutmut = mutmut_command()
    # LLM_CACHE_MUTATION: property tests draw fewer examples, the same ones for every mutant.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LLM_CACHE_MUTATION": "1"}
    env.pop("LLM_CACHE_MODE", None)  # the tests choose their own mode
    log = work / "mutmut.log"
    print(f"{module}: mutating {PACKAGE}/{module}.py, testing with {' '.join(TESTS[module])}")
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            [*mutmut, "run", "--max-children", str(jobs)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        # The spinner redraws one line with carriage returns: keep the last state of each.
        lines = [line.split("\r")[-1] for line in log.read_text("utf-8").splitlines()]
        print("\n".join(lines[-40:]), file=sys.stderr)
        sys.exit(f"{module}: mutmut run failed (exit {done.returncode}); full output in {log}")
    subprocess.run(
        [*mutmut, "export-cicd-stats"], cwd=work, env=env, check=True, capture_output=True
    )
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text("utf-8"))
    listed = subprocess.run(
        [*mutmut, "results"], cwd=work, env=env, check=True, capture_output=True, text=True
    )
    not_killed = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    if show:
        for line in not_killed:
            name = line.split(":")[0]
            subprocess.run([*mutmut, "show", name], cwd=work, env=env, check=False)
    total = int(stats["total"])
    killed = int(stats["killed"])
    survived = int(stats["survived"])
    timeout = int(stats["timeout"])
    return Result(
        module=module,
        mutants=total,
        killed=killed,
        survived=survived,
        timeout=timeout,
        other=total - killed - survived - timeout,
        seconds=seconds,
        not_killed=not_killed,
    )


def report(results: list[Result]) -> None:
    """The table of verdicts, then every mutant that was not killed."""
    header = ("module", "mutants", "killed", "survived", "timeout", "other", "score", "time")
    print()
    print("{:<10} {:>8} {:>7} {:>9} {:>8} {:>6} {:>7} {:>7}".format(*header))
    for r in results:
        print(
            f"{r.module:<10} {r.mutants:>8} {r.killed:>7} {r.survived:>9} {r.timeout:>8} "
            f"{r.other:>6} {r.score:>6.1f}% {r.seconds:>6.0f}s"
        )
    for r in results:
        if r.not_killed:
            print(
                f"\n{r.module}: not killed (see: cd {WORK.relative_to(ROOT)}/{r.module} && "
                f"mutmut show <name>)"
            )
            for line in r.not_killed:
                print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    """Run the modules named on the command line (all of them by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help=f"among {', '.join(TESTS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants at once")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--fail-under",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="exit with status 1 if a module scores below this",
    )
    args = parser.parse_args(argv)
    modules: list[str] = args.modules or list(TESTS)
    unknown = [m for m in modules if m not in TESTS]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; choose among {', '.join(TESTS)}")
    results = [run(module, args.jobs, args.show) for module in modules]
    report(results)
    return 1 if any(r.score < args.fail_under for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
