#!/usr/bin/env python3
"""README's Layout table lists src/'s modules bottom-up. Checks that it
lists every module there is (and no other), and that each module includes
only modules listed above it: no include runs back up, so a newcomer can
read the tree from the table."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
section = readme[readme.index("## Layout"):]
table = section[section.index("| module | concern |"):]
order = []
for line in table.splitlines()[2:]:
    if not line.startswith("| `"):
        break
    order.append(line.split("`")[1])
rank = {m: i for i, m in enumerate(order)}

modules = {p.stem for p in (root / "src").glob("*.[ch]")}
problems = []
for m in sorted(modules - set(order)):
    problems.append(f"src/{m}.* is not in README's Layout table")
for m in sorted(set(order) - modules):
    problems.append(f"README's Layout table lists {m}, which src/ does not have")
for path in sorted((root / "src").glob("*.[ch]")):
    me = path.stem
    for inc in re.findall(r'^#include "([a-z_]+)\.h"', path.read_text(), re.M):
        if inc == me or me not in rank or inc not in rank:
            continue
        if rank[inc] >= rank[me]:
            problems.append(f"{path.relative_to(root)} includes {inc}.h, listed at or below "
                            f"{me} in README's Layout: an include that runs back up")
for p in problems:
    print("check-layers:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
