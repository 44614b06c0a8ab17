"""Config: settings in force, and the formats and schemas of configuration files.

Takes ``configure()``, ``[tool.hotswap]`` and ``HOTSWAP_*``; hands on one validated
``Settings`` value (each bad value named with where it came from) and parsed, schema-checked
configuration documents for live config files.
"""
