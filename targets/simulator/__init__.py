"""An OpenAI-compatible LLM server simulator with a continuous-batching performance model.

The ground truth every finishline measurement is checked against (see docs/simulator.md).
"""
