"""The console's transport-free core: the values its pages show, the SVG charts drawn from them, the trace
waterfall, and who may act."""

from services.console.core.access import authorize, console_actor
from services.console.core.charts import (
    PALETTE,
    WaterfallRow,
    bar_chart,
    fmt_duration,
    fmt_number,
    line_chart,
    waterfall,
)
from services.console.core.domain import (
    AuditEntry,
    DeadLetter,
    Lineage,
    ModelDetail,
    ModelRow,
    OffsetRange,
    Prediction,
    RetrainRequest,
    Series,
    Span,
    Trace,
    TraceSummary,
    Version,
)
from services.console.core.summary import summarize

__all__ = ["PALETTE", "AuditEntry", "DeadLetter", "Lineage", "ModelDetail", "ModelRow", "OffsetRange",
           "Prediction", "RetrainRequest", "Series", "Span", "Trace", "TraceSummary", "Version", "WaterfallRow",
           "authorize", "bar_chart", "console_actor", "fmt_duration", "fmt_number", "line_chart", "summarize",
           "waterfall"]
