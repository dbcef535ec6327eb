"""Imports every command module so that each registers its commands on the `refold` group."""

from refold.cli import (  # noqa: F401
    bench,
    bench_drift,
    bench_serve,
    consume,
    demo,
    evaluate,
    infra,
    produce,
    refit,
    report,
    serve,
)
