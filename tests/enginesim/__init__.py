"""A simulated LLM engine (test and benchmark fixture, never shipped): docs in model.py and server.py."""
