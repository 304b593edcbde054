"""Stub HTTP servers that stand in for external services at the wire (on 127.0.0.1)."""
