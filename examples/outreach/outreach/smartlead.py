"""Smartlead's API (and RevReply's classifier) as the sync reads them."""

from __future__ import annotations

from typing import Any

import httpx


class Smartlead:
    """A client over one `httpx.Client` (the sync's scope opens one per run)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    def email_accounts(self) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = self._get("/smartlead/email-accounts")
        return accounts

    def campaigns(self) -> list[dict[str, Any]]:
        campaigns: list[dict[str, Any]] = self._get("/smartlead/campaigns")
        return campaigns

    def analytics(self, campaign_id: str) -> dict[str, Any]:
        counts: dict[str, Any] = self._get(f"/smartlead/campaigns/{campaign_id}/analytics")
        return counts

    def sequences(self, campaign_id: str) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self._get(f"/smartlead/campaigns/{campaign_id}/sequences")
        return steps

    def leads(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """One page of leads with their conversation, and the offset of the next page."""
        page = self._get("/smartlead/leads", offset=offset, limit=limit)
        return page["data"], page["next_offset"]

    def classify(self, text: str) -> str:
        answer = self.http.post("/revreply/classify", json={"text": text})
        answer.raise_for_status()
        return str(answer.json()["category"])
