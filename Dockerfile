# hwnas service image: API (`hwnas serve`), workers (`hwnas worker`) and migrations (`hwnas db upgrade`).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HWNAS_DATA_DIR=/data
WORKDIR /app

# The CPU build of the pinned torch first, so pip never resolves a CUDA build.
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml constraints.txt ./
COPY service ./service
COPY predictors ./predictors
COPY latency_tables ./latency_tables
COPY migrations ./migrations
# EXTRAS="[ray]" builds the image of the Ray nodes and Ray-driving workers (docker-compose.yml).
ARG EXTRAS=""
RUN touch README.md && pip install -c constraints.txt ".${EXTRAS}"

RUN useradd --create-home hwnas && mkdir -p /data && chown hwnas /data
USER hwnas
VOLUME ["/data"]
EXPOSE 8000
# 0.0.0.0 needs authentication on: docker run -e HWNAS_ADMIN_TOKEN=… (docs/security.md).
CMD ["hwnas", "serve", "--host", "0.0.0.0", "--port", "8000"]
