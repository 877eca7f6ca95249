"""The core feature: URL and simulator targets, the Locust phases, and the commands every build has."""

from __future__ import annotations

from coordinator.registry import Feature, PhaseKind, Ref, TargetKind
from coordinator.scenario.phases import (
    LadderPhase,
    RampPhase,
    ReplayPhase,
    SoakPhase,
    SteadyPhase,
    SweepPhase,
    WarmupPhase,
)
from coordinator.scenario.targets import SimulatorTarget, UrlTarget

FEATURE = Feature(
    name="core",
    targets=(
        TargetKind("url", UrlTarget, Ref("coordinator.run.targets:ExistingEndpoint")),
        TargetKind("simulator", SimulatorTarget, Ref("coordinator.run.targets:SimulatorProcess")),
    ),
    phases=(  # no runner: the plan expands these into Locust steps
        PhaseKind("steady", SteadyPhase),
        PhaseKind("warmup", WarmupPhase),
        PhaseKind("soak", SoakPhase),
        PhaseKind("ramp", RampPhase),
        PhaseKind("ladder", LadderPhase),
        PhaseKind("replay", ReplayPhase),  # a trace on its own clock: one open-loop step
        # run in the coordinator: each level a Locust step, chosen from the levels before
        PhaseKind("sweep", SweepPhase, runner=Ref("coordinator.run.sweep:run_sweep"), drives_locust=True),
    ),
    report_sections=(Ref("coordinator.results.sweep:render_section"),),
    commands={
        "run": Ref("coordinator.run.commands:run"),
        "clean": Ref("coordinator.run.commands:clean"),
        "recover": Ref("coordinator.run.commands:recover"),
        "baseline": Ref("coordinator.baselines.commands:baseline"),
        "compare": Ref("coordinator.compare.commands:compare"),
        "validate": Ref("coordinator.scenario.commands:validate"),
        "schema": Ref("coordinator.schemas:schema"),
        "simulate": Ref("targets.simulator.cli:simulate"),
        "worker": Ref("coordinator.run.remote:worker"),
        "serve": Ref("coordinator.service.commands:serve"),
    },
)
