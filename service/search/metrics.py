"""A metric's full name: what is measured and, for device metrics, on which device."""

from __future__ import annotations

from dataclasses import dataclass

LATENCY = "latency"


@dataclass(frozen=True)
class MetricName:
    """`accuracy`, `macs` (no device) or `latency@host` (`name@device`), as rows store it."""

    name: str
    device: str | None = None

    @classmethod
    def parse(cls, text: str) -> MetricName:
        """`"latency@host"` → `MetricName("latency", "host")`; `"accuracy"` → no device."""
        name, _, device = text.partition("@")
        return cls(name, device or None)

    @classmethod
    def latency(cls, device: str) -> MetricName:
        """The latency on `device`, in ms."""
        return cls(LATENCY, device)

    @property
    def is_latency(self) -> bool:
        """A latency with its device named (`latency@<device>`)."""
        return self.name == LATENCY and self.device is not None

    def __str__(self) -> str:
        return f"{self.name}@{self.device}" if self.device is not None else self.name
