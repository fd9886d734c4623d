"""Seed 003's maintenance scheduler (a chat bot's background tasks) rebuilt on underway."""
