#!/usr/bin/env python3
"""File-level module dependencies per crate, and the cycles among them.

For every library crate (a `src/lib.rs`), each file's `crate::`, `super::` and `self::` paths
(in `use` items and inline) are resolved to the file that defines the item. A `pub use` (also
`pub use x::*`) is a facade, not a dependency: it is followed when resolving, never an edge itself. `mod x;` lines
are structure, not edges. Inline `mod x { .. }` blocks (tests) count as their file.

Prints, per crate, `file -> file` edges, then the cycles (strongly connected components of
more than one file). Exits 1 if any crate has a cycle.

    scripts/module-deps.sh            # every crate
    scripts/module-deps.sh --quiet    # cycles only
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def crate_roots():
    roots = []
    for base in ["src", "loadtest/src"] + sorted(
        os.path.join("crates", c, "src") for c in os.listdir(os.path.join(ROOT, "crates"))
    ):
        if os.path.exists(os.path.join(ROOT, base, "lib.rs")):
            roots.append(base)
    return roots


def module_files(src):
    """module path (tuple) -> file, for files reachable as modules of lib.rs."""
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, src)):
        rel = os.path.relpath(dirpath, os.path.join(ROOT, src))
        if rel.split(os.sep)[0] == "bin":
            continue
        parts = [] if rel == "." else rel.split(os.sep)
        for f in files:
            if not f.endswith(".rs"):
                continue
            name = f[:-3]
            if name in ("lib", "main") and not parts:
                if name == "lib":
                    mods[()] = os.path.join(dirpath, f)
                continue
            path = tuple(parts) if name == "mod" else tuple(parts + [name])
            mods[path] = os.path.join(dirpath, f)
    return mods


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def expand(prefix, body):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (without `as` renames)."""
    body = body.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", body, flags=re.S)
    if not m:
        return [prefix + body.split(" as ")[0].strip()]
    head, inner = m.group(1), m.group(2)
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    out.append(cur)
    res = []
    for part in out:
        if part.strip():
            res += expand(prefix + head, part)
    return res


def scan(file):
    """(paths used: list of (path, inline module depth)), re-exports {name: path})."""
    text = strip_comments(open(file).read())
    uses, reexports = [], {}
    # Inline module depth per position: `mod x {` adds a level for `super::` inside.
    depth_at = []
    stack, depth = [], 0
    for line in text.splitlines():
        if re.match(r"^\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{", line):
            stack.append(depth)
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1]:
            stack.pop()
        depth_at.append(len(stack))
    lines = text.splitlines()
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1

    def level(at):
        lo = 0
        for i, o in enumerate(offsets):
            if o > at:
                break
            lo = i
        return depth_at[lo] if depth_at else 0

    for m in re.finditer(r"\b(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);", text):
        items = expand("", re.sub(r"\s+", " ", m.group(2)))
        lvl = level(m.start())
        for item in items:
            if not re.match(r"^(crate|super|self)::", item):
                # A relative path names a child module (an external crate resolves to the
                # file itself and is dropped).
                item = "self::" + item
            if m.group(1):
                # `pub use x::*` is kept under "*": names not found in the file are looked up there.
                key = item.split("::")[-1]
                if key == "*":
                    reexports.setdefault("*", []).append(item[: -len("::*")])
                else:
                    reexports[key] = item
            else:
                uses.append((item, lvl))
    no_use = re.sub(r"\buse\s+[^;]+;", "", text)
    for m in PATH_RE.finditer(no_use):
        uses.append((m.group(1) + m.group(2), level(m.start())))
    return uses, reexports


def resolve(mods, reexports, here, path, seen=0):
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        base = here
        rest = parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    # Longest prefix that is a file module.
    mod, i = base, 0
    while i < len(rest) and mod + (rest[i],) in mods:
        mod = mod + (rest[i],)
        i += 1
    here_exports = reexports.get(mod, {})
    if i < len(rest) and seen < 8:
        if rest[i] in here_exports and rest[i] != "*":
            return resolve(mods, reexports, mod, here_exports[rest[i]], seen + 1)
        for glob in here_exports.get("*", []):
            # The glob's module, if it is a file that defines the name (or re-exports it).
            target = resolve(mods, reexports, mod, glob, seen + 1)
            if target != mod and defines(mods[target], rest[i]):
                return target
    return mod


def defines(file, name):
    text = open(file).read()
    return re.search(r"\b(struct|enum|fn|type|trait|const|static|mod)\s+" + re.escape(name) + r"\b", text) is not None


def main():
    quiet = "--quiet" in sys.argv
    any_cycle = False
    for src in crate_roots():
        mods = module_files(src)
        scanned = {m: scan(f) for m, f in mods.items()}
        reexports = {m: r for m, (_, r) in scanned.items()}
        edges = {m: set() for m in mods}
        for m, (uses, _) in scanned.items():
            for path, lvl in uses:
                here = m + ("<inline>",) * lvl
                target = resolve(mods, reexports, here, path)
                target = tuple(p for p in target if p != "<inline>")
                if target in mods and target != m:
                    edges[m].add(target)
        name = lambda m: os.path.relpath(mods[m], os.path.join(ROOT, src))
        cycles = sccs(edges)
        if not quiet:
            print(f"== {src}")
            for m in sorted(edges, key=name):
                for t in sorted(edges[m], key=name):
                    print(f"   {name(m)} -> {name(t)}")
        for c in cycles:
            any_cycle = True
            print(f"!! {src}: cycle: {' , '.join(sorted(name(m) for m in c))}")
        if not cycles:
            print(f"ok {src}: no cycles ({len(mods)} files)")
    sys.exit(1 if any_cycle else 0)


def sccs(edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
