"""Watch: file events in, complete and settled change sets out.

Takes the watchdog observer's events for the watched paths; settles and coalesces them (an
editor's atomic save is one change, a half-written file is never read, a burst of saves is
one set); hands each change set (module name -> the file's exact bytes) to the function the
API gave it, which runs the transaction. Also watches configuration files for
:func:`hotswap.live_config` and polls for synchronous callers (``pending``). The only
importer of watchdog.
"""
