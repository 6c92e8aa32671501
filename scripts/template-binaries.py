#!/usr/bin/env python3
"""The function binaries of template.yaml, one per line: `Metadata.BuildProperties.Binary` of
every `AWS::Serverless::Function`, in template order. `make build` builds exactly these.

Standard library only (the template's `!Ref` tags need no YAML parser for this): resources are
the two-space-indented keys under `Resources:`; `Type:` and `Binary:` are read inside each.
scripts/checks/sam_local_env.py checks the list against SAM CLI's own reading of the template.

    python3 scripts/template-binaries.py [template.yaml]
"""

import re
import sys


def binaries(text: str) -> list[str]:
    found = []
    in_resources = False
    kind = binary = None

    def close():
        if kind == "AWS::Serverless::Function":
            if not binary:
                sys.exit("template-binaries: a function without Metadata.BuildProperties.Binary")
            found.append(binary)

    for line in text.splitlines():
        if re.match(r"^\S", line):  # a top-level section
            if in_resources:
                close()
                kind = binary = None
            in_resources = line.startswith("Resources:")
            continue
        if not in_resources:
            continue
        if re.match(r"^  [A-Za-z0-9]+:\s*$", line):  # a resource's logical id
            close()
            kind = binary = None
        elif m := re.match(r"^    Type:\s*(\S+)", line):
            kind = m.group(1)
        elif m := re.match(r"^\s+Binary:\s*(\S+)", line):
            binary = m.group(1).strip("\"'")
    if in_resources:
        close()
    return found


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    with open(path, encoding="utf-8") as f:
        names = binaries(f.read())
    if not names:
        sys.exit(f"template-binaries: no function in {path}")
    print("\n".join(names))
