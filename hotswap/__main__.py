"""``python -m hotswap``: the same as the ``hotswap`` command."""

from hotswap._cli import main

raise SystemExit(main())
