"""What many tests share: processes on loopback, the simulator, TLS, metrics parsing, leak checks,
and a virtual clock for the scheduler."""
