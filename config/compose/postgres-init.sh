#!/bin/bash
# First start of the compose PostgreSQL: the same roles and databases the local stack creates (scripts/stack/provision.py).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE airflow LOGIN PASSWORD '${POSTGRES_AIRFLOW_PASSWORD}';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE sluice LOGIN PASSWORD '${POSTGRES_WAREHOUSE_PASSWORD}';
CREATE DATABASE warehouse OWNER sluice;
CREATE ROLE source LOGIN PASSWORD '${POSTGRES_SOURCE_PASSWORD}';
CREATE DATABASE source OWNER source;
SQL
