"""Ops: what the other stages report, for people and tools.

Takes results and events from every stage; hands them to listeners, logs, metrics, trace
spans and the command's status lines. Imports no other stage (exceptions excepted).
"""
