#!/usr/bin/env bash
# Install the offline schemas deploy/ is validated against (idempotent; cached under ~/.cache/mlops/deploy-validators,
# or $MLOPS_CACHE_DIR/deploy-validators). Called by tests/deploy's session fixture; safe to run by hand. The two
# binaries, kustomize and kubeconform, come from `go install` through mlops_tools.testtools (the fixture gets them).
#
#   Kubernetes JSON schemas: the `kubernetes-validate` wheel from PyPI ships the JSON schemas of every Kubernetes
#     minor version (generated from the upstream OpenAPI documents); its "local-strict" set refers to one shared
#     `_definitions.json` by an absolute URL, which this script rewrites into a relative reference so kubeconform
#     resolves it from disk (no network at validation time).
#   KEDA CRD schemas: `cloudcoil.models.keda` from PyPI (pydantic models generated from KEDA's CRDs), turned into
#     strict JSON schemas by gen_crd_schemas.py beside this file.
#
# The last lines of stdout are KEY=VALUE pairs the test fixture reads: K8S_SCHEMA_DIR, CRD_SCHEMA_DIR, K8S_VERSION (an empty value: that piece could not be installed; the reason is on stderr).
set -uo pipefail

K8S_SCHEMA_PACKAGE=kubernetes-validate==1.37.0
K8S_VERSION=1.33.0
KEDA_MODELS_PACKAGE=cloudcoil.models.keda==2.16.1.0
PROMETHEUS_OPERATOR_MODELS_PACKAGE=cloudcoil.models.prometheus_operator==0.80.1.0  # ServiceMonitor, PrometheusRule

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${MLOPS_CACHE_DIR:-$HOME/.cache/mlops}/deploy-validators"
python="${MLOPS_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="$(command -v python3.11 || command -v python3)"; fi
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
command -v flock >/dev/null && flock -w 900 9

log() { echo "install_validators: $*" >&2; }

# ---- Kubernetes JSON schemas (from the kubernetes-validate wheel) -------------------------------------------
pkg_tag="${K8S_SCHEMA_PACKAGE//==/-}"
k8s_dir="$cache/k8s-schemas-$pkg_tag"
if [[ ! -f "$k8s_dir/.complete-v$K8S_VERSION" ]]; then
  log "fetching $K8S_SCHEMA_PACKAGE from PyPI for the Kubernetes $K8S_VERSION schemas (first run only)"
  tmp="$(mktemp -d)"
  if "$python" -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check "$K8S_SCHEMA_PACKAGE" \
      -d "$tmp" >&2; then
    "$python" - "$tmp" "$k8s_dir" "$K8S_VERSION" <<'PY' >&2 || log "schema extraction failed"
import glob, json, pathlib, sys, zipfile
tmp, out, version = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
for strictness in ("", "-strict"):
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local{strictness}/"
    target = out / f"v{version}-standalone{strictness}"  # kubeconform's {{ .NormalizedKubernetesVersion }}-standalone...
    target.mkdir(parents=True, exist_ok=True)
    names = [n for n in wheel.namelist() if n.startswith(prefix) and n.endswith(".json")]
    if not names:
        sys.exit(f"no schemas for Kubernetes {version} in the wheel")
    for name in names:
        text = wheel.read(name).decode()
        base = name.rsplit("/", 1)[1]
        # "/api/_definitions.json#..." is resolved against the schema's https://kubernetes.io/... $id upstream;
        # point it at the file beside it (or at itself, inside _definitions.json) and drop the $id.
        ref = '"#' if base == "_definitions.json" else '"_definitions.json#'
        schema = json.loads(text.replace('"/api/_definitions.json#', ref))
        schema.pop("$id", None)
        (target / base).write_text(json.dumps(schema))
(out / f".complete-v{version}").touch()
print(f"wrote Kubernetes {version} schemas to {out}")
PY
  fi
  rm -rf "$tmp"
fi
[[ -f "$k8s_dir/.complete-v$K8S_VERSION" ]] || { log "Kubernetes schemas unavailable"; k8s_dir=""; }

# ---- KEDA and prometheus-operator CRD schemas (from cloudcoil.models.*) -------------------------------------
crd_dir="$cache/crd-schemas-${KEDA_MODELS_PACKAGE//==/-}-${PROMETHEUS_OPERATOR_MODELS_PACKAGE//==/-}"
if [[ ! -f "$crd_dir/.complete" ]]; then
  log "building CRD schemas from $KEDA_MODELS_PACKAGE and $PROMETHEUS_OPERATOR_MODELS_PACKAGE (first run only)"
  venv="$cache/keda-models-venv"
  if { [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"; } \
      && "$venv/bin/python" -m pip install -q --disable-pip-version-check "$KEDA_MODELS_PACKAGE" \
         "$PROMETHEUS_OPERATOR_MODELS_PACKAGE" >&2 \
      && "$venv/bin/python" "$here/gen_crd_schemas.py" "$crd_dir" >&2; then
    touch "$crd_dir/.complete"
  else
    log "CRD schemas unavailable"
  fi
fi
[[ -f "$crd_dir/.complete" ]] || crd_dir=""

echo "K8S_SCHEMA_DIR=$k8s_dir"
echo "CRD_SCHEMA_DIR=$crd_dir"
echo "K8S_VERSION=$K8S_VERSION"
