# headlab image: the web app and the worker run from the same image.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-dejavu-core git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/headlab
COPY pyproject.toml README.md ./
COPY app ./app
COPY analysis ./analysis
COPY storage ./storage
COPY assets ./assets
COPY headlab ./headlab
# TORCH_INDEX: the CPU wheel by default; a CUDA index (e.g. .../whl/cu128) for GPU workers
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX} \
 && pip install --no-cache-dir .
ENV HEADLAB_HOME=/data
VOLUME ["/data"]
EXPOSE 8050
CMD ["headlab", "serve", "--host", "0.0.0.0", "--workers", "0"]
