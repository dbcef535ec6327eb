"""Imports every command module so that each registers its commands on the `refold` group."""

from refold.cli import (  # noqa: F401
    acls,
    bench,
    bench_attack,
    bench_drift,
    bench_pace,
    bench_republish,
    bench_serve,
    bridge,
    consume,
    demo,
    evaluate,
    infra,
    produce,
    refit,
    report,
    serve,
    simulate,
)
