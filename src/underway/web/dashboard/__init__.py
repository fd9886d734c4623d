"""The dashboard: server-rendered pages at / of the API's own ASGI app, kept live by the
browser following the API's event stream (docs/decisions/0015-dashboard.md).

`install(api)` adds it to an API made by `create_api`; `PAGES` lists its pages' paths (a
job's page is `JOB_PAGE` with an id), for benchmarks and tests that visit every page.
"""

from __future__ import annotations

from .mount import JOB_PAGE, PAGES, install

__all__ = ["JOB_PAGE", "PAGES", "install"]
