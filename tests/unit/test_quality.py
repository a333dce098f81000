"""quality_gate: pure decisions over chunk reports (no services, no GX)."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sluice.config import PipelineConfig
from sluice.validate.gate import CHUNKWISE, COMBINED, QualityGateFailed, evaluate_combined, quality_gate


def make_cfg(expectations=(), **quality) -> PipelineConfig:
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
            "expectations": list(expectations),
            "quality": quality,
        }
    )


def report(index: int, rows_in: int, quarantined: int = 0, stats=None, chunkwise=(), reasons=None) -> dict:
    return {
        "index": index,
        "rows_in": rows_in,
        "rows_good": rows_in - quarantined,
        "rows_quarantined": quarantined,
        "batch_checks": {"rows_in": rows_in, "stats": stats or {}, "chunkwise": list(chunkwise)},
        "quarantine_reasons": reasons or ({"cast amount: not a number": quarantined} if quarantined else {}),
    }


def test_passes_and_returns_every_report_in_chunk_order():
    reports = [report(1, 100, 2), report(0, 100, 3)]
    assert [r["index"] for r in quality_gate(make_cfg(), reports)] == [0, 1]


def test_chunk_with_no_good_rows_is_still_returned_for_its_ledger_row():
    reports = [report(0, 1000), report(1, 10, 10)]
    assert len(quality_gate(make_cfg(max_quarantine_fraction=0.05), reports)) == 2


def test_quarantine_fraction_over_the_limit_names_chunks_counts_and_reasons():
    reports = [
        report(0, 100, 1),
        report(1, 100, 9, reasons={"expect_column_values_to_not_be_null(id)": 9}),
        report(2, 100, 0),
    ]
    with pytest.raises(QualityGateFailed) as err:
        quality_gate(make_cfg(max_quarantine_fraction=0.02), reports)
    msg = str(err.value)
    assert "10 of 300 row(s) quarantined (3.33%)" in msg and "max_quarantine_fraction = 2.00%" in msg
    assert "chunk 1: 9 of 100, chunk 0: 1 of 100" in msg and "chunk 2" not in msg
    assert "expect_column_values_to_not_be_null(id): 9 row(s)" in msg and "nothing was loaded" in msg


def test_exactly_at_the_limit_passes():
    quality_gate(make_cfg(max_quarantine_fraction=0.05), [report(0, 100, 5)])


def test_every_row_bad_fails_even_with_a_permissive_threshold():
    with pytest.raises(QualityGateFailed, match="every row is bad: all 20 row"):
        quality_gate(make_cfg(max_quarantine_fraction=1.0), [report(0, 10, 10), report(1, 10, 10)])


def test_many_chunks_are_summarised():
    reports = [report(i, 10, 5) for i in range(15)] + [report(15, 10, 0)]
    with pytest.raises(QualityGateFailed, match=r"and 5 more chunk\(s\)"):
        quality_gate(make_cfg(), reports)


@pytest.mark.parametrize(
    ("quality", "rows", "message"),
    [
        ({"min_rows": 500}, 300, "300 row(s) arrived, fewer than quality.min_rows = 500"),
        ({"max_rows": 200}, 300, "300 row(s) arrived, more than quality.max_rows = 200"),
    ],
)
def test_min_and_max_rows(quality, rows, message):
    with pytest.raises(QualityGateFailed) as err:
        quality_gate(make_cfg(**quality), [report(0, rows)])
    assert message in str(err.value)


def test_no_chunks_is_fine_unless_rows_are_required():
    assert quality_gate(make_cfg(), []) == []
    with pytest.raises(QualityGateFailed, match="0 row"):
        quality_gate(make_cfg(min_rows=1), [])


def test_row_count_expectation_is_evaluated_on_the_sum_of_the_chunks():
    exp = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 150, "max_value": 250}}
    quality_gate(make_cfg([exp]), [report(0, 100), report(1, 100)])  # each chunk alone would fail
    with pytest.raises(
        QualityGateFailed,
        match=r"expect_table_row_count_to_be_between\(min_value=150, max_value=250\)"
        r" failed on the whole interval: observed 300",
    ):
        quality_gate(make_cfg([exp]), [report(0, 100), report(1, 100), report(2, 100)])


def test_batch_expectation_with_severity_warn_only_logs(caplog):
    exp = {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 5}, "severity": "warn"}
    with caplog.at_level(logging.WARNING, logger="sluice.validate.gate"):
        quality_gate(make_cfg([exp]), [report(0, 100)])
    assert "expect_table_row_count_to_equal" in caplog.text


def test_column_figures_combine_across_chunks():
    stats = [
        {
            "amount": {"count": 2, "nulls": 2, "min": 1.0, "max": 5.0, "sum": 6.0},
            "day": {"count": 2, "nulls": 1, "min": "2024-01-01", "max": "2024-01-05", "sum": None},
        },
        {
            "amount": {"count": 2, "nulls": 2, "min": -3.0, "max": 2.0, "sum": -1.0},
            "day": {"count": 1, "nulls": 0, "min": "2023-12-31", "max": "2024-01-02", "sum": None},
        },
    ]
    reports = [report(i, 4, stats=s) for i, s in enumerate(stats)]
    cfg = make_cfg(
        [
            {"type": "expect_column_min_to_be_between", "kwargs": {"column": "amount", "min_value": -3}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "amount", "max_value": 5}},
            {"type": "expect_column_sum_to_be_between", "kwargs": {"column": "amount", "min_value": 5, "max_value": 5}},
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "amount", "min_value": 1.25, "max_value": 1.25},
            },
            {
                "type": "expect_column_proportion_of_non_null_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0.5, "max_value": 0.5},
            },
            {"type": "expect_column_min_to_be_between", "kwargs": {"column": "day", "min_value": date(2023, 12, 31)}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "day", "max_value": "2024-01-05"}},
        ]
    )
    assert [evaluate_combined(s, reports) for s in cfg.expectations] == [
        (True, -3.0),
        (True, 5.0),
        (True, 5.0),
        (True, 1.25),
        (True, 0.5),
        (True, "2023-12-31"),
        (True, "2024-01-05"),
    ]
    quality_gate(cfg, reports)
    strict = make_cfg(
        [
            {
                "type": "expect_column_max_to_be_between",
                "kwargs": {"column": "day", "max_value": date(2024, 1, 5), "strict_max": True},
            }
        ]
    )
    with pytest.raises(QualityGateFailed, match="observed '2024-01-05'"):
        quality_gate(strict, reports)


def test_chunkwise_failure_names_the_chunk():
    bad = {
        "expectation": "expect_table_columns_to_match_set",
        "severity": "quarantine",
        "success": False,
        "observed": ["id"],
    }
    with pytest.raises(QualityGateFailed, match="expect_table_columns_to_match_set failed in chunk 3"):
        quality_gate(make_cfg(), [report(0, 10), report(3, 10, chunkwise=[bad])])
    quality_gate(make_cfg(), [report(3, 10, chunkwise=[{**bad, "severity": "warn"}])])


def test_report_that_does_not_add_up_is_refused():
    broken = {**report(0, 10), "rows_good": 9}
    with pytest.raises(QualityGateFailed, match="does not add up"):
        quality_gate(make_cfg(), [broken])


def test_all_problems_are_reported_together():
    exp = {"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 10}}
    with pytest.raises(QualityGateFailed) as err:
        quality_gate(make_cfg([exp], max_rows=10), [report(0, 100, 50)])
    assert str(err.value).count("\n- ") == 3


def test_the_gate_is_pure():
    assert COMBINED.isdisjoint(CHUNKWISE)
    import sluice.validate.gate as q

    assert "great_expectations" not in q.__dict__ and "psycopg" not in q.__dict__


def test_column_figures_with_no_values_are_not_judged():
    cfg = make_cfg([{"type": "expect_column_max_to_be_between", "kwargs": {"column": "amount", "max_value": 1}}])
    assert evaluate_combined(cfg.expectations[0], []) == (True, None)
    stats = {"amount": {"count": 0, "nulls": 3, "min": None, "max": None, "sum": None}}
    quality_gate(cfg, [report(0, 3, stats=stats)])


def test_missing_columns_loaded_as_null_are_a_gate_warning(caplog):
    reports = [report(0, 10) | {"missing_columns": ["note"]}, report(1, 10) | {"missing_columns": ["note", "x"]}]
    reports.append(report(2, 0) | {"missing_columns": ["id", "amount"]})  # an empty chunk's header says nothing
    with caplog.at_level(logging.WARNING, logger="sluice.validate.gate"):
        assert len(quality_gate(make_cfg(), reports)) == 3
    assert "declared column(s) note, x missing from the source: loaded as NULL" in caplog.text
