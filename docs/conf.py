"""Sphinx configuration: the docs/*.md pages (MyST) and an API reference from the docstrings.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (CI does, warnings as errors).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lunatic_mp  # noqa: E402 - after the path is set

project = "lunatic_mp"
author = "the lunatic_mp authors"
copyright = "2026, the lunatic_mp authors"
version = release = lunatic_mp.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"


myst_heading_anchors = 3
# The pages link to the source tree (lunatic_mp/..., tests/...) as GitHub renders them; those
# are files, not pages, so MyST cannot resolve them.
# ref.python: an annotation autodoc cannot evaluate (a name imported only for type checking) stays
# a bare name, and "Process" names two classes (the handle protocol and the engine's process):
# Sphinx links the first and warns that there were two.
suppress_warnings = ["myst.xref_missing", "ref.python"]

html_theme = "alabaster"
html_title = f"lunatic_mp {version}"
