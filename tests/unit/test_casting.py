"""cast_table: every declared type, the bad rows and their reasons, NULLs, and the extra/missing column policies."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from sluice.config import ColumnSpec
from sluice.validate import cast as casting
from sluice.validate import casters_numeric, vectors
from sluice.validate.cast import BAD_REASONS, BAD_ROW, CastSchemaError, cast_table


def col(name: str, type_: str, **kw) -> ColumnSpec:
    return ColumnSpec(name=name, type=type_, **kw)


def cast_one(values, type_: str, arrow_type: pa.DataType | None = None, nullable: bool = True):
    """Cast one source column; returns (good values, {row: reason}) with rows numbered in the input."""
    table = pa.table({"v": pa.array(values, arrow_type)})
    result = cast_table(table, [col("v", type_, nullable=nullable)], "ignore")
    assert result.good.num_rows + result.bad_rows.num_rows == len(values)  # conservation
    reasons = {
        row: json.loads(r)
        for row, r in zip(result.bad_rows[BAD_ROW].to_pylist(), result.bad_rows[BAD_REASONS].to_pylist(), strict=True)
    }
    return result.good["v"].to_pylist(), {row: r[0]["reason"] for row, r in reasons.items()}, result


# ---------------------------------------------------------------- integers


def test_integers_from_text_with_range_checks():
    good, bad, res = cast_one(["1", " 42 ", "+7", "-0", "007", "1.0", "", None, "32767", "-32768"], "smallint")
    assert good == [1, 42, 7, 0, 7, 1, None, None, 32767, -32768]
    assert res.good.schema.field("v").type == pa.int16()
    assert not bad
    good, bad, _ = cast_one(["32768", "-32769", "abc", "1.5", "1e3", "12"], "smallint")
    assert good == [12]
    assert bad == {
        0: "out of range for smallint",
        1: "out of range for smallint",
        2: "not an integer",
        3: "not an integer",
        4: "not an integer",
    }


@pytest.mark.parametrize(
    ("type_", "ok", "over"),
    [
        ("integer", ["2147483647", "-2147483648"], ["2147483648", "-2147483649"]),
        (
            "bigint",
            ["9223372036854775807", "-9223372036854775808"],
            ["9223372036854775808", "-9223372036854775809", "1" * 50],
        ),
    ],
)
def test_integer_edges(type_, ok, over):
    good, bad, _ = cast_one(ok + over, type_)
    assert good == [int(v) for v in ok]
    assert set(bad.values()) == {f"out of range for {type_}"} and len(bad) == len(over)


def test_integers_from_typed_sources():
    good, bad, _ = cast_one([1, 40000, None], "smallint", pa.int64())
    assert good == [1, None] and bad == {1: "out of range for smallint"}
    good, bad, _ = cast_one([3.0, 3.5, float("nan"), 1e10], "integer", pa.float64())
    assert good == [3] and bad == {1: "not an integer", 2: "not an integer", 3: "out of range for integer"}
    good, bad, _ = cast_one([2**64 - 1, 5], "bigint", pa.uint64())
    assert good == [5] and bad == {0: "out of range for bigint"}
    good, bad, _ = cast_one([Decimal("5.00"), Decimal("5.50")], "integer", pa.decimal128(10, 2))
    assert good == [5] and bad == {1: "not an integer"}
    good, _, _ = cast_one([True, False], "smallint", pa.bool_())
    assert good == [1, 0]


# ---------------------------------------------------------------- numeric


def test_numeric_rounds_half_away_from_zero_like_postgres():
    good, bad, res = cast_one(["1.005", "-1.005", "0.125", "12", ".5", "5.", "+1.10", "  2.5 "], "numeric(6,2)")
    assert res.good.schema.field("v").type == pa.decimal128(6, 2)
    assert good == [Decimal(x) for x in ("1.01", "-1.01", "0.13", "12.00", "0.50", "5.00", "1.10", "2.50")]
    assert not bad


def test_numeric_precision_overflow():
    good, bad, _ = cast_one(["99.99", "100", "-100.00", "99.995", "0.001", "abc"], "numeric(4,2)")
    assert good == [Decimal("99.99"), Decimal("0.00")]
    overflow = "numeric field overflow: numeric(4,2) holds absolute values below 10^2"
    assert bad == {1: overflow, 2: overflow, 3: overflow, 5: "not a number"}


def test_numeric_exponent_nan_and_long_fraction_take_the_exact_slow_path():
    long_fraction = "0." + "1234567890" * 4
    good, bad, _ = cast_one(["1e2", "1.5E-1", "nan", "1e9", long_fraction], "numeric(6,2)")
    assert good == [Decimal("100.00"), Decimal("0.15"), Decimal("0.12")]
    assert bad[2].startswith("not a finite number") and bad[3].startswith("numeric field overflow")


def test_numeric_from_floats_ints_and_decimals():
    good, _, _ = cast_one([1.005, 0.1 + 0.2, 2.675], "numeric(5,2)", pa.float64())
    assert good == [Decimal("1.01"), Decimal("0.30"), Decimal("2.68")]  # as PostgreSQL's float8 -> numeric
    good, bad, _ = cast_one([999, 1000], "numeric(5,2)", pa.int32())
    assert good == [Decimal("999.00")] and 1 in bad
    good, bad, _ = cast_one([Decimal("1.2345"), Decimal("12345.6")], "numeric(6,3)", pa.decimal128(10, 4))
    assert good == [Decimal("1.235")] and 1 in bad


# ---------------------------------------------------------------- double, boolean, text


def test_double():
    good, bad, res = cast_one(["1.5", "1e3", " -2 ", ".5", "NaN", "-Infinity", "inf", "1e999", "1,5", ""], "double")
    assert res.good.schema.field("v").type == pa.float64()
    assert good[:4] == [1.5, 1000.0, -2.0, 0.5] and good[4] != good[4] and good[5:7] == [float("-inf"), float("inf")]
    assert good[7] is None
    assert bad == {7: "out of range for double precision", 8: "not a number"}
    good, _, _ = cast_one([1, 2**40], "double", pa.int64())
    assert good == [1.0, float(2**40)]


def test_boolean_spellings():
    good, bad, _ = cast_one(
        ["true", "F", "YES", "no", "t", "f", "1", "0", " On ", "off", "y", "N", "maybe", None], "boolean"
    )
    assert good == [True, False, True, False, True, False, True, False, True, False, True, False, None]
    assert bad == {12: "not a boolean (expected true/false, t/f, yes/no, y/n, on/off or 1/0)"}
    good, bad, _ = cast_one([0, 1, 2], "boolean", pa.int8())
    assert good == [False, True] and bad == {2: "not a boolean (expected 0 or 1)"}


def test_text_keeps_strings_and_stringifies_other_types():
    good, bad, _ = cast_one(["  padded ", "", None], "text")
    assert good == ["  padded ", "", None] and not bad
    good, _, _ = cast_one([1, 2], "text", pa.int64())
    assert good == ["1", "2"]
    good, bad, _ = cast_one([b"ok", b"\xff"], "text", pa.binary())
    assert good == ["ok"] and bad == {1: "not valid UTF-8"}


# ---------------------------------------------------------------- dates and times


def test_dates():
    good, bad, res = cast_one(
        [
            "2024-02-29",
            " 2024-01-31 ",
            "2024-01-01T00:00:00",
            "2023-02-29",
            "2024-04-31",
            "2024-1-5",
            "2024-13-01",
            "2024-01-01T10:00",
            "01/02/2024",
            "",
            "1900-02-29",
            "2000-02-29",
        ],
        "date",
    )
    assert res.good.schema.field("v").type == pa.date32()
    assert good == [date(2024, 2, 29), date(2024, 1, 31), date(2024, 1, 1), None, date(2000, 2, 29)]
    assert set(bad) == {3, 4, 5, 6, 7, 8, 10} and set(bad.values()) == {"not a date (expected YYYY-MM-DD)"}


def test_dates_from_typed_sources():
    ts = pa.array([datetime(2024, 1, 2), datetime(2024, 1, 2, 10)], pa.timestamp("us"))
    good, bad, _ = cast_one(ts, "date")
    assert good == [date(2024, 1, 2)] and bad == {1: "not a date (expected YYYY-MM-DD): has a time"}
    good, _, _ = cast_one(pa.array([date(2024, 5, 6)], pa.date32()), "date")
    assert good == [date(2024, 5, 6)]


def test_timestamp_naive_is_utc_and_offsets_are_converted():
    good, bad, res = cast_one(
        [
            "2024-01-01T10:00:00",
            "2024-01-01 10:00:00.5",
            "2024-01-01",
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00+02:00",
            "2024-01-01T10:00:00.1234567",
            "2024-01-01T25:00",
            "2024-02-30T00:00",
            "bad",
        ],
        "timestamp",
    )
    assert res.good.schema.field("v").type == pa.timestamp("us")
    assert good == [
        datetime(2024, 1, 1, 10),
        datetime(2024, 1, 1, 10, 0, 0, 500000),
        datetime(2024, 1, 1),
        datetime(2024, 1, 1, 10),
        datetime(2024, 1, 1, 8),
        datetime(2024, 1, 1, 10, 0, 0, 123456),
    ]
    assert set(bad) == {6, 7, 8} and all(r.startswith("not a timestamp") for r in bad.values())


def test_timestamptz():
    good, bad, res = cast_one(
        [
            "2024-01-01T10:00:00",
            "2024-01-01T10:00:00+05:30",
            "2024-01-01T10:00:00+0530",
            "2024-01-01T10:00:00-01",
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00+25:00",
        ],
        "timestamptz",
    )
    assert res.good.schema.field("v").type == pa.timestamp("us", "UTC")
    utc = [
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 1, 4, 30, tzinfo=UTC),
        datetime(2024, 1, 1, 4, 30, tzinfo=UTC),
        datetime(2024, 1, 1, 11, tzinfo=UTC),
        datetime(2024, 1, 1, 10, tzinfo=UTC),
    ]
    assert good == utc and set(bad) == {5}


def test_typed_timestamps_are_converted_to_utc():
    paris = pa.array([datetime(2024, 1, 1, 10, tzinfo=UTC)], pa.timestamp("ns", "Europe/Paris"))
    good, _, _ = cast_one(paris, "timestamp")
    assert good == [datetime(2024, 1, 1, 10)]
    naive = pa.array([datetime(2024, 1, 1, 10)], pa.timestamp("ms"))
    good, _, _ = cast_one(naive, "timestamptz")
    assert good == [datetime(2024, 1, 1, 10, tzinfo=UTC)]


# ---------------------------------------------------------------- jsonb


def test_jsonb_validates_text_and_serialises_nested_values():
    good, bad, _ = cast_one(['{"a": 1}', "[1, 2]", "3", '"s"', "null", "nope", "NaN", "{", None], "jsonb")
    assert good == ['{"a": 1}', "[1, 2]", "3", '"s"', "null", None]
    assert bad == {5: "not valid JSON", 6: "not valid JSON", 7: "not valid JSON"}
    good, _, _ = cast_one([{"a": 1, "b": "x"}, None], "jsonb", pa.struct([("a", pa.int64()), ("b", pa.string())]))
    assert [json.loads(g) if g else g for g in good] == [{"a": 1, "b": "x"}, None]
    good, _, _ = cast_one([[1, 2]], "jsonb", pa.list_(pa.int64()))
    assert json.loads(good[0]) == [1, 2]


# ---------------------------------------------------------------- rows, NULLs, columns


def test_bad_rows_keep_raw_values_row_numbers_and_every_reason():
    table = pa.table({"id": ["1", "2", None, "4"], "qty": ["5", "abc", "7", "x"], "note": ["a", "b", "c", "d"]})
    res = cast_table(table, [col("id", "bigint", nullable=False), col("qty", "integer")], "ignore")
    assert res.good.column_names == ["id", "qty"]
    assert res.good.to_pylist() == [{"id": 1, "qty": 5}]
    assert res.good_index.to_pylist() == [0]
    bad = res.bad_rows.to_pylist()
    assert [r[BAD_ROW] for r in bad] == [1, 2, 3]
    assert bad[0]["qty"] == "abc" and bad[0]["note"] == "b"  # the whole raw row, extra columns too
    assert json.loads(bad[0][BAD_REASONS]) == [{"column": "qty", "value": "abc", "reason": "not an integer"}]
    assert json.loads(bad[1][BAD_REASONS]) == [{"column": "id", "value": None, "reason": "null in non-nullable column"}]
    assert [r["column"] for r in json.loads(bad[2][BAD_REASONS])] == ["qty"]
    json.dumps(bad)  # JSON-serialisable as is


def test_null_in_non_nullable_column_is_a_bad_row():
    good, bad, _ = cast_one(["1", "", None], "bigint", nullable=False)
    assert good == [1] and bad == {1: "null in non-nullable column", 2: "null in non-nullable column"}


def test_source_name_maps_columns_and_reasons_use_the_declared_name():
    table = pa.table({"Quantity": ["1", "x"]})
    res = cast_table(table, [col("qty", "integer", source_name="Quantity")], "ignore")
    assert res.good.column_names == ["qty"] and res.good["qty"].to_pylist() == [1]
    assert json.loads(res.bad_rows[BAD_REASONS][0].as_py())[0]["column"] == "qty"
    assert res.bad_rows.column_names[0] == "Quantity"


def test_missing_nullable_column_becomes_null_under_on_missing_null():
    res = cast_table(pa.table({"id": ["1"]}), [col("id", "bigint"), col("note", "text")], "ignore", "null")
    assert res.missing == ["note"] and res.good["note"].to_pylist() == [None]
    assert res.good.schema.field("note").type == pa.string()


def test_missing_nullable_column_fails_by_default_with_a_did_you_mean():
    """A column renamed upstream (note -> notes) is an error naming it, not 20 of 20 values silently NULL."""
    table = pa.table({"id": ["1"], "notes": ["x"]})
    cols = [col("id", "bigint"), col("note", "text")]
    with pytest.raises(CastSchemaError) as err:
        cast_table(table, cols, "ignore")  # on_missing_columns defaults to fail, as in TargetConfig
    msg = str(err.value)
    assert msg.startswith("nullable column note is missing from the source. Did you mean 'notes'?")
    assert "Source columns: id, notes." in msg and "on_missing_columns: null" in msg and "source_name" in msg
    with pytest.raises(CastSchemaError, match="nullable column note is missing"):
        cast_table(table, cols, "ignore", "fail")


def test_missing_columns_are_all_named_and_win_over_on_extra_columns_fail():
    """A renamed column is missing and extra at once: the error names the missing one (with the hint), even when
    on_extra_columns: fail would also refuse the chunk."""
    table = pa.table({"id": ["1"], "quantity": ["3"], "comment": ["c"]})
    cols = [col("id", "bigint"), col("qty", "integer"), col("comments", "text")]
    with pytest.raises(CastSchemaError) as err:
        cast_table(table, cols, "fail")
    msg = str(err.value)
    assert "column qty is missing from the source. Did you mean 'quantity'?" in msg
    assert "column comments is missing from the source. Did you mean 'comment'?" in msg
    assert "source_name for 'qty', 'comments'" in msg


def test_missing_non_nullable_column_fails_even_under_on_missing_null():
    table = pa.table({"id": ["1"], "quantity": ["3"], "price": ["1.5"]})
    for on_missing in ("fail", "null"):
        with pytest.raises(CastSchemaError) as err:
            cast_table(table, [col("id", "bigint"), col("qty", "integer", nullable=False)], "ignore", on_missing)
        msg = str(err.value)
        assert "non-nullable column qty is missing" in msg and "Source columns: id, quantity, price" in msg
        assert "Did you mean 'quantity'?" in msg and "source_name" in msg and "nullable: true" in msg


def test_renamed_column_hint_when_names_are_not_alike():
    table = pa.table({"id": ["1"], "amount_eur": ["3"]})
    with pytest.raises(CastSchemaError, match="one undeclared column, 'amount_eur': was the column renamed"):
        cast_table(table, [col("id", "bigint"), col("total", "integer", nullable=False)], "ignore")


def test_missing_column_in_an_empty_chunk_is_not_an_error():
    res = cast_table(pa.table({}), [col("id", "bigint", nullable=False)], "ignore")
    assert res.good.num_rows == 0 and res.good.schema.field("id").type == pa.int64()


def test_extra_columns_ignore_fail_evolve():
    table = pa.table(
        {
            "id": ["1"],
            "new_text": ["x"],
            "new_int": pa.array([5], pa.int64()),
            "new_obj": pa.array([{"k": 1}]),
            "_sluice_file": ["f"],
        }
    )
    cols = [col("id", "bigint")]
    res = cast_table(table, cols, "ignore")
    assert res.extra_columns == ["new_text", "new_int", "new_obj"] and res.good.column_names == ["id"]
    with pytest.raises(CastSchemaError, match="new_text, new_int, new_obj"):
        cast_table(table, cols, "fail")
    res = cast_table(table, cols, "evolve")
    assert res.good.column_names == ["id", "new_text", "new_int", "new_obj"]
    assert res.good.schema.field("new_int").type == pa.int64()
    assert res.good.schema.field("new_obj").type == pa.string()
    assert json.loads(res.good["new_obj"][0].as_py()) == {"k": 1}


def test_evolve_refuses_a_name_a_declared_column_already_uses():
    table = pa.table({"qty_raw": ["1"], "qty": ["2"]})
    with pytest.raises(CastSchemaError, match="qty"):
        cast_table(table, [col("qty", "integer", source_name="qty_raw")], "evolve")


@pytest.mark.parametrize("arrow_type", [pa.string_view(), pa.large_string()])
def test_view_large_chunked_and_dictionary_inputs(arrow_type):
    arr = pa.chunked_array([pa.array(["1", "x"], arrow_type), pa.array(["3"], arrow_type)])
    res = cast_table(pa.table({"v": arr}), [col("v", "integer")], "ignore")
    assert res.good["v"].to_pylist() == [1, 3] and res.bad_count == 1
    dictionary = pa.array(["1", "2", "1"]).dictionary_encode()
    assert cast_table(pa.table({"v": dictionary}), [col("v", "integer")], "ignore").good["v"].to_pylist() == [1, 2, 1]


def test_clean_columns_take_one_cast_and_refusals_are_found_by_bisection(monkeypatch):
    calls = []
    real = vectors.cast_or_null
    monkeypatch.setattr(casters_numeric, "cast_or_null", lambda *a: calls.append(a) or real(*a))
    res = cast_table(pa.table({"v": [str(i) for i in range(10_000)]}), [col("v", "bigint")], "ignore")
    assert res.good.num_rows == 10_000 and not calls  # the optimistic path: no careful work at all
    values, failed = real(pa.array(["1", "x", "3", "y"] * 1000), pa.int64())
    assert failed.to_pylist() == [False, True, False, True] * 1000
    assert values.to_pylist()[:4] == [1, None, 3, None]


def test_bad_value_in_reason_is_truncated():
    _, _, res = cast_one(["x" * 1000], "integer")
    value = json.loads(res.bad_rows[BAD_REASONS][0].as_py())[0]["value"]
    assert len(value) == casting.MAX_VALUE_CHARS + 1 and value.endswith("…")
    assert res.bad_rows["v"][0].as_py() == "x" * 1000  # the raw row keeps it whole


# ---------------------------------------------------------------- values PostgreSQL cannot store
# Each is refused here, as a quarantined row with its reason, instead of failing the chunk's COPY (which refuses
# the whole chunk, and every retry the same way). The rules were checked against PostgreSQL 15.


def reasons_of(result) -> dict[int, list[dict]]:
    rows = result.bad_rows[BAD_ROW].to_pylist()
    return dict(zip(rows, map(json.loads, result.bad_rows[BAD_REASONS].to_pylist()), strict=True))


NUL_TEXT = "contains a NUL character (\\x00), which PostgreSQL cannot store in text"
NUL_JSON = "contains \\u0000 (NUL), which PostgreSQL jsonb cannot store"
OUT_OF_RANGE = "Sluice loads 0001-01-01 to 9999-12-31 (PostgreSQL has no year 0)"


def test_nul_in_text_is_quarantined_and_the_rest_of_the_chunk_passes():
    table = pa.table({"id": ["1", "2", "3", "4"], "note": ["a", "b\x00c", None, "\x00"]})
    res = cast_table(table, [col("id", "bigint"), col("note", "text")], "ignore")
    assert res.good.to_pydict() == {"id": [1, 3], "note": ["a", None]}
    why = reasons_of(res)
    assert sorted(why) == [1, 3]
    assert why[1] == [{"column": "note", "value": "b\x00c", "reason": NUL_TEXT}]
    assert res.bad_rows["id"].to_pylist() == ["2", "4"]  # the raw row is kept for the quarantine


def test_nul_in_binary_text_and_in_evolved_columns():
    good, bad, _ = cast_one([b"a", b"b\x00", b"\xff"], "text", pa.binary())
    assert good == ["a"] and bad == {1: NUL_TEXT, 2: "not valid UTF-8"}
    res = cast_table(pa.table({"id": ["1", "2"], "new": ["x", "y\x00"]}), [col("id", "bigint")], "evolve")
    assert res.good.to_pydict() == {"id": [1], "new": ["x"]}
    assert reasons_of(res)[1] == [{"column": "new", "value": "y\x00", "reason": NUL_TEXT}]


@pytest.mark.parametrize(
    "arr",
    [
        pa.array(["x\x00", "a", "b\x00", "c"]).slice(1, 2),  # a slice: only its own bytes are searched
        pa.chunked_array([pa.array(["a", "x"]), pa.array(["b\x00", "c"])]).slice(1, 2),
        pa.array(["a", "b\x00"], pa.large_string()),
        pa.array(["a", "b\x00"], pa.string_view()),
    ],
)
def test_nul_is_found_in_slices_chunks_and_other_string_layouts(arr):
    res = cast_table(pa.table({"v": arr}), [col("v", "text")], "ignore")
    assert res.good["v"].to_pylist() == [arr.to_pylist()[0]] and res.bad_rows[BAD_ROW].to_pylist() == [1]


def test_the_nul_check_reads_only_the_slice_and_ignores_bytes_of_null_slots():
    from sluice.validate.casters import nul_failures

    assert nul_failures(pa.array(["a\x00", "b", "c"]).slice(1)) == []
    assert nul_failures(pa.array([None, None], pa.string())) == []


def test_nul_in_jsonb_text_and_the_u0000_escape_are_quarantined():
    values = [
        '{"a": 1}',
        '"a\\u0000b"',  # the escape: valid JSON, refused by PostgreSQL's jsonb
        '{"\\u0000": 1}',  # in a key too
        '"a\\\\u0000b"',  # an escaped backslash, then the text u0000: PostgreSQL stores it
        '"a\\\\\\u0000b"',  # an escaped backslash, then the escape
        '"a\x00b"',  # a raw NUL: not JSON at all
        None,
    ]
    good, bad, _ = cast_one(values, "jsonb")
    assert good == ['{"a": 1}', '"a\\\\u0000b"', None]
    assert bad == {1: NUL_JSON, 2: NUL_JSON, 4: NUL_JSON, 5: "not valid JSON"}


def test_nul_in_nested_values_serialised_to_jsonb():
    good, bad, _ = cast_one([{"a": "x\x00"}, {"a": "y"}], "jsonb", pa.struct([("a", pa.string())]))
    assert good == ['{"a": "y"}'] and bad == {0: NUL_JSON}


def test_lone_surrogate_escape_in_jsonb_is_quarantined():
    good, bad, _ = cast_one(['"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"\\\\ud800"'], "jsonb")
    assert good == ['"\\ud83d\\ude00"', '"\\\\ud800"']  # a valid pair, and an escaped backslash: both stored
    lone = "has a lone UTF-16 surrogate escape, which PostgreSQL jsonb refuses"
    assert bad == {0: lone, 1: lone}


def test_year_zero_and_years_past_9999_in_text_dates():
    """Arrow parses "0000-01-01" (and the optimistic cast would pass it); PostgreSQL's ISO input has no year 0."""
    good, bad, res = cast_one(["0000-01-01", "0001-01-01", "9999-12-31", "2024-02-29", "0000-02-29"], "date")
    assert good == [date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29)]
    assert bad == {0: f"out of range for date: {OUT_OF_RANGE}", 4: f"out of range for date: {OUT_OF_RANGE}"}
    assert reasons_of(res)[0][0]["value"] == "0000-01-01"
    _, bad, _ = cast_one(["10000-01-01", "2024-01-01"], "date")  # five digits: never a date in the source text
    assert bad == {0: "not a date (expected YYYY-MM-DD)"}


@pytest.mark.parametrize("type_", ["timestamp", "timestamptz"])
def test_timestamps_outside_year_1_to_9999_after_conversion_to_utc(type_):
    values = [
        "0000-06-01T12:00:00",
        "0001-01-01T00:30:00+01:00",  # 0000-12-31 23:30 UTC
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59.999999",
        "9999-12-31T23:00:00-02:00",  # 10000-01-01 01:00 UTC
        "2024-01-01T00:00:00Z",
    ]
    good, bad, _ = cast_one(values, type_)
    tz = UTC if type_ == "timestamptz" else None
    assert good == [
        datetime(1, 1, 1, tzinfo=tz),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=tz),
        datetime(2024, 1, 1, tzinfo=tz),
    ]
    assert bad == {i: f"out of range for {type_}: {OUT_OF_RANGE}" for i in (0, 1, 4)}


FIRST, PAST_LAST = (date(1, 1, 1) - date(1970, 1, 1)).days, (date(9999, 12, 31) - date(1970, 1, 1)).days + 1


@pytest.mark.parametrize(
    ("values", "arrow_type", "type_"),
    [
        ([FIRST - 1, FIRST, PAST_LAST - 1, PAST_LAST, 2_000_000_000], pa.date32(), "date"),
        ([FIRST - 1, FIRST, PAST_LAST - 1, PAST_LAST, 2_000_000_000], pa.date32(), "timestamp"),  # no overflow
        ([(d * 86_400) for d in (FIRST - 1, FIRST, PAST_LAST - 1, PAST_LAST, 10**10)], pa.timestamp("s"), "date"),
        (
            [d * 86_400_000 for d in (FIRST - 1, FIRST, PAST_LAST - 1, PAST_LAST, 10**10)],
            pa.timestamp("ms", "UTC"),
            "timestamptz",
        ),
        ([d * 86_400_000 for d in (FIRST - 1, FIRST, PAST_LAST - 1, PAST_LAST, 10**11)], pa.date64(), "date"),
    ],
)
def test_typed_dates_and_timestamps_out_of_range_never_overflow_a_cast(values, arrow_type, type_):
    """Parquet and SQL sources deliver typed values Arrow holds (year 0, negative years, year 5 million): each is
    quarantined before any cast to another unit could overflow or wrap it."""
    good, bad, _ = cast_one(values, type_, arrow_type)
    assert len(good) == 2 and set(bad) == {0, 3, 4}
    assert set(bad.values()) == {f"out of range for {type_}: {OUT_OF_RANGE}"}


def test_nan_and_infinity_do_not_fit_numeric():
    """PostgreSQL stores NaN in numeric(p,s) but not Infinity; Sluice refuses both for a constrained numeric (its
    numeric columns are always numeric(p,s), and Arrow's decimal cannot hold either)."""
    reason = "not a finite number (NaN and Infinity do not fit numeric)"
    good, bad, _ = cast_one(["NaN", "Infinity", "-inf", "1.5", "nan", "+Infinity"], "numeric(10,2)")
    assert good == [Decimal("1.50")] and bad == {i: reason for i in (0, 1, 2, 4, 5)}
    good, bad, _ = cast_one([float("nan"), float("inf"), float("-inf"), 1.5, None], "numeric(10,2)", pa.float64())
    assert good == [Decimal("1.50"), None] and bad == {0: reason, 1: reason, 2: reason}


def test_double_keeps_nan_and_infinity_which_postgres_float8_stores():
    good, bad, _ = cast_one([float("nan"), float("inf"), float("-inf"), 1.5], "double", pa.float64())
    assert str(good) == "[nan, inf, -inf, 1.5]" and not bad
    good, bad, _ = cast_one(["NaN", "Infinity", "-inf", "1e999"], "double")
    assert str(good) == "[nan, inf, -inf]" and bad == {3: "out of range for double precision"}
