"""Release: who runs which version.

Takes committed versions and candidates; hands calls to the right one: ``@reloadable`` proxies
(the only importer of wrapt), canary routing of units of work, the gray release and its
decisions, health windows and automatic rollback. Tells the API of its decisions through
``_ops.events.announce``, never by importing it.
"""
