"""Example 002: a voice-call backend's background work on underway (see README.md).

The service functions are the seed's API: importable async functions, callable directly or
together with `asyncio.gather`:

    from voice_calls.coin_deduction import deduct_per_minute_coins
    await deduct_per_minute_coins()
"""

from .config import configure, current

__all__ = ["configure", "current"]
