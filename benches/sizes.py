#!/usr/bin/env python3
"""Prints the size of each function's Lambda artefact (target/lambda/<binary>/bootstrap, stripped:
the release profile has `strip = true`, checked here) and fails when one is over the limit.

Usage: benches/sizes.py <binary>...   (`make build` passes the template's binaries)
"""
import os
import struct
import sys

LIMIT = 8_000_000  # bytes: 8 MB


def section_names(path):
    """The section names of an ELF64 little-endian file, read from its section header table."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit(f"{path} is not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset, strtab_size = headers[shstrndx][4], headers[shstrndx][5]
    strtab = data[strtab_offset:strtab_offset + strtab_size]
    return {strtab[h[0]:strtab.index(b"\0", h[0])].decode() for h in headers}


def stripped(path):
    """No symbol table and no debug info (what `strip` removes). Searching the bytes for
    `.symtab` is not enough: the standard library's backtrace code holds that string."""
    names = section_names(path)
    return ".symtab" not in names and not any(n.startswith(".debug_") for n in names)


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
