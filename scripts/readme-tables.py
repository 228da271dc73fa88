#!/usr/bin/env python3
"""Rewrites README's command, environment and exit-code tables from the
code's tables, as build/unit/test_readme prints them when they differ:
run `make build/unit/test_readme && python3 scripts/readme-tables.py` after
changing a table row, then review the diff."""
import pathlib
import re
import subprocess

root = pathlib.Path(__file__).resolve().parent.parent
out = subprocess.run([str(root / "build/unit/test_readme")], cwd=root, capture_output=True,
                     text=True).stdout
blocks = {m.group(1): m.group(2) for m in re.finditer(
    r"README.md should hold this ([\w-]+) table:\n\n((?:\|.*\n)+)", out)}
headers = {"command": "| command | meaning |",
           "environment": "| variable | default | flag | meaning |",
           "exit-code": "| code | meaning | retry can help |"}
readme = root / "README.md"
lines = readme.read_text().split("\n")
for name, block in blocks.items():
    i = lines.index(headers[name])
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    lines[i:j] = block.rstrip("\n").split("\n")
    print(f"README: the {name} table rewritten")
readme.write_text("\n".join(lines))
