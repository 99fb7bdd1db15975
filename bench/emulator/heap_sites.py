#!/usr/bin/env python3
"""Groups heaptrack's live bytes (a flame-graph stacks file written with
`--flamegraph-cost-type leaked`) by allocation site, per connection, and compares builds.

Usage: heap_sites.py CONNECTIONS LABEL=stacks.txt [LABEL=stacks.txt ...]

A site is the innermost frame of the emulator's own code (crate `iothub_emulator` or
`iothub_cli`) and the innermost frame outside the allocator, the standard library and the
collections; sizes are live bytes at the end divided by CONNECTIONS (heap.sh stops the
server while the connections are held, so "leaked" is what they held then).
"""
import pathlib
import re
import subprocess
import sys
from collections import defaultdict

OWN = ("iothub_emulator", "iothub_cli")
# Source files of the emulator and the CLI (stack files name inlined frames by file only).
OWN_FILES = {
    p.name
    for root in ("crates/iothub-emulator/src", "crates/iothub-cli/src")
    for p in pathlib.Path(__file__).resolve().parents[2].joinpath(root).rglob("*.rs")
} - {"mod.rs", "lib.rs", "main.rs", "tests.rs"}
LIB_FILES = {"alloc.rs", "boxed.rs", "raw_vec.rs", "mod.rs", "vec.rs", "spec_from_iter.rs",
             "spec_from_elem.rs", "string.rs", "map.rs", "raw.rs", "bytes_mut.rs", "rc.rs",
             "sync.rs", "arc.rs", "convert.rs", "clone.rs", "function.rs", "vec_deque.rs"}
MACHINERY = re.compile(
    r"^(<?alloc::|<?core::|<?std::|<alloc::|hashbrown::|<hashbrown::|__rust|malloc|calloc|realloc"
    r"|<bytes::bytes_mut::BytesMut>::reserve|<bytes::|bytes::)"
)


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout
    return [re.sub(r"\[[0-9a-f]{16}\]", "", n) for n in out.split("\n")]


def load(path):
    stacks = []
    for line in open(path):
        line = line.rstrip("\n")
        stack, _, cost = line.rpartition(" ")
        if not cost.isdigit() or int(cost) == 0:
            continue
        frames = []
        for f in stack.split(";"):
            m = re.match(r"^(.*?)(?: \(([^)]*)\))?$", f)
            if f and m:
                frames.append((m.group(1), m.group(2) or ""))
        stacks.append((frames, int(cost)))
    names = sorted({f for frames, _ in stacks for f, _ in frames})
    table = dict(zip(names, demangle(names)))
    sites = defaultdict(int)
    for frames, cost in stacks:
        frames = [(table.get(f, f), file) for f, file in frames]
        own = next(
            (f"{f} ({file})" for f, file in reversed(frames) if any(o in f for o in OWN) or file in OWN_FILES),
            "-",
        )
        lib = next(
            (f"{f} ({file})" for f, file in reversed(frames) if not MACHINERY.match(f) and file not in LIB_FILES),
            "-",
        )
        sites[(own[:110], lib[:110])] += cost
    return sites


def main():
    n = int(sys.argv[1])
    builds = [arg.split("=", 1) for arg in sys.argv[2:]]
    data = {label: load(path) for label, path in builds}
    keys = set().union(*data.values())
    rows = sorted(keys, key=lambda k: -max(d.get(k, 0) for d in data.values()))
    labels = [label for label, _ in builds]
    print(" | ".join(f"{label:>9}" for label in labels) + " | site (own frame / library frame), bytes per connection")
    for k in rows:
        vals = [data[label].get(k, 0) / n for label in labels]
        if max(vals) < 8:
            continue
        print(" | ".join(f"{v:9.0f}" for v in vals) + f" | {k[0]}  //  {k[1]}")
    print(" | ".join(f"{sum(data[label].values()) / n:9.0f}" for label in labels) + " | total")


if __name__ == "__main__":
    main()
