"""CLI: the ``hotswap`` command.

Takes the command line; hands the program to run to the API (``hotswap run`` enables the
watcher, then runs it in this process), supervises restarts for what cannot be reloaded (the
warm fork template, restart triggers) and shows status lines.
"""
