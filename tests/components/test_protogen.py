"""The committed config code must be what `make proto` generates from the .proto files."""

from __future__ import annotations

from components.protogen import PROTO_FILES, REPO_ROOT, generate


def test_generated_config_code_is_current(tmp_path):
    generated = generate(tmp_path)
    assert len(generated) == 2 * len(PROTO_FILES)
    for path in generated:
        committed = REPO_ROOT / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run `make proto`"
