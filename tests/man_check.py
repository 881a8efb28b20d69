#!/usr/bin/env python3
"""The manual pages (docs/man/) against what they describe.

Usage: man_check.py SOURCE_DIR MISLAS_STAGE1 MISLAS_STAGE2 MISLAS_EVAL MISLAS_CALIBRATE
       man_check.py SOURCE_DIR BUILD_DIR      (the programs in BUILD_DIR/examples)

mislas-import-reference is SOURCE_DIR/tools/import_reference.py, run by this
Python (its --help needs no PyTorch).

Checked, each a way for a page to drift from the code:
  - every flag a program's --help lists (--name, and -x where it has one) is
    an entry of its page's OPTIONS section, and every entry there is one the
    program takes; a failure names the flags missing on either side;
  - every page's .TH line carries the project's version (meson.build);
  - mislas(3)'s HEADERS section names every public header in include/mislas/
    and no other (a header added, renamed or removed shows).

A page's OPTIONS entries are its .TP paragraphs between ".SH OPTIONS" and the
next .SH (.SS groups inside are fine): the line after each .TP is the entry's
tag, and the flags are read from it, not from the prose.
"""
import os
import re
import subprocess
import sys

PROGRAMS = ["mislas-stage1", "mislas-stage2", "mislas-eval", "mislas-calibrate"]
PAGES = ["mislas-stage1.1", "mislas-stage2.1", "mislas-calibrate.1", "mislas-eval.1",
         "mislas-import-reference.1", "mislas.3"]

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message)


# ------------------------------------------------------------------ roff source

def plain(line):
    """A roff line as text: \\- as -, font changes, \\& and quotes dropped."""
    line = line.replace("\\-", "-").replace("\\&", "")
    line = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", line)
    return line.replace('"', " ")


def section(lines, name):
    """The lines of ".SH name" up to the next .SH, or None without it."""
    start = None
    for i, line in enumerate(lines):
        if re.match(r'\.SH\s+"?%s"?\s*$' % re.escape(name), line):
            start = i + 1
        elif start is not None and line.startswith(".SH"):
            return lines[start:i]
    return lines[start:] if start is not None else None


def tags(lines):
    """The tag line of every .TP paragraph among lines, as text."""
    found = []
    for i, line in enumerate(lines):
        if re.match(r"\.TP\b", line):
            j = i + 1
            while j < len(lines) and lines[j].startswith('.\\"'):
                j += 1      # a comment between .TP and its tag
            if j < len(lines):
                found.append(plain(lines[j]))
    return found


def flags_in(text):
    """The flags a text names: "--name" and "-x" (not the "-" of a word)."""
    long_flags = {"--" + m for m in re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", text)}
    short_flags = {"-" + m for m in re.findall(r"(?<![\w-])-([A-Za-z])(?![\w-])", text)}
    return long_flags | short_flags


def page_flags(path):
    """The flags of the page's OPTIONS entries, or None without the section."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    options = section(lines, "OPTIONS")
    if options is None:
        return None
    flags = set()
    for tag in tags(options):
        flags |= flags_in(tag)
    return flags


# --------------------------------------------------------------------- --help

def help_flags(command, name):
    """The flags `command --help` lists, or None after saying why. The C
    programs list them under "Flags:", argparse under "options:" (Python
    3.10 and later) or "optional arguments:"; each entry starts two spaces
    in ("  --out FILE", "  -h, --help"), its wrapped help further in, and the
    list ends at the first blank line."""
    env = dict(os.environ, COLUMNS="100")
    for variable in ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMI_SIZE",
                     "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "PMIX_RANK"):
        env.pop(variable, None)     # not one rank of a job: rank 0's help on stdout
    result = subprocess.run(command + ["--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, timeout=60)
    if result.returncode != 0:
        fail("%s --help exits %d: %s" % (name, result.returncode, result.stderr.strip()))
        return None
    flags, inside = set(), False
    for line in result.stdout.splitlines():
        if line in ("Flags:", "options:", "optional arguments:"):
            inside = True
        elif inside and line.strip() == "":
            break
        elif inside:
            m = re.match(r"  (?:-([A-Za-z]), )?--([a-z0-9][a-z0-9-]*)", line)
            if m is None:
                m = re.match(r"  -([A-Za-z])(?![\w-])", line)
                if m is not None:
                    flags.add("-" + m.group(1))
                continue
            if m.group(1):
                flags.add("-" + m.group(1))
            flags.add("--" + m.group(2))
    if not flags:
        fail("%s --help: no list of flags found (has its layout changed?)" % name)
        return None
    return flags


def check_program(name, command, man_dir):
    listed = help_flags(command, name)
    page = os.path.join(man_dir, name + ".1")
    if not os.path.isfile(page):
        fail("%s: no page %s" % (name, page))
        return
    documented = page_flags(page)
    if documented is None:
        fail("%s: %s has no OPTIONS section" % (name, page))
        return
    if listed is None:
        return
    missing = sorted(listed - documented)
    extra = sorted(documented - listed)
    if missing:
        fail("%s: in --help but not in %s's OPTIONS: %s" % (name, os.path.basename(page), " ".join(missing)))
    if extra:
        fail("%s: in %s's OPTIONS but not in --help: %s" % (name, os.path.basename(page), " ".join(extra)))
    if not missing and not extra:
        print("ok: %s: the page's OPTIONS are the %d flags of --help" % (name, len(listed)))


# --------------------------------------------------------- versions, headers

def project_version(source_dir):
    with open(os.path.join(source_dir, "meson.build"), encoding="utf-8") as f:
        m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", f.read(), re.S)
    return m.group(1) if m else None


def check_versions(source_dir, man_dir):
    version = project_version(source_dir)
    if version is None:
        fail("no version in %s/meson.build's project()" % source_dir)
        return
    before = len(failures)
    for name in PAGES:
        path = os.path.join(man_dir, name)
        if not os.path.isfile(path):
            fail("no page %s" % path)
            continue
        with open(path, encoding="utf-8") as f:
            th = [line for line in f.read().splitlines() if line.startswith(".TH ")]
        if len(th) != 1:
            fail("%s: %d .TH lines" % (name, len(th)))
        elif ("libmislas " + version) not in plain(th[0]):
            fail("%s: .TH says %r, not libmislas %s" % (name, th[0], version))
    if len(failures) == before:
        print("ok: every page's .TH line says libmislas %s" % version)


def check_headers(source_dir, man_dir):
    """mislas(3)'s HEADERS: <mislas/X.h> or a bare X.h is a library header;
    <X.h> alone (<mpi.h>) is another library's."""
    include = os.path.join(source_dir, "include", "mislas")
    public = {f for f in os.listdir(include) if f.endswith(".h")}
    public |= {f[:-3] for f in os.listdir(include) if f.endswith(".h.in")}     # version.h
    with open(os.path.join(man_dir, "mislas.3"), encoding="utf-8") as f:
        headers = section(f.read().splitlines(), "HEADERS")
    if headers is None:
        fail("mislas.3 has no HEADERS section")
        return
    text = plain(" ".join(line for line in headers if not line.startswith('.\\"')))
    named = set(re.findall(r"<mislas/([a-z0-9_]+\.h)>", text))
    named |= set(re.findall(r"(?<![\w<./])([a-z0-9_]+\.h)\b(?!>)", text))
    missing, unknown = sorted(public - named), sorted(named - public)
    if missing:
        fail("mislas.3's HEADERS does not name %s (in %s)" % (" ".join(missing), include))
    if unknown:
        fail("mislas.3's HEADERS names %s, not in %s" % (" ".join(unknown), include))
    if not missing and not unknown:
        print("ok: mislas.3 names the %d public headers" % len(public))


def main():
    args = sys.argv[1:]
    if len(args) == 2 and os.path.isdir(args[1]):
        programs = [os.path.join(args[1], "examples", p) for p in PROGRAMS]
    elif len(args) == 1 + len(PROGRAMS):
        programs = args[1:]
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    source_dir = os.path.abspath(args[0])
    man_dir = os.path.join(source_dir, "docs", "man")
    for name, path in zip(PROGRAMS, programs):
        check_program(name, [os.path.abspath(path)], man_dir)
    importer = os.path.join(source_dir, "tools", "import_reference.py")
    check_program("mislas-import-reference", [sys.executable, importer], man_dir)
    check_versions(source_dir, man_dir)
    check_headers(source_dir, man_dir)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all manual-page checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
