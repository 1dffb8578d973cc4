"""Where the project keeps its local state: the SQLite file, the embedded Redis and generated keys.

``VAR_DIR`` moves all of it (the test command gives the suite a directory of its own). What the
portal creates there is for its own user only: directories 0700, files 0600.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var").resolve()


def owner_only_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by its owner only, if it is missing."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode goes through the umask
    return path


def owner_only_file(path: Path) -> Path:
    """Create an empty ``path`` readable by its owner only, if it is missing (a SQLite database
    file, before SQLite creates it with the umask's mode; its journal and WAL files take the
    database file's mode)."""
    owner_only_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    return path
