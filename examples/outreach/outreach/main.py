"""The app for the command line, configured from the environment:

    OUTREACH_DATABASE_URL=sqlite:///outreach.db OUTREACH_SERVICES_URL=http://127.0.0.1:8700 \
        underway worker outreach.main:app
"""

from __future__ import annotations

from .app import create_app

outreach = create_app()
app = outreach.app
