"""The finishline service and CLI: scenarios, runs, results, live metrics, targets."""
