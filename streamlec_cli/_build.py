"""Build step (setuptools ``build_py``): records the commit being installed.

``pip install .`` copies the package out of its checkout, where git can no longer say which
commit the code came from; this writes it into the installed package (``COMMIT``), so every
run records the code it ran. Not used at run time.
"""

from __future__ import annotations

from pathlib import Path

from setuptools.command.build_py import build_py

from .provenance import COMMIT_FILE, checkout_commit


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        commit = checkout_commit(Path.cwd())
        if commit and not self.editable_mode:
            (Path(self.build_lib) / "streamlec_cli" / COMMIT_FILE).write_text(commit + "\n")
