"""The closed-loop demo (`mlops demo`): drift → detection → retrain → gate → hot swap, on the real stack.

`run` orchestrates (stack, services, threads), `loop` is the traffic (stream, v1 bootstrap, predictions), `watch`
turns the outcome topics into the timeline, `timeline` prints it, `summary` holds the figures and closing table.
"""

from mlops_tools.demo.config import DemoConfig
from mlops_tools.demo.run import Demo
from mlops_tools.demo.summary import DemoResult, ModelLoop, TimelineEvent

__all__ = ["Demo", "DemoConfig", "DemoResult", "ModelLoop", "TimelineEvent"]
