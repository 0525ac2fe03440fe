"""guard's default policy rules, as YAML data (read by :mod:`guard.policies`).

This directory is installed as the package ``guard.policies.defaults`` (see
``[tool.setuptools.package-dir]`` in pyproject.toml), so the same lookup finds
the files in a wheel and in an editable install.
"""
