"""Generate deploy/k8s/prometheusrule.yaml from deploy/prometheus/alerts.yml.

One rules file is the source of truth; the Prometheus Operator's PrometheusRule wraps the same
groups. Run after editing alerts.yml; ``--check`` fails when the committed file is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "prometheus" / "alerts.yml"
TARGET = HERE / "prometheusrule.yaml"
HEADER = "# GENERATED from deploy/prometheus/alerts.yml by build_prometheusrule.py; do not edit.\n"


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line PromQL, so the generated file stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    rules = yaml.safe_load(SOURCE.read_text())
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "taskpulse",
            "labels": {"app.kubernetes.io/part-of": "taskpulse", "role": "alert-rules"},
        },
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify only; write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.name} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
