"""What ships with the package: SPEC.md (cited by every docstring) beside the
code, py.typed, the licence and citation files; and a fully annotated public API."""

from __future__ import annotations

import inspect
from pathlib import Path

import reffeat

PKG = Path(reffeat.__file__).resolve().parent
REPO = Path(__file__).resolve().parent.parent


def test_spec_is_installed_with_the_package_and_equals_the_repository_copy():
    installed = PKG / "SPEC.md"
    assert installed.is_file(), f"{installed} missing: setup.cfg package_data must ship SPEC.md"
    repo = REPO / "SPEC.md"
    if repo.is_file():                         # a checkout (or tests run beside an installed copy)
        assert installed.read_bytes() == repo.read_bytes(), f"{installed} differs from {repo}"


def test_py_typed_and_the_project_files_exist():
    assert (PKG / "py.typed").is_file()
    for name in ("LICENSE", "CITATION.cff", "CHANGELOG.md"):
        if (REPO / "setup.cfg").is_file():     # only in a checkout
            assert (REPO / name).is_file(), f"{name} missing"
    if (REPO / "CHANGELOG.md").is_file():
        assert "## [Unreleased]" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


def test_public_api_is_fully_annotated():
    missing = []
    for name in reffeat.__all__:
        obj = getattr(reffeat, name)
        if not inspect.isfunction(obj):
            continue
        sig = inspect.signature(obj)
        missing += [f"{name}({p})" for p, v in sig.parameters.items() if v.annotation is inspect.Parameter.empty]
        if sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{name} -> ?")
    assert not missing, f"unannotated in the public API: {missing}"
