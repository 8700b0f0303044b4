"""Tests of answer decoding (native + pure-Python twin), streaming and the token-level constraint."""
