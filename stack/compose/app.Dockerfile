# The images of seatflow's own programs: docker-compose.yml's processor-0 and processor-1 (target
# processor) and serve (target serve); the build context is the repository root. The seatflow package is installed as in a checkout (`pip install -e .`: the
# schemas are read from schemas/ beside pipelines/), with its native Avro codec, which maturin
# builds with a Rust toolchain in the first stage. Base images are pinned to exact versions.
FROM python:3.11.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential curl \
    && rm -rf /var/lib/apt/lists/*
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain 1.83.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /opt/seatflow/src
COPY pyproject.toml README.md ./
COPY native/ native/
COPY pipelines/ pipelines/
COPY schemas/ schemas/
RUN python -m venv /opt/seatflow/venv \
    && /opt/seatflow/venv/bin/pip install --no-cache-dir -e '.[native]'

FROM python:3.11.11-slim-bookworm AS processor
COPY --from=build /opt/seatflow /opt/seatflow
ENV PATH=/opt/seatflow/venv/bin:$PATH
WORKDIR /opt/seatflow/src
USER nobody
# A worker and its warm standbys for one slot (`--slot N`), as a Dagster run supervises them.
ENTRYPOINT ["python", "-m", "pipelines.processor.supervise"]

FROM python:3.11.11-slim-bookworm AS serve
COPY --from=build /opt/seatflow /opt/seatflow
ENV PATH=/opt/seatflow/venv/bin:$PATH
WORKDIR /opt/seatflow/src
USER nobody
# The seat map page, its API and live stream, on SEATFLOW_BIND_HOST:SEATFLOW_SERVE_PORT.
EXPOSE 18090
ENTRYPOINT ["python", "-m", "pipelines.serve"]
