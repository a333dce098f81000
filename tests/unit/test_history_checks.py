"""Checks against history (validate/history.py) and their config: pure logic over made-up histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sluice.config import ConfigError, PipelineConfig, load_pipeline
from sluice.validate.gate import QualityGateFailed, interval_figures, run_gate
from sluice.validate.history import Past, check_history

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ORDERS = (Path(__file__).parent / "fixtures" / "config" / "orders.yaml").read_text()


def make_cfg(history: dict | None) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "orders",
            "start_date": "2024-01-01",
            "source": {"kind": "s3", "bucket": "sluice-landing", "prefix": "orders/", "format": "csv"},
            "target": {
                "table": "orders",
                "primary_key": ["id"],
                "columns": [
                    {"name": "id", "type": "bigint", "nullable": False},
                    {"name": "amount", "type": "numeric(10,2)"},
                    {"name": "day", "type": "date"},
                ],
            },
            "history": history,
        }
    )


def past(rows: list[int], maxes: list[float] | None = None) -> list[Past]:
    """Newest first, as read_history returns them."""
    out = []
    for i, n in enumerate(rows):
        cols = (
            {"amount": {"count": n, "nulls": 0, "min": 1.0, "max": maxes[i], "sum": None, "mean": None}}
            if maxes
            else {}
        )
        end = T0 - timedelta(days=i)
        out.append(Past(end - timedelta(days=1), end, n, cols))
    return out


def report(rows: int, top: float = 100.0) -> dict:
    stats = {"amount": {"count": rows, "nulls": 0, "min": 1.0, "max": top, "sum": rows * 50.0}}
    return {"index": 0, "rows_in": rows, "rows_good": rows, "rows_quarantined": 0, "batch_checks": {"stats": stats}}


VOLUME = {"min_intervals": 3, "volume": {"tolerance": 0.5, "severity": "fail"}}


def test_volume_within_tolerance_passes_and_ten_times_fails_naming_check_value_and_history():
    cfg = make_cfg(VOLUME)
    assert run_gate(cfg, [report(140)], past([100, 90, 110])).warnings == []
    with pytest.raises(QualityGateFailed) as err:
        run_gate(cfg, [report(1000)], past([100, 90, 110]))
    text = str(err.value)
    assert "history.volume (median, fail): 1,000 row(s) arrived, 10.0× the median" in text
    assert "the last 3 successful interval(s) (2023-12-29 00:00 → 2024-01-01 00:00 UTC) had median 100" in text
    assert "(min 90, max 110); allowed 50..150 (median ± 50%)" in text


def test_volume_warn_and_band():
    cfg = make_cfg({"min_intervals": 2, "volume": {"method": "band", "tolerance": 0.1, "severity": "warn"}})
    assert run_gate(cfg, [report(120)], past([100, 110])).warnings == []  # inside 90..121
    result = run_gate(cfg, [report(50)], past([100, 110]))
    assert len(result.warnings) == 1 and "history.volume (band, warn): 50 row(s) arrived" in result.warnings[0]
    assert "allowed 90..121 (band 100..110 ± 10%)" in result.warnings[0]


def test_no_history_passes_with_a_note():
    cfg = make_cfg({**VOLUME, "outliers": [{"column": "amount", "statistic": "max"}]})
    for history in (None, [], past([100, 100])):
        result = run_gate(cfg, [report(10_000, top=1e9)], history)
        assert result.warnings == [] and len(result.notes) == 2, result
        assert result.notes[0].startswith("history.volume: not checked, ")
        assert "history.outliers amount.max (zscore, warn): not checked" in result.notes[1]


def test_outlier_zscore_and_iqr():
    history = past([10] * 5, maxes=[100.0, 101.0, 99.0, 100.0, 102.0])
    z = make_cfg({"min_intervals": 3, "outliers": [{"column": "amount", "statistic": "max", "severity": "fail"}]})
    assert run_gate(z, [report(10, top=102.5)], history).notes == []
    with pytest.raises(
        QualityGateFailed, match=r"history.outliers amount.max \(zscore, fail\): 1,000,000 is an outlier, z-score"
    ):
        run_gate(z, [report(10, top=1e6)], history)
    iqr = make_cfg({"min_intervals": 3, "outliers": [{"column": "amount", "statistic": "max", "method": "iqr"}]})
    warned = run_gate(iqr, [report(10, top=110)], history).warnings
    assert len(warned) == 1 and "outside 98.5..102.5 (q1 - 1.5×IQR .. q3 + 1.5×IQR)" in warned[0], warned
    assert "q1 100, q3 101" in warned[0]


def test_constant_history_flags_any_change():
    cfg = make_cfg({"min_intervals": 2, "outliers": [{"column": "amount", "statistic": "max"}]})
    history = past([10, 10], maxes=[5.0, 5.0])
    assert run_gate(cfg, [report(10, top=5.0)], history).warnings == []
    assert "z-score inf" in run_gate(cfg, [report(10, top=6.0)], history).warnings[0]


def test_interval_figures_cover_numeric_columns_only():
    figures = interval_figures(make_cfg(None), [report(4, top=9.0), report(6, top=3.0)])
    assert set(figures) == {"id", "amount"}
    assert figures["amount"] == {"count": 10, "nulls": 0, "min": 1.0, "max": 9.0, "sum": 500.0, "mean": 50.0}


def test_check_history_null_fraction():
    cfg = make_cfg({"min_intervals": 2, "outliers": [{"column": "amount", "statistic": "null_fraction"}]}).history
    hist = [
        Past(T0, T0, 10, {"amount": {"count": 9, "nulls": 1}}),
        Past(T0, T0, 10, {"amount": {"count": 8, "nulls": 2}}),
    ]
    found = check_history(cfg, 10, {"amount": {"count": 0, "nulls": 10}}, hist)
    assert "amount.null_fraction" in found.warnings[0] and "1 is an outlier" in found.warnings[0]


@pytest.mark.parametrize(
    ("history", "line", "message", "hint"),
    [
        (
            "history:\n  outliers:\n    - {column: o_totalprize}\n",
            31,
            "column 'o_totalprize' is not declared",
            "o_totalprice",
        ),
        ("history:\n  outliers:\n    - {column: o_comment}\n", 31, "column 'o_comment' is not numeric", None),
        ("history:\n  volume: {severity: quarantine}\n", 30, "severity", None),
        ("history:\n  volum: {}\n", 30, "unknown key 'volum'", "volume"),
        ("history:\n  lookback: 3\n  min_intervals: 5\n", 31, "min_intervals 5 is larger than lookback 3", None),
        ("freshness: {max_lag: soon}\n", 29, "max_lag", None),
    ],
)
def test_config_errors_name_file_line_and_fix(tmp_path, history, line, message, hint):
    path = tmp_path / "orders.yaml"
    path.write_text(ORDERS.rstrip() + "\n" + history)
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    text = str(err.value)
    assert text.startswith(f"{path}:{line}: ") and message in text, text
    if hint:
        assert f"did you mean '{hint}'?" in text, text


def test_freshness_and_history_parse(tmp_path):
    path = tmp_path / "orders.yaml"
    path.write_text(ORDERS.rstrip() + "\nfreshness: {max_lag: 26h}\nhistory:\n  volume: {}\n")
    cfg = load_pipeline(path)
    assert cfg.freshness.max_lag == timedelta(hours=26)
    assert cfg.history.volume.severity == "warn" and cfg.history.lookback == 30
