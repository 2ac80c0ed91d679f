#!/usr/bin/env python3
"""Lists the module cycles of the okrd crate: pairs (and longer loops) of
top-level modules under src/ that import each other through `crate::`.
Exits 1 when there is one. Run by .ci/run; `--graph` prints every edge.

A module is a file or folder directly under src/ (`scorer/`, `live.rs`);
an import is any `crate::NAME` path in its code (a `use`, or a path in an
expression), outside `#[cfg(test)]` modules and comments."""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def modules():
    out = {}
    for entry in sorted(os.listdir(SRC)):
        path = os.path.join(SRC, entry)
        if entry in ("main.rs", "lib.rs"):
            continue
        if os.path.isdir(path):
            files = [
                os.path.join(d, f)
                for d, _, fs in os.walk(path)
                for f in fs
                if f.endswith(".rs")
            ]
            out[entry] = files
        elif entry.endswith(".rs"):
            out[entry[:-3]] = [path]
    return out


def code(path):
    text = open(path, encoding="utf-8").read()
    if os.path.basename(path) == "tests.rs":
        return ""
    # Drop #[cfg(test)] mod blocks (to the end of the file: they come last).
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return text


def edges(mods):
    names = set(mods)
    graph = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            text = code(f)
            for used in re.findall(r"crate::(\w+)", text):
                if used in names and used != m:
                    graph[m].add(used)
            # `use crate::{a, b::c}` groups
            for group in re.findall(r"crate::\{([^}]*)\}", text):
                for used in re.findall(r"(?:^|,)\s*(\w+)", group):
                    if used in names and used != m:
                        graph[m].add(used)
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    graph = edges(modules())
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m])) or '-'}")
    found = cycles(graph)
    for comp in found:
        pairs = [f"{a} <-> {b}" for a in comp for b in comp if a < b and b in graph[a] and a in graph[b]]
        print(f"cycle: {' , '.join(comp)}" + (f" (mutual: {'; '.join(pairs)})" if pairs else ""))
    if not found:
        print(f"no module cycles among {len(graph)} top-level modules")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
