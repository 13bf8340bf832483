"""Build the optional compiled parts (receiver/_wire.pyx, the trace decoder; conventions/_classify.pyx, the
batch classification; context/_batch.pyx, the trace context's batch path; sessions/_spans.pyx, the session
tracker's span loop); the package metadata is pyproject.toml's.

``optional=True``: without a C compiler the install still succeeds and decode.py, classify.py, batch.py and
span_sessions.py use their Python paths.
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # Cython missing (a build without build isolation): the Python path only
    cythonize = None

#: module name -> its Cython source
SOURCES = {
    "agentprom.receiver._wire": "src/agentprom/receiver/_wire.pyx",
    "agentprom.conventions._classify": "src/agentprom/conventions/_classify.pyx",
    "agentprom.context._batch": "src/agentprom/context/_batch.pyx",
    "agentprom.sessions._spans": "src/agentprom/sessions/_spans.pyx",
}

if cythonize is not None:
    extensions = cythonize([Extension(name, [source], optional=True) for name, source in SOURCES.items()],
                           compiler_directives={"language_level": "3"}, quiet=True,
                           include_path=["src"])  # agentprom/_slots.pxd and _keys.pxd, which they share
    for extension in extensions:
        extension.optional = True
else:
    extensions = []

setup(ext_modules=extensions)
