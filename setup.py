"""The compiled part of the package: the fan-out's write loop (see realtime/slots.py).

Optional: where it cannot be built (no C compiler), the same loop runs in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tajiri_live.realtime._wheel",
            sources=["src/tajiri_live/realtime/_wheel.c"],
            optional=True,
        )
    ]
)
