"""Plan: sources in, what must run out; pure, no live objects.

Takes a module's old and new source (and the import graph's files <-> modules mapping); hands
on symbol tables, the statement diff and which statements run again, the compatibility
findings, the audit's verdict and signature checks. Nothing here executes user code or
touches a live module.
"""
