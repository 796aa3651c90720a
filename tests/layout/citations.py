#!/usr/bin/env python3
"""tests/layout/citations.py: the project cites RFCs and its own docs, nothing else.

Fails (exit 1, one line per problem) when a tracked file
- cites a numbered section of a "spec" (that word, maybe "section", then a number): the
  original cmail's behaviour is described in docs/compatibility.md, cite its anchors;
- names the team's private reference document, or a path into the shared folder outside the
  repository;
- cites "docs/compatibility.md#ANCHOR" (or "compatibility.md#ANCHOR" from docs/, or "(#ANCHOR)"
  inside that file) where ANCHOR is not the GitHub anchor of one of its headings;
and when docs/compatibility.md has two headings with the same anchor.

The patterns are written so that this file does not match them itself.

Usage: citations.py SOURCE_ROOT.
"""
import os, re, subprocess, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
COMPAT = "docs/compatibility.md"

FORBIDDEN = [
    (re.compile(r"\bspecs?\s+(?:(?:sections?|chapters?)\s+)?§?\s*\d[\d.]*(?:(?:\s*[-,]\s*|\s+(?:to|and)\s+)\d[\d.]*)*", re.I),
     "cites a spec section; cite docs/compatibility.md#ANCHOR or an RFC"),
    (re.compile(r"cmail-referenc[e]", re.I), "names the team's private reference"),
    (re.compile(r"team's\s+(?:spec|reference)", re.I), "names the team's private reference"),
    (re.compile(r"\.\./shared\b|/work/share[d]\b|\bshared/spec\b"), "points outside the repository"),
]
ANCHOR_CITE = re.compile(r"compatibility\.md#([A-Za-z0-9_-]+)")
LOCAL_CITE = re.compile(r"\]\(#([A-Za-z0-9_-]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def tracked_files():
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True)
        return [p for p in out.stdout.decode("utf-8", "replace").split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for dirpath, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.exists(os.path.join(dirpath, d, "meson-private"))]
            files += [os.path.relpath(os.path.join(dirpath, n), ROOT).replace(os.sep, "/") for n in names]
        return files


def read_text(rel):
    try:
        data = open(os.path.join(ROOT, rel), "rb").read()
    except OSError:
        return None  # deleted but still tracked
    if b"\0" in data[:8192]:
        return None  # binary (fuzz corpora)
    return data.decode("utf-8", "replace")


def github_anchor(heading):
    """The anchor GitHub gives a heading: link and code markup dropped, lower case, every
    character but letters, digits, '_', '-' and spaces removed, spaces made '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text, problems):
    seen = {}
    in_code = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = None if in_code else HEADING.match(line)
        if not m:
            continue
        a = github_anchor(m.group(2))
        if a in seen:
            problems.append(f"{COMPAT}:{n}: heading anchor #{a} repeats line {seen[a]}; citations would be ambiguous")
        seen.setdefault(a, n)
    return set(seen)


def main():
    problems = []
    files = tracked_files()
    compat_text = read_text(COMPAT) or ""
    anchors = anchors_of(compat_text, problems)
    for rel in files:
        text = read_text(rel)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            found = []
            for rx, why in FORBIDDEN:
                for m in rx.finditer(line):
                    found.append(f"'{m.group(0)}' {why}")
            cites = [m.group(1) for m in ANCHOR_CITE.finditer(line)]
            if rel == COMPAT:
                cites += [m.group(1) for m in LOCAL_CITE.finditer(line)]
            for a in cites:
                if a not in anchors and a != "ANCHOR":  # the placeholder of explanations
                    found.append(f"cites {COMPAT}#{a}, which has no such heading")
            problems += [f"{rel}:{n}: {f}" for f in found]
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s). docs/compatibility.md says how to cite it.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
