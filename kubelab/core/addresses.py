"""`host:port` as actors take it on their command lines. Pure; its own module so that a
process can check its arguments before importing gRPC."""

from __future__ import annotations


def split_address(text: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; ValueError otherwise."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'"{text}" is not host:port')
    return host.strip("[]"), int(port)
