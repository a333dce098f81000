"""The source fingerprint finalize records and `backfill plan` compares: exact for every change the plan reports
(an ETag, a size, an object added or removed), blind to listing order; the in-memory grouping of one listing into
intervals selects what sources.s3.selected selects; check_sources classifies from fingerprints without reading a
manifest, and from the manifest for generations that have none (the S3 listing and manifest reads are replaced by
their results: the logic is under test here, the e2e test runs it against the stack's S3 endpoint)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sluice.backfill import plan as bp
from sluice.backfill.plan import IntervalState, Source, State
from sluice.config import load_defaults, load_pipeline, render, render_many
from sluice.interval import Interval
from sluice.sources.fingerprint import fingerprint, group_by_prefix, record_of
from sluice.sources.s3 import selected

REPO = Path(__file__).resolve().parents[2]
A = {"key": "tpch/orders/1995-01-01/part-0.csv.gz", "size": 10, "etag": "e1"}
B = {"key": "tpch/orders/1995-01-01/part-1.csv.gz", "size": 20, "etag": "e2"}


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline(REPO / "config/pipelines/tpch_orders.yaml", load_defaults(REPO / "config"))


def day(n: int) -> Interval:
    start = datetime(1995, 1, 1, tzinfo=UTC) + timedelta(days=n)
    return Interval(start, start + timedelta(days=1))


def test_fingerprint_ignores_order_and_etag_quotes():
    assert fingerprint([A, B]) == fingerprint([B, A]) == fingerprint([{**A, "etag": '"e1"'}, B])
    assert fingerprint([A]).startswith("sha256:") and len(fingerprint([A])) == len("sha256:") + 64


@pytest.mark.parametrize(
    "now",
    [
        [{**A, "etag": "e9"}, B],  # rewritten, same size
        [{**A, "size": 11}, B],  # size changed
        [A, B, {"key": "tpch/orders/1995-01-01/part-2.csv.gz", "size": 1, "etag": "e3"}],  # added
        [A],  # removed
        [{**A, "key": A["key"] + "x"}, B],  # renamed
        [],  # every object gone
    ],
)
def test_every_change_changes_the_fingerprint(now):
    assert fingerprint(now) != fingerprint([A, B])


def test_fields_cannot_run_into_each_other():
    # keys may hold any character: a naive "key size etag" join would make these two equal
    one, other = {"key": "a 1", "size": 2, "etag": "e"}, {"key": "a", "size": 1, "etag": "2 e"}
    assert fingerprint([one]) != fingerprint([other])


def test_record_of_tells_no_listing_from_an_empty_one():
    assert record_of(None) == {"source_fingerprint": None, "source_object_count": None}
    assert record_of([]) == {"source_fingerprint": fingerprint([]), "source_object_count": 0}
    assert record_of([A, B])["source_object_count"] == 2


def test_grouping_selects_what_selected_selects(cfg):
    keys = [
        "tpch/orders/1995-01-01/part-0.csv.gz",
        "tpch/orders/1995-01-01/part-0.csv",  # not the pattern
        "tpch/orders/1995-01-01/sub/",  # a folder marker
        "tpch/orders/1995-01-01/sub/deep.csv.gz",  # the pattern has no '/': matches the file name
        "tpch/orders/1995-01-010/x.csv.gz",  # shares the text prefix, not the folder's slash
        "tpch/orders/1995-01-02/a.csv.gz",
        "tpch/orders/1995-01-03/b.csv.gz",
        "tpch/other/1995-01-01/c.csv.gz",
    ]
    listing = {k: {"key": k, "size": n, "etag": f"e{n}"} for n, k in enumerate(reversed(keys))}
    prefixes = [render(cfg.source.prefix, day(n)).lstrip("/") for n in range(4)]
    got = group_by_prefix(listing, prefixes, cfg.source.pattern)
    assert got == [selected(cfg, p, listing) for p in prefixes]
    assert [len(g) for g in got] == [2, 1, 1, 0]


def test_render_many_renders_like_render(cfg):
    intervals = [day(n) for n in range(3)]
    assert render_many(cfg.source.prefix, intervals) == [render(cfg.source.prefix, i) for i in intervals]


def test_check_sources_compares_fingerprints_and_reads_manifests_only_without_one(cfg, monkeypatch):
    then = [{"key": f"tpch/orders/1995-01-0{n + 1}/part-0.csv.gz", "size": 10, "etag": "e"} for n in range(4)]
    now = {o["key"]: dict(o) for o in then}
    now[then[1]["key"]]["etag"] = "rewritten"
    now[then[3]["key"]]["etag"] = "rewritten"
    listed, read = [], []

    def list_objects(conn_id, bucket, prefix):
        listed.append(prefix)
        return {k: v for k, v in now.items() if k.startswith(prefix)}

    def manifest(_cfg, s):
        read.append(s.interval.start.day)
        return {"source_objects": [then[s.interval.start.day - 1]]}

    monkeypatch.setattr("sluice.sources.s3.list_objects", list_objects)
    monkeypatch.setattr(bp, "_manifest", manifest)
    states = [
        IntervalState(day(0), State.loaded, fingerprint=fingerprint([then[0]]), object_count=1),  # unchanged
        IntervalState(day(1), State.loaded, fingerprint=fingerprint([then[1]]), object_count=1),  # rewritten
        IntervalState(day(2), State.loaded),  # loaded before fingerprints: the manifest decides, unchanged
        IntervalState(day(3), State.loaded),  # same, rewritten
        IntervalState(day(4), State.missing),
    ]
    profile: dict[str, float] = {}
    bp.check_sources(cfg, states, profile)
    assert [s.source for s in states] == [Source.unchanged, Source.changed, Source.unchanged, Source.changed, None]
    assert listed == ["tpch/orders/1995-01-0"]  # one listing, narrowed to the range's common prefix
    assert read == [3, 4] and profile["manifests_read"] == 2
    assert states[1].note == "source changed: 1 object(s) at the load, 1 now"
    assert states[3].note == "source changed: 0 added, 0 removed, 1 rewritten"
    assert "fingerprint" not in states[0].to_dict()


def test_a_summary_row_carries_its_fingerprint_into_the_state(cfg):
    row = {"run_id": "r", "generation": 7, "status": "success", "rows_in": 1, "rows_loaded": 1, "rows_quarantined": 0,
           "chunks": 1, "ledger_chunks": 1, "problems": [], "finished_at": datetime.now(UTC),
           "source_fingerprint": "sha256:ab", "source_object_count": 3}  # fmt: skip
    st = bp.classify(cfg, day(0), row)
    assert (st.fingerprint, st.object_count) == ("sha256:ab", 3)
