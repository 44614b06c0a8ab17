"""``python -m hotswap``: the same as the ``hotswap`` command."""

from hotswap._cli.main import main

raise SystemExit(main())
