"""openai-key-exporter: Prometheus exporter that probes OpenAI API keys."""

__version__ = "0.1.0"
