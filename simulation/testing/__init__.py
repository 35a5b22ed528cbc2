"""Test and benchmark helpers: an instant OpenAI-compatible stub server."""
