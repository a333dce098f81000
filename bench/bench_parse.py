"""DAG parse time with many pipelines (not a test): (a) the dag-processor parsing dags/pipelines.py over 500 generated
pipeline files, target <= 5 s; (b) a worker building the one DAG it runs, target <= 1 s.

How each is measured, in a fresh subprocess per sample (median of --repeat):
  (a) The dag-processor forks one child per DAG file from a manager that has Airflow imported. The child
      (airflow.dag_processing.processor._parse_file) loads the file with a BundleDagBag, then serializes every DAG;
      the manager records the child's lifetime as the file's last_parse_duration. The bench imports those Airflow
      modules first, then times the two steps apart: the load of dags/pipelines.py (Sluice's imports, 500 YAML files
      read and validated, 500 DAGs built: the figure with the 5 s target) and the serialization (Airflow's own cost per
      DAG, which the processor adds). dags/sluice_config_errors.py, loaded the same way, reads all files too.
  (b) A Celery worker's task runner parses the DAG file with BundleDagBag(safe_mode=False) under the parsing context
      of its dag_id (_airflow_parsing_context_manager, as task_runner.py does). The bench times that for the pipeline
      whose file sorts last (the worst case of the name scan), and checks that only that DAG was built.
  The cold figure (whole subprocess, Python and Airflow imports included) is printed too, as an upper bound.

The 500 files are copies of config/pipelines/*.yaml (cycled; every source kind, expectations, deadlines) under new
names, with config/defaults.yaml beside them. Airflow runs on a throwaway AIRFLOW_HOME; no service is touched.

    .venv/bin/python bench/bench_parse.py [--pipelines 500] [--repeat 3]

Prints the figures and writes bench/results/parse-<UTC time>.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DAGS = REPO / "dags"
TARGET_PARSE_S, TARGET_WORKER_S = 5.0, 1.0

# Runs in the child. The first block is what the forked dag-processor child / task runner already has imported.
PRELUDE = """
import json, os, sys, time
t0 = time.monotonic()
from pathlib import Path
import structlog
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager
log = structlog.get_logger()
imported = time.monotonic() - t0
"""

PROCESSOR = (
    PRELUDE
    + """
from airflow.dag_processing.processor import _serialize_dags
t, c = time.monotonic(), time.process_time()
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=Path(sys.argv[2]), bundle_name="dags-folder",
                   load_op_links=False)
loaded, loaded_cpu = time.monotonic() - t, time.process_time() - c
t, c = time.monotonic(), time.process_time()
serialized, errors = _serialize_dags(bag, log)
serialize, serialize_cpu = time.monotonic() - t, time.process_time() - c
print(json.dumps({"seconds": loaded, "cpu_s": loaded_cpu, "serialize_s": serialize, "serialize_cpu_s": serialize_cpu,
                  "parse_file_s": loaded + serialize, "parse_file_cpu_s": loaded_cpu + serialize_cpu,
                  "airflow_import_s": imported, "dags": len(serialized),
                  "import_errors": len(bag.import_errors) + len(errors)}))
"""
)

WORKER = (
    PRELUDE
    + """
t, c = time.monotonic(), time.process_time()
with _airflow_parsing_context_manager(dag_id=sys.argv[3], task_id="extract_and_stage"):
    bag = BundleDagBag(dag_folder=sys.argv[1], safe_mode=False, load_op_links=False, bundle_path=Path(sys.argv[2]),
                       bundle_name="dags-folder")
elapsed, cpu = time.monotonic() - t, time.process_time() - c
print(json.dumps({"seconds": elapsed, "cpu_s": cpu, "airflow_import_s": imported, "dag_ids": sorted(bag.dag_ids),
                  "import_errors": len(bag.import_errors)}))
"""
)

# Where the CPU time of (a) goes, step by step, without the DagBag around it.
BREAKDOWN = """
import json, time
from airflow.sdk import DAG  # noqa: F401  (already imported in the dag-processor's child)
from airflow.serialization.serialized_objects import DagSerialization
t = time.process_time(); from sluice import dag_builder; imp = time.process_time() - t
t = time.process_time(); result = dag_builder.load_configs(); load = time.process_time() - t
t = time.process_time()
dags = [dag_builder.build_dag(c) for c in result.pipelines.values()]
build = time.process_time() - t
t = time.process_time(); [DagSerialization.to_dict(d) for d in dags]; ser = time.process_time() - t
print(json.dumps({"import_sluice_s": imp, "load_configs_s": load, "build_dags_s": build, "serialize_s": ser,
                  "pipelines": len(result.pipelines), "errors": len(result.errors)}))
"""


def generate(root: Path, count: int) -> tuple[Path, list[str]]:
    """<root>/config/{defaults.yaml, pipelines/pNNNN_<example>.yaml}: the example files cycled under new names."""
    pipelines = root / "config" / "pipelines"
    pipelines.mkdir(parents=True)
    shutil.copy(REPO / "config" / "defaults.yaml", root / "config" / "defaults.yaml")
    examples = sorted((REPO / "config" / "pipelines").glob("*.yaml"))
    if not examples:
        raise SystemExit("no example pipelines in config/pipelines")
    names = []
    for i in range(count):
        src = examples[i % len(examples)]
        doc = yaml.safe_load(src.read_text())
        name = f"p{i:04d}_{doc['name']}"[:63]
        doc["name"] = name
        doc["target"]["table"] = name
        (pipelines / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        names.append(name)
    return pipelines, names


def child_env(pipelines: Path, airflow_home: Path) -> dict[str, str]:
    """The current environment, minus anything that could reach a running stack's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "_AIRFLOW_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(REPO / "include"),
            "SLUICE_PIPELINES_DIRS": str(pipelines),
            "PYTHONDONTWRITEBYTECODE": "0",
        }
    )
    return env


def run(code: str, args: list[str], env: dict[str, str]) -> dict:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cold_wall_s"] = wall
    return result


def summary(samples: list[dict], key: str) -> dict[str, float]:
    values = [s[key] for s in samples]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=500, help="number of generated pipeline files")
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process samples per figure (median reported)")
    args, _ = ap.parse_known_args(argv)  # bench/run.sh passes the same arguments to every benchmark

    with tempfile.TemporaryDirectory(prefix="sluice-bench-parse-") as tmp:
        pipelines, names = generate(Path(tmp), args.pipelines)
        env = child_env(pipelines, Path(tmp) / "airflow")
        warm = run(PRELUDE + "print('{}')", [], env)  # first run writes bytecode caches and the Airflow home
        worker_dag = sorted(names)[-1]
        processor, errors_file, worker, breakdown = [], [], [], []
        for _ in range(args.repeat):
            processor.append(run(PROCESSOR, [str(DAGS / "pipelines.py"), str(DAGS)], env))
            errors_file.append(run(PROCESSOR, [str(DAGS / "sluice_config_errors.py"), str(DAGS)], env))
            worker.append(run(WORKER, [str(DAGS / "pipelines.py"), str(DAGS), worker_dag], env))
            breakdown.append(run(BREAKDOWN, [], env))

    bad = [p for p in processor if p["dags"] != args.pipelines or p["import_errors"]]
    bad += [w for w in worker if w["dag_ids"] != [worker_dag] or w["import_errors"]]
    bad += [e for e in errors_file if e["import_errors"] or e["dags"]]
    if bad:
        raise SystemExit(f"unexpected parse result: {bad[0]}")

    figures = {
        "pipelines": args.pipelines,
        "repeat": args.repeat,
        "processor_load_s": summary(processor, "seconds"),
        "processor_load_cpu_s": summary(processor, "cpu_s"),
        "processor_serialize_s": summary(processor, "serialize_s"),
        "processor_serialize_cpu_s": summary(processor, "serialize_cpu_s"),
        "processor_parse_file_s": summary(processor, "parse_file_s"),
        "processor_parse_file_cpu_s": summary(processor, "parse_file_cpu_s"),
        "processor_cold_wall_s": summary(processor, "cold_wall_s"),
        "errors_file_load_s": summary(errors_file, "seconds"),
        "errors_file_load_cpu_s": summary(errors_file, "cpu_s"),
        "worker_build_one_s": summary(worker, "seconds"),
        "worker_build_one_cpu_s": summary(worker, "cpu_s"),
        "worker_cold_wall_s": summary(worker, "cold_wall_s"),
        "airflow_import_s": summary(processor + worker, "airflow_import_s"),
        "breakdown_cpu_s": {
            k: statistics.median(b[k] for b in breakdown)
            for k in ("import_sluice_s", "load_configs_s", "build_dags_s", "serialize_s")
        },
        "warmup_cold_wall_s": warm["cold_wall_s"],
        "cpus": os.cpu_count(),
        "load_avg_1m_after": os.getloadavg()[0],
        "python": sys.version.split()[0],
    }

    def med(key: str) -> float:
        return figures[key]["median"]

    def verdict(wall: float, cpu: float, target: float) -> str:
        return "OK" if wall <= target else ("OK on CPU time, wall MISSED" if cpu <= target else "MISSED")

    n, b = args.pipelines, figures["breakdown_cpu_s"]
    p, pc, w, wc = (
        med("processor_load_s"),
        med("processor_load_cpu_s"),
        med("worker_build_one_s"),
        med("worker_build_one_cpu_s"),
    )
    print(
        f"parse: {n} pipeline files; median of {args.repeat} fresh processes; wall (CPU) seconds; "
        f"load average {figures['load_avg_1m_after']:.1f} on {figures['cpus']} CPUs"
    )
    print(
        f"  (a) dag-processor loads dags/pipelines.py -> {n} DAGs: {p:6.2f} s ({pc:.2f} s CPU, "
        f"{pc / n * 1000:.1f} ms/pipeline)  target <= {TARGET_PARSE_S:.0f} s: {verdict(p, pc, TARGET_PARSE_S)}"
    )
    print(
        f"      + Airflow serializing the DAGs: {med('processor_serialize_s'):.2f} s "
        f"({med('processor_serialize_cpu_s'):.2f} s CPU) -> whole child (last_parse_duration) "
        f"{med('processor_parse_file_s'):.2f} s ({med('processor_parse_file_cpu_s'):.2f} s CPU); "
        f"cold process {med('processor_cold_wall_s'):.2f} s"
    )
    print(
        f"      CPU breakdown: import sluice {b['import_sluice_s']:.2f} s, read+validate YAML "
        f"{b['load_configs_s']:.2f} s, build DAGs {b['build_dags_s']:.2f} s, serialize {b['serialize_s']:.2f} s"
    )
    print(
        f"      dags/sluice_config_errors.py (reads the same files, builds nothing): "
        f"{med('errors_file_load_s'):.2f} s ({med('errors_file_load_cpu_s'):.2f} s CPU)"
    )
    print(
        f"  (b) worker builds one DAG ({worker_dag}) under its parsing context: {w:6.2f} s ({wc:.2f} s CPU)  "
        f"target <= {TARGET_WORKER_S:.0f} s: {verdict(w, wc, TARGET_WORKER_S)}; "
        f"cold process {med('worker_cold_wall_s'):.2f} s"
    )
    print(
        f"  ratio (a)/(b): {p / w:.0f}x wall, {pc / wc:.0f}x CPU; Airflow's own imports before either: "
        f"{med('airflow_import_s'):.2f} s"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"parse-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"results: {path.relative_to(REPO)}")
    return 0 if pc <= TARGET_PARSE_S and wc <= TARGET_WORKER_S else 1


if __name__ == "__main__":
    sys.exit(main())
