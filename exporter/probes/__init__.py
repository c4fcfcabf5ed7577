"""Probes: each sends one key to OpenAI the way an application would and says what happened."""
