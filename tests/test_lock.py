"""The suite runs on exactly the lock, and the lock satisfies pyproject.toml: what CI tested
is what ``make`` installs on a fresh machine."""

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from portal.paths import BASE_DIR

LOCK = BASE_DIR / "requirements.lock"


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", LOCK.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def test_it_runs_on_exactly_the_locked_packages():
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in metadata.distributions()}
    installed.pop("pip", None)  # the installer, from the Python that made .venv
    installed.pop("voucher-portal", None)  # this tree's metadata, left by an editable install
    assert installed == locked(), "the environment is not the lock: make the venv again"


def test_it_locks_a_version_of_every_dependency_within_its_range():
    project = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in [*project["dependencies"],
                                       *project["optional-dependencies"]["dev"]]]
    pins = locked()
    outside = {str(r): pins.get(name) for r in wanted
               if (name := canonicalize_name(r.name)) not in pins or pins[name] not in r.specifier}
    assert outside == {}, "pyproject.toml and the lock disagree: run make lock"
