"""The math core: each file reads beside ../shared/docs/equations.md (the project's docs/equations.md)."""
