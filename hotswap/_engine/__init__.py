"""Engine: a plan in, live modules changed as one transaction out.

Takes the plans of a change set; snapshots each module, runs the changed statements and their
dependents (importers included), updates functions and classes in place, lets framework
adapters sync what they own, migrates, and commits, or rolls every module back. Hands on one
result per module and keeps the version history (rollback). Owns the reload lock and the
commit gate that ``pinned()`` sections hold. Stages above it take part through ``hooks``.
"""
