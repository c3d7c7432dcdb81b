"""The math core: each file reads beside the project's docs/equations.md. nn/base.py says what
every kind of network is to its callers; nn/kinds.py lists the kinds."""
