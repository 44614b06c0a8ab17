"""Integrations: framework adapters, ASGI/WSGI middleware, the IPython extension, exporters.

Importing this package imports no framework: the adapters are registered by name and imported
by :mod:`hotswap._engine.adapters` only once their framework is in ``sys.modules``. The middleware
modules (:mod:`hotswap.integrations.asgi`, :mod:`hotswap.integrations.wsgi`) are imported by
the program that uses them.
"""

from hotswap._seam import register_adapter

__all__ = ()

# Starlette covers FastAPI, which is built on it (and imports it).
register_adapter("flask", "hotswap.integrations.flask:FlaskAdapter")
register_adapter("starlette", "hotswap.integrations.starlette:StarletteAdapter")
register_adapter("django", "hotswap.integrations.django:DjangoAdapter")
register_adapter("jinja2", "hotswap.integrations.jinja:JinjaAdapter")
