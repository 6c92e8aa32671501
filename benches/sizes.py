#!/usr/bin/env python3
"""Prints the size of each function's Lambda artefact (target/lambda/<binary>/bootstrap, stripped:
the release profile has `strip = true`, checked here) and fails when one is over the limit.

Usage: benches/sizes.py <binary>...   (`make build` passes the template's binaries)
"""
import os
import sys

LIMIT = 8_000_000  # bytes: 8 MB


def stripped(path):
    """An ELF file with no .symtab section (what `strip` removes)."""
    with open(path, "rb") as f:
        data = f.read()
    return b".symtab" not in data and b".debug_info" not in data


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    over, rows = [], []
    for binary in binaries:
        path = os.path.join("target", "lambda", binary, "bootstrap")
        if not os.path.isfile(path):
            sys.exit(f"{path} is missing: the build did not make it")
        if not stripped(path):
            sys.exit(f"{path} is not stripped: the release profile must keep `strip = true`")
        size = os.path.getsize(path)
        rows.append((binary, size))
        if size > LIMIT:
            over.append(f"{binary} ({size / 1e6:.2f} MB)")
    print("| binary (arm64, stripped) | bytes | MB |")
    print("| --- | ---: | ---: |")
    for binary, size in rows:
        print(f"| {binary} | {size:,} | {size / 1e6:.2f} |")
    if over:
        sys.exit(f"over {LIMIT / 1e6:.0f} MB: {', '.join(over)}")


if __name__ == "__main__":
    main()
