"""Every bad input of the corpus (tests/bad_inputs.py): a clear message, the right non-zero
exit code, no traceback, and nothing in the workspace written or overwritten."""

from pathlib import Path

import pytest
from bad_inputs import CASES, Case
from click.testing import CliRunner
from conftest import write_idx_dir

from mlpcli.cli import main


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_fails_clearly_and_changes_nothing(case: Case, tmp_path):
    write_idx_dir(tmp_path / "idx", n_train=1200, n_test=300)
    args = case.args(tmp_path)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == case.exit_code, result.output
    assert case.message in result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert len(result.output) < 2000  # a message, not a dump
    assert snapshot(tmp_path) == before  # no run directory, no eval.json, nothing overwritten


def test_the_corpus_has_at_least_forty_cases_with_distinct_names():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
