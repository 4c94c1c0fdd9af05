"""Channels: the ways mail and messages reach Banxway."""
