"""Optional integrations: framework adapters, middleware, exporters. Each module imports its
library only when it is used, so ``import hotswap`` imports none of them."""

__all__ = ()
