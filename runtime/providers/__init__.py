"""LLM provider adapters over the official SDKs, and the keyless simulated provider (DESIGN.md §9)."""
