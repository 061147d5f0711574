# The code location's image for Kubernetes (deploy/kubernetes/, docs/deployment.md): the gRPC
# code server of the chart's user deployment, each run's pod (K8sRunLauncher) and, with another
# command, a Celery worker of the Celery profile. Versions come from pyproject.toml's pins.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/completions
COPY pyproject.toml README.md workspace.yaml ./
COPY completions_assets ./completions_assets
COPY deploy ./deploy
RUN pip install '.[production,celery,kubernetes]' \
    && useradd --system --uid 10001 --no-create-home dagster \
    && mkdir -p "$DAGSTER_HOME" \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && chown -R dagster "$DAGSTER_HOME"

USER 10001
EXPOSE 3030
# The chart replaces this with its dagsterApiGrpcArgs; a Celery worker runs
# `dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml` instead.
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "3030", "--module-name", "completions_assets.definitions"]
