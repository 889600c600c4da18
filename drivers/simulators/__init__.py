"""Device simulators: the device side of each protocol, on a pty pair, for demos and tests."""
