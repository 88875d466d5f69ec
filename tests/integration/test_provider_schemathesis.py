"""Property-based testing of the provider's OpenAPI document against the running provider (schemathesis).

Two bounded runs of the `st` CLI against a real provider on loopback:

* the provider's own operations with every schemathesis check except
  ``positive_data_acceptance`` — a JSON Schema cannot say what an RFC 5321 address or a
  grant's own From address is, so schema-valid requests can rightly get a 400 that names
  the field;
* the OAuth endpoints (emailkit.provider.oauth) for server errors only.

Either run fails on any 5xx.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.provider import Lab

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`

ST = Path(sys.executable).parent / "st"


def run_st(lab: Lab, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    grant = lab.grant("fuzz")
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\ngrant_id = "{grant.id}"\n')
    return subprocess.run(
        [str(ST), "--config-file", str(config), "--no-color", "run", f"{lab.provider.url}/openapi.json",
         "-H", f"Authorization: Bearer {lab.provider.api_key}", "--seed", "20261121", "--workers", "1",
         "--max-examples", "25", "--request-timeout", "10", *options],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )


def test_provider_operations_conform_to_their_schema(lab: Lab, tmp_path: Path) -> None:
    proc = run_st(lab, tmp_path, "--exclude-path-regex", "^/v3/connect/", "--checks", "all",
                  "--exclude-checks", "positive_data_acceptance")
    assert proc.returncode == 0, proc.stdout[-15000:] + proc.stderr[-3000:]
    selected = re.search(r"Selected: (\d+)/\d+", proc.stdout)
    tested = re.search(r"Tested: (\d+)", proc.stdout)
    assert selected and tested and tested.group(1) == selected.group(1), proc.stdout[-3000:]


def test_oauth_endpoints_never_fail_with_5xx(lab: Lab, tmp_path: Path) -> None:
    proc = run_st(lab, tmp_path, "--include-path-regex", "^/v3/connect/", "--checks", "not_a_server_error",
                  "--phases", "examples,coverage,fuzzing")
    assert proc.returncode == 0, proc.stdout[-15000:] + proc.stderr[-3000:]
