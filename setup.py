"""Build hook: a wheel carries copies of ``schemas/`` and ``cases/clauses.toml``.

The repository keeps one source of truth for each (docs/design.md); an editable install reads them
in place, and a built wheel gets copies under ``conformance/_schemas`` and
``conformance/_data`` so an installed suite works from any directory.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        package = Path(self.build_lib) / "conformance"
        shutil.copytree(ROOT / "schemas", package / "_schemas", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("tools", "__pycache__"))
        (package / "_data").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "cases" / "clauses.toml", package / "_data" / "clauses.toml")


setup(cmdclass={"build_py": build_py_with_data})
