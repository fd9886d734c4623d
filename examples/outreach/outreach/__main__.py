"""`python -m outreach add-account EMAIL PASSWORD`: keep a Google Workspace account's
credentials in the tool's table (OUTREACH_DATABASE_URL), so OAuth tasks can sign in to it."""

from __future__ import annotations

import sys

from .config import Config
from .database import Database
from .oauth import add_workspace_account

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "add-account":
        sys.exit("usage: python -m outreach add-account EMAIL PASSWORD")
    database = Database(Config.from_env().database_url)
    database.create_tables()
    with database.connect() as conn:
        add_workspace_account(conn, sys.argv[2], sys.argv[3])
    print(f"added {sys.argv[2]}")
