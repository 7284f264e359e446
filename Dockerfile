# The SIEM image: one image, several roles (compose.yaml): daphne, Celery worker, Celery beat.
#   docker build -t siem .
#   docker run --env-file deploy/siem.env.example -p 8000:8000 siem
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIEM_DATA_DIR=/var/lib/siem \
    PROMETHEUS_MULTIPROC_DIR=/run/siem/prometheus

# unixODBC: mssql-django imports pyodbc even with the mssql-python driver.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libodbc2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/siem --create-home siem \
    && mkdir -p /run/siem/prometheus && chown -R siem:siem /run/siem

WORKDIR /opt/siem
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are baked in (whitenoise serves them); the key is only needed for this step.
RUN SECRET_KEY=build-only-not-secret SIEM_IGNORE_DOTENV=1 \
    python manage.py collectstatic --noinput

USER siem
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "siem.asgi:application"]
