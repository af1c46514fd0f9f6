"""hvtrace: host-side Python for the hvtrace tracing hypervisor.

Today this package holds the foundation: the ABI mirror (:mod:`hvtrace.abi`), the image build
(:mod:`hvtrace.image`), the emulator launchers (:mod:`hvtrace.launch`) and the CLI (:mod:`hvtrace.cli`).
"""

__version__ = "0.1.0"
