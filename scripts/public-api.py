#!/usr/bin/env python3
"""Extracts the public API of a crate from rustdoc's HTML (stable rustdoc, no JSON needed).

Usage: public-api.py <doc dir> <crate_name>  -> the listing on stdout.

For every item rustdoc lists in `all.html`: its kind and path, its declaration (fields,
variants, trait items, a function's signature), the headers of its inherent impls with the
signature of every item in them, and the headers of its trait impls and auto-trait impls
(Send, Sync, ...). For every module: its non-inlined re-exports. Blanket impls (from std)
are left out. Whitespace is collapsed, so the listing only changes when the API does (or
when rustdoc's rendering does: bless again after a toolchain update).
"""
import html
import os
import re
import sys

KINDS = {
    "struct": "struct", "enum": "enum", "trait": "trait", "fn": "fn", "constant": "const",
    "type": "type", "macro": "macro", "static": "static", "union": "union", "derive": "derive",
    "attr": "attr", "traitalias": "traitalias", "primitive": "primitive", "keyword": "keyword",
}


def text(fragment):
    fragment = re.sub(r'<summary class="hideme">.*?</summary>', "", fragment, flags=re.S)
    fragment = re.sub(r'<a class="src[^"]*"[^>]*>.*?</a>', "", fragment, flags=re.S)
    fragment = re.sub(r'<span class="since[^"]*"[^>]*>.*?</span>', "", fragment, flags=re.S)
    fragment = re.sub(r"<(div|br)\b", r" <\1", fragment)
    fragment = re.sub(r"<[^>]+>", "", fragment)
    flat = re.sub(r"\s+", " ", html.unescape(fragment)).strip()
    # rustdoc's one-parameter-per-line layout, flattened: `f( a: A, b: B, )` -> `f(a: A, b: B)`
    return flat.replace("( ", "(").replace(", )", ")")


def region(page, list_id):
    """The HTML of the `<div id="list_id">`, up to the next section heading."""
    start = page.find(f'id="{list_id}"')
    if start < 0:
        return ""
    end = len(page)
    for marker in ('<h2 id="', '<footer', "</main>"):
        i = page.find(marker, start)
        if 0 <= i < end:
            end = i
    return page[start:end]


def headers(fragment, tags):
    pat = r'<(%s) class="code-header">(.*?)</\1>' % "|".join(tags)
    return [(m.group(1), text(m.group(2))) for m in re.finditer(pat, fragment, flags=re.S)]


def item_lines(path):
    page = open(path, encoding="utf-8").read()
    out = []
    m = re.search(r'<pre class="rust item-decl">(.*?)</pre>', page, flags=re.S)
    if m:
        out.append("  decl: " + text(m.group(1)))
    for tag, h in headers(region(page, "implementations-list"), ("h3", "h4")):
        out.append(("  " if tag == "h3" else "    ") + h)
    for list_id in ("trait-implementations-list", "synthetic-implementations-list", "implementors-list"):
        for _, h in headers(region(page, list_id), ("h3",)):
            out.append("  " + h)
    return out


def main():
    doc, crate = sys.argv[1], sys.argv[2]
    root = os.path.join(doc, crate)
    allhtml = open(os.path.join(root, "all.html"), encoding="utf-8").read()
    items = []
    for href in sorted(set(re.findall(r'<li><a href="([^"]+\.html)">', allhtml))):
        parts = href.split("/")
        kind, name = parts[-1][: -len(".html")].split(".", 1)
        items.append((kind, "::".join([crate] + parts[:-1] + [name]), os.path.join(root, href)))
    lines = [f"# public API of {crate} (bash scripts/public-api --bless regenerates it)"]
    mods = []
    for dirpath, _, files in os.walk(root):
        if "index.html" in files:
            rel = os.path.relpath(dirpath, root)
            mods.append(("::".join([crate] + ([] if rel == "." else rel.split(os.sep))), os.path.join(dirpath, "index.html")))
    for path, index in sorted(mods):
        lines.append(f"mod {path}")
        page = open(index, encoding="utf-8").read()
        m = re.search(r'<dl class="item-table reexports">(.*?)</dl>', page, flags=re.S)
        if m:
            for code in re.findall(r"<code>(.*?)</code>", m.group(1), flags=re.S):
                lines.append("  " + text(code))
    for kind, path, file in sorted(items, key=lambda t: (t[1], t[0])):
        lines.append(f"{KINDS.get(kind, kind)} {path}")
        lines.extend(item_lines(file))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
