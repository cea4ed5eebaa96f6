"""pytest-llmcache examples with the openai SDK (a package: its module names stay unique)."""
