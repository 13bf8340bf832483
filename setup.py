"""Build the optional compiled trace decoder (receiver/_wire.pyx); the package metadata is pyproject.toml's.

``optional=True``: without a C compiler the install still succeeds and decode.py uses its Python path.
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # Cython missing (a build without build isolation): the Python path only
    cythonize = None

SOURCE = "src/agentprom/receiver/_wire.pyx"

if cythonize is not None:
    extensions = cythonize([Extension("agentprom.receiver._wire", [SOURCE], optional=True)],
                           compiler_directives={"language_level": "3"}, quiet=True)
    for extension in extensions:
        extension.optional = True
else:
    extensions = []

setup(ext_modules=extensions)
