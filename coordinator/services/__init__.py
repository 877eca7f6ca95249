"""Real services a run owns: redis-server, prometheus, the bridge — started and torn down by the run."""
