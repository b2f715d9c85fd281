"""Write kubeconform JSON schemas for the custom resources we use: KEDA's (ScaledObject, TriggerAuthentication) and
the Prometheus Operator's (ServiceMonitor, PrometheusRule, in deploy/monitoring).

Run by install_validators.sh with the Python of a throw-away virtual environment that holds
`cloudcoil.models.keda` (pydantic models generated from KEDA's CRDs, from PyPI); the schemas are those models'
JSON schemas, made strict like kubeconform's openapi2jsonschema does (`additionalProperties: false` on every
object with declared properties), so a misspelt field fails. Usage: python gen_crd_schemas.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def main(out_dir: str) -> int:
    from cloudcoil.models.keda import v1alpha1
    from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for kind in ("ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication", "ScaledJob"):
        schema = strict(getattr(v1alpha1, kind).model_json_schema(by_alias=True))
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        # kubeconform's file name: {kind lower}-{first label of the group}-{version}.json
        (out / f"{kind.lower()}-keda-v1alpha1.json").write_text(json.dumps(schema, indent=1))
    for kind in ("ServiceMonitor", "PrometheusRule"):
        schema = strict(getattr(monitoring_v1, kind).model_json_schema(by_alias=True))
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        (out / f"{kind.lower()}-monitoring-v1.json").write_text(json.dumps(schema, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
