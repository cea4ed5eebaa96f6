"""``python -m pytest_llmcache``: the ``llm-cache`` command."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
