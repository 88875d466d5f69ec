"""The test suite as a package, so shared helpers are imported by path: `from tests.support.provider import ...`."""
