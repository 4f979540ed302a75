"""Build step (setuptools ``build_py``): records the commit being installed.

``pip install .`` copies the package out of its checkout, where git can no longer say which
commit the code came from; this writes it into the installed package (``COMMIT``), so every
run records the code it ran. Not used at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools.command.build_py import build_py

# setuptools loads this file on its own, outside the package: load the sibling by path.
_spec = importlib.util.spec_from_file_location(
    "_streamlec_provenance", Path(__file__).with_name("provenance.py")
)
assert _spec is not None and _spec.loader is not None
provenance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(provenance)


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        commit = provenance.checkout_commit(Path.cwd())
        if commit and not self.editable_mode:
            target = Path(self.build_lib) / "streamlec_cli" / provenance.COMMIT_FILE
            target.write_text(commit + "\n")
