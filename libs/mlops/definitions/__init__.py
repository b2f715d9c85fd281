"""Declarative definitions: entities, sources, feature views and models as validated data (`mlops apply`)."""

from mlops.definitions.changes import Change, check_compatible, diff, merge, view_versions
from mlops.definitions.document import Definitions
from mlops.definitions.load import DefinitionsError, from_json, load, parse, to_json
from mlops.definitions.model import (
    Aggregation,
    Entity,
    Feature,
    FeatureView,
    FieldType,
    Model,
    RolloutMode,
    RolloutPolicy,
    Source,
    SourceField,
    Task,
    Window,
    WindowKind,
)
from mlops.definitions.revision import Plan, Revision, latest, plan, revision_key

__all__ = [
    "Aggregation",
    "Change",
    "Definitions",
    "DefinitionsError",
    "Entity",
    "Feature",
    "FeatureView",
    "FieldType",
    "Model",
    "Plan",
    "Revision",
    "RolloutMode",
    "RolloutPolicy",
    "Source",
    "SourceField",
    "Task",
    "Window",
    "WindowKind",
    "check_compatible",
    "diff",
    "from_json",
    "json_schema",
    "latest",
    "load",
    "merge",
    "parse",
    "plan",
    "revision_key",
    "to_json",
    "view_versions",
]


def json_schema() -> dict[str, object]:
    """The JSON Schema of a definitions file, for editors (`mlops definitions schema`)."""
    schema = Definitions.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlops definitions"
    return schema
