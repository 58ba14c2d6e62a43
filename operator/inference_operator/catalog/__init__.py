"""The flavor catalog: built-in flavors, LLM presets, and which flavor a model runs with."""
