"""Quality assurance: conformance rules, accuracy scoring, reports and survey preview images."""

__all__: list[str] = []
