"""Integrations with frameworks and tools; each is imported only when it is used."""

__all__ = ()
