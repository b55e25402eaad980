"""Channels: how each way of reaching a person sends, receives and words things."""
