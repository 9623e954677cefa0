"""What the production topology run is made of: its sizes, its stores, and where it lives.

Shared by `topology.py` (which starts it) and `checks.py` (which checks it). Importing
it puts the repository's root on the path, for the harness (run as a script, only
deploy/ is on it).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "topology"
REDIS_URL = "redis://127.0.0.1:6379/13"
WEB_PROCESSES = 2
WORKERS = 2
LONG_POLL_SECONDS = 30  # TOPICS_LONG_POLL_SECONDS's default, kept: the proxy must outlast it
