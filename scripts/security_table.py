"""Write the route × caller table of docs/security.md from the app's routes; `--check` only says
whether the file is current (exit 1 if not). Run from the repository root:
`.venv/bin/python scripts/security_table.py`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.api.route_scopes import with_security_table
from service.app import create_app

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current")
    args = parser.parse_args()
    text = DOC.read_text()
    current = with_security_table(text, create_app())
    if args.check:
        if current != text:
            print("docs/security.md is out of date: run python scripts/security_table.py")
        return int(current != text)
    DOC.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
