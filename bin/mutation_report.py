#!/usr/bin/env python3
"""The mutation score of the last `mutmut run`, net of the equivalent mutants.

Run from the project root after `mutmut run` (`make mutation` does both). Reads
mutmut's results in mutants/ and the equivalent mutants listed in
tests/mutation_equivalents.toml; prints the score, the equivalents that no
longer match a surviving mutant, and each other survivor as an entry ready to
paste into that file once it is shown to be equivalent. Exits 1 under
--fail-under percent.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mutmut.__main__ import SourceFileMutationData, get_diff_for_mutant, walk_mutatable_files
from mutmut.stats import status_by_exit_code

EQUIVALENTS = Path("tests/mutation_equivalents.toml")
KILLED = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"not checked", "check was interrupted by user"}


@dataclass(frozen=True)
class Mutant:
    name: str
    path: Path
    status: str

    def changed_line(self) -> str:
        """The mutated line as it reads after the mutation, or the line it removed."""
        diff = get_diff_for_mutant(self.name, path=self.path).splitlines()[2:]  # no header
        added = [line[1:].strip() for line in diff if line.startswith("+")]
        removed = [line[1:].strip() for line in diff if line.startswith("-")]
        return added[0] if added else f"removed: {removed[0]}" if removed else ""


def mutants() -> list[Mutant]:
    found = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for name, exit_code in data.exit_code_by_key.items():
            found.append(Mutant(name, path, status_by_exit_code[exit_code]))
    return found


def load_equivalents(path: Path) -> dict[str, dict[str, str]]:
    entries = tomllib.loads(path.read_text()).get("mutant", []) if path.exists() else []
    for entry in entries:
        missing = {"name", "line", "why"} - set(entry)
        if missing:
            raise SystemExit(f"{path}: entry {entry} lacks {', '.join(sorted(missing))}")
    return {entry["name"]: entry for entry in entries}


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT")
    parser.add_argument("--equivalents", type=Path, default=EQUIVALENTS)
    args = parser.parse_args(argv)

    found = mutants()
    results = [m for m in found if m.status not in NOT_RUN]
    if not results:
        print("No mutation results: run `mutmut run` first.")
        return 1
    if len(results) < len(found):
        print(f"Not run (the run was stopped): {len(found) - len(results)} of {len(found)}")
    equivalents = load_equivalents(args.equivalents)
    survivors = [m for m in results if m.status not in KILLED]
    equivalent, unexplained = [], []
    for mutant in survivors:
        entry = equivalents.get(mutant.name)
        if entry is not None and entry["line"] == mutant.changed_line():
            equivalent.append(mutant)
        else:
            unexplained.append(mutant)
    # An entry is stale when its mutant ran and did not survive as that line; a
    # stopped run says nothing of the mutants it did not reach.
    unknown = {m.name for m in found if m.status in NOT_RUN}
    matched = {m.name for m in equivalent} | unknown
    stale = [entry for name, entry in equivalents.items() if name not in matched]

    counted = len(results) - len(equivalent)
    killed = len(results) - len(survivors)
    score = 100.0 * killed / counted if counted else 100.0
    statuses = Counter(m.status for m in results)
    print(f"Mutants: {len(results)} ({', '.join(f'{n} {s}' for s, n in statuses.most_common())})")
    print(f"Equivalent (listed in {args.equivalents}): {len(equivalent)}")
    print(f"Score: {killed}/{counted} non-equivalent mutants killed = {score:.1f} %")

    if stale:
        print(f"\nListed as equivalent but no longer a survivor with that line ({len(stale)}):")
        for entry in stale:
            print(f"  {entry['name']}: {entry['line']}")
    if unexplained:
        print(f"\nSurviving mutants ({len(unexplained)}); `mutmut show NAME` shows each diff.")
        print("Kill each with a test, or, if it is equivalent, add its entry to the file:\n")
        for mutant in unexplained:
            print("[[mutant]]")
            print(f"name = {toml_string(mutant.name)}")
            print(f"line = {toml_string(mutant.changed_line())}")
            print(f'why = ""  # {mutant.status}\n')
    return 1 if score < args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
