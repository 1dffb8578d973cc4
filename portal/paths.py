"""Where the project keeps its local state: the SQLite file, the embedded Redis and generated keys.

``VAR_DIR`` moves all of it (the test command gives the suite a directory of its own).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var").resolve()
