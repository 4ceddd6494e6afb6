"""Which packages the wheel holds (everything else is in pyproject.toml).

Every package under indexer/ is found, none is listed by hand; memory-files/
(the templates `memdex init` copies) ships inside the package as
``indexer.templates``, so init works from a wheel as well as from a checkout.
.ci/run builds the wheel and imports every module from it.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["indexer", "indexer.*"]), "indexer.templates"],
    package_dir={"indexer.templates": "memory-files"},
)
