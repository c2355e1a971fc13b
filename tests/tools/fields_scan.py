#!/usr/bin/env python3
"""fields_scan — the field keys written with a string literal in the C sources.

Finds `ev_set_*(ev, "key", ...)`, `ev_append_*(ev, "key", ...)` and
`ev_obj_*(ev, "key", elem, "member", ...)` (key.member) in core/, net/, shipper/ and
sys/, so tests/pcap/test_fields.py can require a table entry for keys on code paths no
capture reaches. Keys built at run time (tables, macros, helpers taking a key
parameter) are not seen: the replay check covers those.

  python3 tests/tools/fields_scan.py [ROOT]     prints "key<TAB>file:line" lines
"""
import os
import re
import sys

CALL = re.compile(r'\bev_(set|append|obj)_[a-z]+\s*\(\s*[^,()]+,\s*"([^"\\]+)"'
                  r'(?:\s*,\s*[^,()]+,\s*"([^"\\]+)")?')
DIRS = ("core", "net", "shipper", "sys")


def scan(root):
    """{key: ["file:line", ...]} of the literal keys of the sources under root."""
    found = {}
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for name in sorted(files):
                if not name.endswith(".c"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for m in CALL.finditer(text):
                    key = m.group(2)
                    if m.group(1) == "obj" and m.group(3):
                        key += "." + m.group(3)
                    line = text.count("\n", 0, m.start()) + 1
                    found.setdefault(key, []).append("%s:%d" % (os.path.relpath(path, root), line))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    for key, where in sorted(scan(root).items()):
        print("%s\t%s" % (key, where[0]))


if __name__ == "__main__":
    main()
