"""``python -m targets.simulator`` runs ``finishline simulate`` without the coordinator."""

from targets.simulator.cli import simulate

if __name__ == "__main__":
    simulate(prog_name="python -m targets.simulator")
