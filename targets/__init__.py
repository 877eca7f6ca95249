"""Model servers to test against (the system under test): imports neither loadgen nor coordinator."""
