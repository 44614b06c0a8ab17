"""What observability and safety add to a reload: audit, signature check, metrics, traces.

Run: python benchmarks/bench_observability.py
A one-function edit of a module reloaded with nothing configured, then with each feature on.
Target (issue 16): each feature adds little next to the reload itself (the audit parses only
the new statements and the unchanged ones that may bind an alias; a signature check is one
Ed25519 verification), and nothing configured costs nothing measurable.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sources import module_source, scratch

import hotswap
from hotswap._plan import signing as _signing


def _keys(folder: Path) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = folder / "bench.key", folder / "bench.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(private), str(public)


def measure(lines: int, rounds: int) -> dict[str, float]:
    """Median ms of a one-function reload, per configuration."""
    folder = Path(tempfile.mkdtemp(prefix="hotswap-bench-obs-"))
    name = f"bench_obs_{lines}"
    path = folder / f"{name}.py"
    sources = [module_source(lines, variant) for variant in range(2)]
    path.write_text(sources[0])
    sys.path.insert(0, str(folder))
    module = importlib.import_module(name)
    private, public = _keys(folder)
    path.write_text(sources[1])
    if not hotswap.reload(module).ok:  # the first reload: hotswap sees the source from here
        raise SystemExit("the first reload failed")

    def timed(prepare: Callable[[], None] = lambda: None) -> float:
        samples = []
        for round_ in range(rounds):
            path.write_text(sources[round_ % 2])
            prepare()
            start = time.perf_counter()
            result = hotswap.reload(module)
            samples.append(time.perf_counter() - start)
            if not (result.ok and result.changes.changed == ("edited",)):
                raise SystemExit(f"unexpected reload result: {result}")
        return statistics.median(samples) * 1000

    row = {"lines": float(lines), "plain": timed()}
    hotswap.configure(audit=True)
    row["audit"] = timed()
    hotswap.configure(audit=False, require_signature={"public_keys": [public]})
    row["signed"] = timed(lambda: _signing.sign_file(str(path), private))
    hotswap.configure(require_signature=False)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from hotswap.integrations import otel, prometheus

    exporter = prometheus.register(CollectorRegistry())
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    otel.instrument(provider)
    try:
        row["metrics+traces"] = timed(spans.clear)
    finally:
        otel.uninstrument()
        exporter.unregister()
        provider.shutdown()
    return row


def main() -> None:
    rows = [measure(50, 40), measure(2000, 20)]
    columns = ("plain", "audit", "signed", "metrics+traces")
    print("one-function reload with each feature on (medians, ms; ratio to plain)")
    header = f"{'module':>12}" + "".join(f"{c:>20}" for c in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = "".join(f"{row[c]:>11.2f} ({row[c] / row['plain']:>4.2f}x)" for c in columns)
        print(f"{int(row['lines']):>6} lines {cells}")


if __name__ == "__main__":
    with scratch():
        main()
