"""Signed completion callbacks, delivered durably (docs/guide.md#callbacks).

A job with a `callback_url` owes one POST per final state it reaches. The store writes that
delivery in the transaction that finishes the job; every worker's deliverer sends due
deliveries, signed per Standard Webhooks (`signing`), only to addresses the SSRF guard allows
(`guard`), one POST at a time (`sender`), retried with backoff until delivered or out of
attempts (`deliverer`).
"""

from .signing import new_secret

__all__ = ["new_secret"]
