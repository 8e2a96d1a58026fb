"""Sphinx configuration of reffeat's API reference.

Build from the repository root (warnings are errors; about 10 s)::

    python -m sphinx -W -b html docs docs/_build/html

The checkout is put first on ``sys.path`` below, so the reference documents
the code beside this file even when another copy of reffeat is installed.

Plain autodoc, no theme or extension beyond Sphinx itself. The docstrings
of reffeat are plain text, not reStructuredText (STYLE.md: they carry the
equation in Unicode, e.g. ``|N|``, ``⟨w, x_p⟩``, indented lists), so
:func:`_verbatim` shows each one as a literal block, exactly as written,
instead of letting docutils misread ``|N|`` as a substitution or an indented
line as a block quote. Nothing is suppressed: ``-W`` stays on for everything
else (signatures, imports, cross-references, the .rst pages). The
module pages are not hand-listed: ``api.rst`` holds the marker
``.. reffeat-modules::``, which :func:`_module_pages` replaces while Sphinx
reads the page by one ``automodule`` per module found under ``reffeat/``
(found on disk, without importing ``__main__`` modules), grouped by the
floors of docs/architecture.md. A module added or moved by a later change is
therefore documented without editing this file; one that does not fit a known
floor lands under "Other modules".
"""
import os
import pkgutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import reffeat  # noqa: E402

project = "reffeat"
author = "reffeat contributors"
copyright = "reffeat contributors"
version = release = getattr(reffeat, "__version__", "")

extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
# Members are asked for per module by _module_pages (":members:"), so the
# "Public API" section can show the package docstring alone.
autodoc_default_options = {"show-inheritance": True}
# Signatures show annotations as written; the reference is about the maths.
autodoc_typehints = "signature"

# The floors of the house (docs/architecture.md), ground first. A module is
# placed on the first floor that lists its name (after "reffeat.") or its package;
# within a floor, modules follow the list (SPEC order for the core).
FLOORS = [
    ("Ground", ["_version", "constraints", "seeding", "output", "provenance"]),
    ("Maths core", ["config", "activation", "features", "distribution", "model", "backend",
                    "kernels", "attacks", "apgd", "loop", "train", "metrics", "trace", "claims",
                    "regime", "certify", "directions", "presets"]),
    ("Real images, figures, reports", ["real", "plots", "report"]),
    ("Experiments", ["experiments"]),
    ("Jobs", ["jobs"]),
    ("Top: commands, sweep table, verify", ["cli", "sweep", "verify", "run", "data", "bench"]),
]


def _modules():
    """Every importable module under reffeat/ except ``__main__``, found on disk."""
    names = []
    def fail(name):  # a package that does not import must fail the build, not vanish from it
        raise ImportError(f"cannot import {name}")

    for info in pkgutil.walk_packages(reffeat.__path__, "reffeat.", onerror=fail):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        names.append(info.name)
    return sorted(names)


def _place(name):
    """(floor, position in the floor's list, name): the sort key of a module."""
    rel = name[len("reffeat."):]
    for i, (_, prefixes) in enumerate(FLOORS):
        for j, p in enumerate(prefixes):
            if rel == p or rel.startswith(p + "."):
                return i, j, name
    return len(FLOORS), 0, name


def _module_pages():
    groups = {}
    for name in sorted(_modules(), key=_place):
        groups.setdefault(_place(name)[0], []).append(name)
    titles = [t for t, _ in FLOORS] + ["Other modules"]
    out = []
    for i in sorted(groups):
        out += [titles[i], "-" * len(titles[i]), ""]
        for name in groups[i]:
            out += [f".. automodule:: {name}", "   :members:", ""]
    return "\n".join(out)


def _verbatim(app, what, name, obj, options, lines):
    """Show a docstring as written: one literal block (see the module docstring)."""
    if any(line.strip() for line in lines):
        body = [("   " + line) if line.strip() else "" for line in lines]
        lines[:] = ["::", ""] + body + [""]


def _source_read(app, docname, source):
    if docname == "api":
        source[0] = source[0].replace(".. reffeat-modules::", _module_pages())


def setup(app):
    app.connect("source-read", _source_read)
    app.connect("autodoc-process-docstring", _verbatim)
