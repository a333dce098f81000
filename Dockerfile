# Sluice image: the official Airflow 3.3.2 image plus Sluice's pinned requirements and library.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt constraints.txt /opt/sluice/
# The local-stack-only packages (supervisor, moto server) are harmless here; the image uses MinIO and compose.
RUN pip install --no-cache-dir -r /opt/sluice/requirements.txt -c /opt/sluice/constraints.txt

COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root config /opt/airflow/config

ENV PYTHONPATH=/opt/airflow/include \
    SLUICE_PIPELINES_DIRS=/opt/airflow/config/pipelines
