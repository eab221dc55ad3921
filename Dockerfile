# Image for the stream worker, the API and the collaborator workers (docker-compose.yml);
# the native stack needs none.
FROM python:3.11-slim
# The content worker draws Korean text with Nanum fonts, as natively (stack.sh installs them).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-nanum \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY eventpipe eventpipe
COPY streams streams
COPY sinks sinks
COPY api api
COPY workers workers
COPY schemas schemas
RUN pip install --no-cache-dir -e .
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["eventpipe"]
